"""What the API answers, field by field; the request shapes documented in the schema."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from . import pending
from .models import Image, Lease, Node, State, Task


class TaskSerializer(serializers.Serializer):
    """The task resource, as `task_resource` renders it (this class describes it for the
    schema; rendering by hand is several times faster for lists and batches)."""

    key = serializers.CharField()
    owner = serializers.CharField()
    state = serializers.ChoiceField(choices=State.choices)
    priority = serializers.IntegerField()
    batch = serializers.CharField(allow_null=True)
    attempts = serializers.IntegerField()
    max_attempts = serializers.IntegerField()
    node = serializers.CharField(allow_null=True)
    created = serializers.DateTimeField()
    updated = serializers.DateTimeField()
    started = serializers.DateTimeField(allow_null=True)
    finished = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    reason = serializers.CharField(
        allow_null=True, help_text="why a queued task waits: a failed attempt, no node fits, ..."
    )
    task = serializers.JSONField(help_text="kolejka_task.json, files as references")
    result = serializers.JSONField(allow_null=True, help_text="kolejka_result.json once done")


def task_resource(task: Task, reasons: pending.Reasons | None = None) -> dict[str, Any]:
    """`task` as the API shows it; its owner, node and batch should be loaded with it. A list
    gives all its tasks one `reasons`, so that the nodes are read once."""
    return {
        "key": task.key,
        "owner": task.owner.username,
        "state": task.state,
        "priority": task.priority,
        "batch": task.batch.key if task.batch_id is not None and task.batch else None,
        "attempts": task.attempts,
        "max_attempts": task.max_attempts,
        "node": task.node.name if task.node_id is not None and task.node else None,
        "created": task.created,
        "updated": task.updated,
        "started": task.started,
        "finished": task.finished,
        "error": task.error,
        "reason": pending.reason(task, reasons),
        "task": task.spec,
        "result": task.result,
    }


class TaskPageSerializer(serializers.Serializer):
    results = TaskSerializer(many=True)
    next = serializers.CharField(allow_null=True)


class SubmitSerializer(serializers.Serializer):
    task = serializers.JSONField(help_text="kolejka_task.json, files as blob references")
    priority = serializers.IntegerField(required=False, default=0)


class BatchSubmitSerializer(serializers.Serializer):
    tasks = SubmitSerializer(many=True)


class BatchCreatedSerializer(serializers.Serializer):
    batch = serializers.CharField()
    tasks = TaskSerializer(many=True)


class BatchSerializer(serializers.Serializer):
    batch = serializers.CharField()
    total = serializers.IntegerField()
    states = serializers.DictField(child=serializers.IntegerField())


class BlobSerializer(serializers.Serializer):
    reference = serializers.CharField()
    size = serializers.IntegerField()


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField()


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()
    username = serializers.CharField()
    role = serializers.CharField()


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.CharField()


class CapacitySerializer(serializers.Serializer):
    cpus = serializers.IntegerField(required=False)
    memory = serializers.JSONField(required=False, help_text="a size: bytes or 16G")
    gpus = serializers.IntegerField(required=False)
    workspace = serializers.JSONField(required=False, help_text="a size: bytes or 100G")
    resources = serializers.DictField(child=serializers.IntegerField(), required=False)


class NodeRequestSerializer(serializers.Serializer):
    capacity = CapacitySerializer(required=False)
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    defaults = serializers.JSONField(required=False, help_text="limits, as in kolejka_task.json")
    slots = serializers.IntegerField(required=False, min_value=1)


class NodeSerializer(serializers.ModelSerializer):
    running = serializers.SerializerMethodField()

    class Meta:
        model = Node
        fields = (
            "name",
            "capacity",
            "tags",
            "defaults",
            "slots",
            "last_seen",
            "running",
            "draining",
            "problems",
            "checked",
        )

    def get_running(self, node: Node) -> list[str]:
        return list(
            Task.objects.filter(lease__node=node, lease__ended=None)
            .order_by("id")
            .values_list("key", flat=True)
        )


class NodePageSerializer(serializers.Serializer):
    results = NodeSerializer(many=True)


class DrainSerializer(serializers.Serializer):
    drain = serializers.BooleanField()


class ClaimRequestSerializer(serializers.Serializer):
    free = CapacitySerializer(required=False)
    idle = serializers.BooleanField(required=False)
    wait = serializers.FloatField(required=False, min_value=0, max_value=60)


class LeaseSerializer(serializers.ModelSerializer):
    ttl = serializers.SerializerMethodField()
    margin = serializers.SerializerMethodField(
        help_text="the node kills its task this long before the lease ends; the server "
        "requeues it this long after"
    )

    class Meta:
        model = Lease
        fields = ("id", "expires", "ttl", "margin", "attempt")

    def get_ttl(self, lease: Lease) -> float:
        from django.conf import settings

        return float(settings.LEASE_TTL)

    def get_margin(self, lease: Lease) -> float:
        from django.conf import settings

        return float(settings.LEASE_MARGIN)


class ClaimSerializer(serializers.Serializer):
    lease = LeaseSerializer(allow_null=True)
    task = TaskSerializer(allow_null=True)
    drain = serializers.BooleanField(required=False)


class HealthRequestSerializer(serializers.Serializer):
    problems = serializers.ListField(
        child=serializers.CharField(), help_text="what the node's check found; [] when healthy"
    )


class HeartbeatRequestSerializer(serializers.Serializer):
    running = serializers.BooleanField(required=False)


class HeartbeatSerializer(serializers.Serializer):
    expires = serializers.DateTimeField()
    cancel = serializers.BooleanField()


class FailRequestSerializer(serializers.Serializer):
    error = serializers.CharField()
    retry = serializers.BooleanField(required=False)


class ImageRequestSerializer(serializers.Serializer):
    name = serializers.CharField()
    reference = serializers.CharField()


class ImageSerializer(serializers.ModelSerializer):
    reference = serializers.CharField(source="blob_id")
    size = serializers.IntegerField(source="blob.size")

    class Meta:
        model = Image
        fields = ("name", "reference", "size")


class ImagePageSerializer(serializers.Serializer):
    results = ImageSerializer(many=True)


class StatsSerializer(serializers.Serializer):
    states = serializers.DictField(child=serializers.IntegerField())
    nodes = serializers.DictField(child=serializers.DictField())
    oldest_queued = serializers.DateTimeField(allow_null=True)


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()
    field = serializers.CharField(required=False)
