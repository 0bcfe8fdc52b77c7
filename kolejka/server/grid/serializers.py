"""What the API answers, field by field (the requests it takes are in `inputs`)."""

from __future__ import annotations

import base64
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from . import nodes, pending
from .fields import Base64Field
from .logs import MAX_READ, LogPart
from .models import Delivery, Image, Lease, LogStream, Node, State, Task, User


class TaskSerializer(serializers.Serializer[Any]):
    """The task resource, as `task_resource` renders it (this class describes it for the
    schema; rendering by hand is several times faster for lists and batches)."""

    key = serializers.CharField()
    owner = serializers.CharField()
    state = serializers.ChoiceField(choices=[str(state) for state in State])
    priority = serializers.IntegerField()
    rank = serializers.IntegerField(help_text="its place in its owner's own order, higher first")
    after = serializers.ListField(
        child=serializers.DictField(),
        help_text='its dependencies as submitted: {"key" or "position", "when"}',
    )
    batch = serializers.CharField(allow_null=True)
    position = serializers.IntegerField(allow_null=True, help_text="its place in its batch")
    attempts = serializers.IntegerField()
    max_attempts = serializers.IntegerField()
    node = serializers.CharField(allow_null=True)
    created = serializers.DateTimeField()
    updated = serializers.DateTimeField()
    started = serializers.DateTimeField(allow_null=True)
    finished = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    not_before = serializers.DateTimeField(
        allow_null=True,
        help_text="no node takes the queued task before this: a failed attempt's retry spacing "
        "or its retry policy's backoff",
    )
    reason = serializers.CharField(
        allow_null=True, help_text="why a queued task waits: a failed attempt, no node fits, ..."
    )
    task = serializers.JSONField(help_text="kolejka_task.json, files as references")
    result = serializers.JSONField(allow_null=True, help_text="kolejka_result.json once done")
    history = serializers.ListField(
        child=serializers.DictField(),
        help_text="earlier runs of a task run again in place, oldest first: their state, "
        "attempts, finished, error and result, and `retry`, why its retry policy ran it again",
    )


def task_resource(
    task: Task, reasons: pending.Reasons | None = None, *, reason: bool = True
) -> dict[str, Any]:
    """`task` as the API shows it; its owner, node and batch should be loaded with it. A list
    gives all its tasks one `reasons`, so that the nodes are read once. Without `reason` the
    ``reason`` is null: a submission's answer skips reading the nodes (a fifth of its cost)
    for a task that has not waited yet."""
    return {
        "key": task.key,
        "owner": task.owner.username,
        "state": task.state,
        "priority": task.priority,
        "rank": task.rank,
        "after": task.after,
        "batch": task.batch.key if task.batch_id is not None and task.batch else None,
        "position": task.position,
        "attempts": task.attempts,
        "max_attempts": task.max_attempts,
        "node": task.node.name if task.node_id is not None and task.node else None,
        "created": task.created,
        "updated": task.updated,
        "started": task.started,
        "finished": task.finished,
        "error": task.error,
        "not_before": task.not_before if task.state == State.QUEUED else None,
        "reason": pending.reason(task, reasons) if reason else None,
        "task": task.spec,
        "result": task.result,
        "history": task.history,
    }


@extend_schema_serializer(many=False)
class TaskPageSerializer(serializers.Serializer[Any]):
    results = TaskSerializer(many=True)
    next = serializers.CharField(allow_null=True)


class BatchCreatedSerializer(serializers.Serializer[Any]):
    batch = serializers.CharField()
    tasks = TaskSerializer(many=True)


class BatchSummarySerializer(serializers.Serializer[Any]):
    batch = serializers.CharField()
    owner = serializers.CharField()
    state = serializers.ChoiceField(
        choices=["open", "sealed"], help_text="open: taking pages, nothing runs; sealed: queued"
    )
    total = serializers.IntegerField()
    created = serializers.DateTimeField()
    sealed = serializers.DateTimeField(allow_null=True)


class BatchSerializer(BatchSummarySerializer):
    states = serializers.DictField(child=serializers.IntegerField())
    verdicts = serializers.DictField(
        child=serializers.IntegerField(), help_text="the done tasks by result status"
    )
    started = serializers.DateTimeField(allow_null=True, help_text="when its first task started")
    finished = serializers.DateTimeField(
        allow_null=True, help_text="when its last finished task finished"
    )


@extend_schema_serializer(many=False)
class BatchPageSerializer(serializers.Serializer[Any]):
    results = BatchSummarySerializer(many=True)
    next = serializers.CharField(allow_null=True)


class BatchChangedSerializer(serializers.Serializer[Any]):
    batch = serializers.CharField()
    changed = serializers.IntegerField(help_text="how many of its tasks it changed")


class DeliverySerializer(serializers.Serializer[Any]):
    """One notification or callback (`notify`, `deliver`)."""

    id = serializers.UUIDField(help_text="the X-Kolejka-Delivery header; receivers dedupe by it")
    channel = serializers.ChoiceField(choices=["webhook", "email"])
    target = serializers.CharField(help_text="the URL or the e-mail address")
    format = serializers.ChoiceField(choices=["json", "slack", "callback", "email"])
    event = serializers.ChoiceField(choices=["done", "failed", "cancelled", "complete"])
    created = serializers.DateTimeField()
    attempts = serializers.IntegerField()
    tried = serializers.DateTimeField(allow_null=True, help_text="when the last attempt ended")
    next_try = serializers.DateTimeField(
        allow_null=True, help_text="when it is tried next; null once delivered or given up"
    )
    delivered = serializers.DateTimeField(allow_null=True)
    gave_up = serializers.BooleanField()
    last_status = serializers.IntegerField(allow_null=True, help_text="the receiver's answer")
    last_error = serializers.CharField(allow_null=True)


DELIVERY_FIELDS = tuple(DeliverySerializer().fields)


def delivery_log(deliveries: QuerySet[Delivery]) -> list[dict[str, Any]]:
    """`deliveries` as the API shows them, oldest first."""
    return list(deliveries.order_by("created", "id").values(*DELIVERY_FIELDS))


class WebhookSecretSerializer(serializers.Serializer[Any]):
    secret = serializers.CharField(
        help_text="the key of the HMAC-SHA256 in X-Kolejka-Signature of your webhooks"
    )
    created = serializers.DateTimeField(help_text="when it was made or last rotated")


class ChangedSerializer(serializers.Serializer[Any]):
    changed = serializers.IntegerField(help_text="how many tasks it changed")


class ScheduleSerializer(serializers.Serializer[Any]):
    key = serializers.CharField()
    owner = serializers.CharField(source="owner.username")
    cron = serializers.CharField()
    task = serializers.JSONField(source="spec")
    priority = serializers.IntegerField()
    missed = serializers.CharField()
    paused = serializers.BooleanField()
    next_run = serializers.DateTimeField()
    runs = serializers.IntegerField()
    last_run = serializers.DateTimeField(allow_null=True)
    last_task = serializers.CharField(allow_null=True)
    last_error = serializers.CharField(allow_null=True)
    created = serializers.DateTimeField()


@extend_schema_serializer(many=False)
class SchedulePageSerializer(serializers.Serializer[Any]):
    results = ScheduleSerializer(many=True)


class BlobSerializer(serializers.Serializer[Any]):
    reference = serializers.CharField()
    size = serializers.IntegerField()


class TokenSerializer(serializers.Serializer[Any]):
    token = serializers.CharField()
    username = serializers.CharField()
    role = serializers.CharField()


class MeSerializer(serializers.Serializer[Any]):
    username = serializers.CharField()
    role = serializers.CharField()


class NodeSerializer(serializers.ModelSerializer[Node]):
    """A node. Give `viewer` (the caller) in the context: `running` names the tasks it may see."""

    state = serializers.SerializerMethodField(
        help_text="down (not called in for KOLEJKA_NODE_DOWN_AFTER), unhealthy, draining or up"
    )
    free = serializers.SerializerMethodField(
        help_text="the capacity less what its running tasks take, by the placement rule"
    )
    busy = serializers.SerializerMethodField(help_text="how many tasks it runs")
    running = serializers.SerializerMethodField(
        help_text="keys of its running tasks the caller may see"
    )

    class Meta:
        model = Node
        fields = (
            "name",
            "state",
            "capacity",
            "free",
            "tags",
            "defaults",
            "slots",
            "busy",
            "last_seen",
            "running",
            "draining",
            "problems",
            "checked",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cache: dict[int, list[tuple[str, int]]] = {}  # node: its running (key, owner)

    def _running(self, node: Node) -> list[tuple[str, int]]:
        cache = self._cache
        if node.pk not in cache:
            cache[node.pk] = list(
                Task.objects.filter(lease__node=node, lease__ended=None)
                .order_by("id")
                .values_list("key", "owner_id")
            )
        return cache[node.pk]

    def get_state(self, node: Node) -> str:
        return nodes.state(node, self.context.get("now") or timezone.now())

    def get_free(self, node: Node) -> dict[str, Any]:
        return nodes.free_of(node).to_dict()

    def get_busy(self, node: Node) -> int:
        return len(self._running(node))

    def get_running(self, node: Node) -> list[str]:
        viewer: User | None = self.context.get("viewer")
        if viewer is None or viewer.sees_everything or viewer.pk == node.owner_id:
            return [key for key, _ in self._running(node)]
        return [key for key, owner in self._running(node) if owner == viewer.pk]


@extend_schema_serializer(many=False)
class NodePageSerializer(serializers.Serializer[Any]):
    results = NodeSerializer(many=True)


class NodeVerdictSerializer(serializers.Serializer[Any]):
    name = serializers.CharField()
    state = serializers.CharField(help_text="as in the node list: down, unhealthy, draining, up")
    takes = serializers.BooleanField(help_text="the node may take the task at its next claim")
    never = serializers.BooleanField(
        help_text="the node could not run it even idle and healthy (`why` says why)"
    )
    why = serializers.ListField(
        child=serializers.CharField(), help_text="what keeps the node from taking it now"
    )


class WhySerializer(serializers.Serializer[Any]):
    """Why a task waits: `pending.explain`."""

    key = serializers.CharField()
    state = serializers.ChoiceField(choices=[str(state) for state in State])
    node = serializers.CharField(allow_null=True, help_text="where it runs, once claimed")
    reason = serializers.CharField(allow_null=True, help_text="the task resource's `reason`")
    position = serializers.IntegerField(
        allow_null=True, help_text="1-based, in its owner's queue in claim order (queued only)"
    )
    queued = serializers.IntegerField(help_text="how many tasks its owner has queued")
    never = serializers.BooleanField(help_text="no registered node could ever run it")
    nodes = NodeVerdictSerializer(many=True)


def why_resource(explanation: pending.Explanation) -> dict[str, Any]:
    task = explanation.task
    return {
        "key": task.key,
        "state": task.state,
        "node": task.node.name if task.node_id is not None and task.node else None,
        "reason": explanation.reason,
        "position": explanation.position,
        "queued": explanation.queued,
        "never": explanation.never,
        "nodes": [
            {
                "name": verdict.name,
                "state": verdict.state,
                "takes": verdict.takes,
                "never": verdict.never,
                "why": list(verdict.why),
            }
            for verdict in explanation.nodes
        ],
    }


class LeaseSerializer(serializers.ModelSerializer[Lease]):
    ttl = serializers.SerializerMethodField()
    margin = serializers.SerializerMethodField(
        help_text="the node kills its task this long before the lease ends; the server "
        "requeues it this long after"
    )

    class Meta:
        model = Lease
        fields = ("id", "expires", "ttl", "margin", "attempt")

    def get_ttl(self, lease: Lease) -> float:
        return float(settings.LEASE_TTL)

    def get_margin(self, lease: Lease) -> float:
        return float(settings.LEASE_MARGIN)


class ClaimedSerializer(serializers.Serializer[Any]):
    lease = LeaseSerializer()
    task = TaskSerializer()


class ClaimSerializer(serializers.Serializer[Any]):
    lease = LeaseSerializer(allow_null=True, help_text="the first of `claimed`")
    task = TaskSerializer(allow_null=True, help_text="the first of `claimed`")
    claimed = ClaimedSerializer(many=True, help_text="every task claimed, best first")
    drain = serializers.BooleanField(required=False)


class ResultAcceptedSerializer(TaskSerializer):
    claimed = ClaimedSerializer(
        many=True, required=False, help_text="with `claim`: the next tasks claimed for the node"
    )


class HeartbeatSerializer(serializers.Serializer[Any]):
    expires = serializers.DateTimeField()
    cancel = serializers.BooleanField()


class LogAppendedSerializer(serializers.Serializer[Any]):
    next = serializers.IntegerField(help_text="the stream's end: where its next chunk starts")


class LogSerializer(serializers.Serializer[Any]):
    """A piece of a task's log (`logs.LogPart`)."""

    stream = serializers.ChoiceField(choices=LogStream.choices)
    attempt = serializers.IntegerField(allow_null=True, help_text="the attempt the log is of")
    started = serializers.DateTimeField(
        allow_null=True,
        help_text="when that attempt began: a new one (also of the same number, after a hand-back) "
        "starts the stream again at offset 0",
    )
    offset = serializers.IntegerField()
    next = serializers.IntegerField(help_text="the offset to read from next")
    size = serializers.IntegerField(help_text="the bytes of the stream known so far")
    # A field named as DRF's `Serializer.data`: the metaclass takes it out of the class.
    data = Base64Field(  # type: ignore[assignment]
        max_bytes=MAX_READ, help_text="the bytes from `offset`, base64"
    )
    complete = serializers.BooleanField(
        help_text="the task is final: nothing comes past `size` (a cancelled task's node may "
        "still send its last lines a moment later)"
    )
    truncated = serializers.BooleanField(
        help_text="the stream reached an output cap; what followed was not kept"
    )


def log_resource(part: LogPart) -> dict[str, Any]:
    return {
        "stream": part.stream,
        "attempt": part.attempt,
        "started": part.started,
        "offset": part.offset,
        "next": part.next,
        "size": part.size,
        "data": base64.b64encode(part.data).decode("ascii"),
        "complete": part.complete,
        "truncated": part.truncated,
    }


class ImageSerializer(serializers.ModelSerializer[Image]):
    reference = serializers.CharField(source="blob_id")
    size = serializers.IntegerField(source="blob.size")

    class Meta:
        model = Image
        fields = ("name", "reference", "size")


@extend_schema_serializer(many=False)
class ImagePageSerializer(serializers.Serializer[Any]):
    results = ImageSerializer(many=True)


class StatsSerializer(serializers.Serializer[Any]):
    states = serializers.DictField(child=serializers.IntegerField())
    nodes = serializers.DictField(child=serializers.DictField())
    oldest_queued = serializers.DateTimeField(allow_null=True)


class ErrorSerializer(serializers.Serializer[Any]):
    """The one error shape; some errors add keys (``state`` for ``not_finished``)."""

    code = serializers.CharField(help_text="what kind of error: invalid, not_found, conflict, ...")
    detail = serializers.CharField(help_text="what is wrong and what to do, for people")
    field = serializers.CharField(
        required=False, help_text="the field, query parameter or header at fault"
    )


# The legacy API's answers (`views/legacy.py`), in the original's shapes.


class LegacyStatusSerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=["OK", "FAIL"])


class LegacySettingsSerializer(LegacyStatusSerializer):
    blob_hash_algorithm = serializers.CharField()
    limits = serializers.JSONField(help_text="what the server sets on every task: nothing")


class LegacyReferenceSerializer(serializers.Serializer[Any]):
    key = serializers.CharField(help_text="the blob's sha256, which names it in task files")
    blob = serializers.CharField()
    size = serializers.IntegerField()
    time_create = serializers.DateTimeField()
    time_access = serializers.DateTimeField()


class LegacyBlobSerializer(LegacyStatusSerializer):
    reference = LegacyReferenceSerializer()


class LegacyTaskSerializer(LegacyStatusSerializer):
    task = serializers.JSONField(help_text="kolejka_task.json, its id the task's key")


class LegacyResultSerializer(LegacyStatusSerializer):
    result = serializers.JSONField(help_text="kolejka_result.json, its id the task's key")


class LegacyDeletedSerializer(LegacyStatusSerializer):
    deleted = serializers.BooleanField()
