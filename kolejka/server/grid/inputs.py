"""What the API takes: one strict serializer per request body and query string, which both
validates the request and describes it in the schema. Unknown keys are refused; documents of the
task format are read by `kolejka.common`."""

from __future__ import annotations

import re
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from kolejka.common import Capacity, Limits, Result, SpecError, Status, TaskState
from kolejka.common import Task as TaskSpec
from kolejka.common.after import MAX_AFTER, After, parse_after
from kolejka.common.blobs import is_reference
from kolejka.common.notify import BATCH_EVENTS, Notify, parse_notify

from .fields import (
    Base64Field,
    DocumentSerializer,
    SpecField,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    WaitField,
    spec_message,
)
from .logs import MAX_CHUNK, MAX_READ
from .models import LogStream

MAX_BATCH = 1000
MAX_PRIORITY = 2**31 - 1
NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
STATES = [str(state) for state in TaskState]


def _task(data: object, name: str) -> TaskSpec:
    return TaskSpec.from_dict(data, strict=True)


def _capacity(data: object, name: str) -> Capacity:
    return Capacity.from_dict(data, name)


def _limits(data: object, name: str) -> Limits:
    return Limits.from_dict(data, name)


def _reference(value: str) -> None:
    if not is_reference(value):
        raise serializers.ValidationError("must be a blob reference: a sha256 in lower-case hex")


@extend_schema_field(
    {
        "type": "array",
        "maxItems": MAX_AFTER,
        "items": {
            "oneOf": [
                {"type": "string", "description": "[WHEN:]KEY or [WHEN:]#POSITION"},
                {
                    "type": "object",
                    "properties": {
                        "key": {"type": "string"},
                        "position": {"type": "integer", "minimum": 0},
                        "when": {"type": "string", "enum": ["ok", "any", "notok"]},
                    },
                    "additionalProperties": False,
                },
            ]
        },
    }
)
class AfterField(SpecField[tuple[After, ...]]):
    """Dependencies (`kolejka.common.after`): the task waits until they end as they say."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("default", list)
        kwargs.setdefault(
            "help_text",
            "tasks or batches (by key; within a batch submission also by position) this task "
            "waits for: ok (done with an OK verdict), notok (ended any other way) or any",
        )
        super().__init__(parse_after, **kwargs)

    def to_internal_value(self, data: Any) -> tuple[After, ...]:  # type: ignore[override]
        try:
            return parse_after(data, "")
        except SpecError as error:
            # "[2].when": the error renderer names the item of the list as ``after[2].when``.
            item = re.fullmatch(r"\[(\d+)\](?:\.(.+))?", error.field)
            message = [spec_message(error)]
            if item is None:
                raise serializers.ValidationError(message) from None
            inner = {item[2]: message} if item[2] else message
            raise serializers.ValidationError({int(item[1]): inner}) from None  # type: ignore[dict-item]

    def to_representation(self, value: Any) -> Any:
        return [item.to_dict() if isinstance(item, After) else item for item in value]


def _rank(**kwargs: Any) -> StrictIntegerField:
    return StrictIntegerField(
        min_value=-MAX_PRIORITY,
        max_value=MAX_PRIORITY,
        help_text="the owner's own order of their queued tasks of one priority, higher first; "
        "never ahead of another user's tasks",
        **kwargs,
    )


# The most tasks one claim takes: about as many as a node runs at once.
MAX_CLAIM = 256

# Bodies


class TokenRequest(StrictSerializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(trim_whitespace=False, max_length=4096)


class SubmitRequest(StrictSerializer):
    task = SpecField(_task, help_text="kolejka_task.json, files as blob references")
    priority = StrictIntegerField(
        required=False,
        default=0,
        min_value=-MAX_PRIORITY,
        max_value=MAX_PRIORITY,
        help_text="higher runs first; only admins may go above 0",
    )
    rank = _rank(required=False, default=0)
    after = AfterField()


class ScheduleRequest(StrictSerializer):
    cron = StrictCharField(
        max_length=200, help_text="five fields (minute hour day month weekday), UTC: '*/5 * * * *'"
    )
    task = SpecField(_task, help_text="kolejka_task.json, files as blob references")
    priority = StrictIntegerField(
        required=False, default=0, min_value=-MAX_PRIORITY, max_value=MAX_PRIORITY
    )
    missed = serializers.ChoiceField(
        choices=["once", "skip"],
        required=False,
        default="once",
        help_text="ticks missed while no server ran: once (one run for them all) or skip",
    )


def _batch_notify(data: object, name: str) -> tuple[Notify, ...]:
    return parse_notify(data, name, BATCH_EVENTS)


class BatchNotifyField(SpecField[tuple[Notify, ...]]):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "help_text",
            'where to tell of the batch\'s completion: [{"webhook": URL, "format": "json" | '
            '"slack"}, {"email": ADDRESS}]',
        )
        super().__init__(_batch_notify, required=False, default=tuple, **kwargs)

    def to_representation(self, value: Any) -> Any:
        return [item.to_dict() for item in value]


class BatchSubmitRequest(StrictSerializer):
    tasks = SubmitRequest(many=True, allow_empty=False, max_length=MAX_BATCH)  # type: ignore[call-arg]
    notify = BatchNotifyField()


class BatchOpenRequest(StrictSerializer):
    """Opening a batch: its pages bring the tasks."""

    notify = BatchNotifyField()


class BatchPageRequest(StrictSerializer):
    start = StrictIntegerField(
        min_value=0,
        max_value=2**31 - 1,
        help_text="the position of the page's first task: the batch's size so far",
    )
    tasks = SubmitRequest(many=True, allow_empty=False, max_length=MAX_BATCH)  # type: ignore[call-arg]


class BatchRerunRequest(StrictSerializer):
    which = serializers.ChoiceField(
        choices=["failed", "all", "verdict"],
        help_text="failed: every task that did not end with an OK verdict; all: every finished "
        "task; verdict: the done tasks with one of `verdicts`",
    )
    verdicts = serializers.ListField(
        child=serializers.ChoiceField(choices=[str(status) for status in Status]),
        required=False,
        default=list,
        max_length=len(Status),
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["which"] == "verdict" and not attrs["verdicts"]:
            raise serializers.ValidationError({"verdicts": ["name at least one verdict"]})
        return attrs


class RankRequest(StrictSerializer):
    rank = _rank()


class RejudgeRequest(StrictSerializer):
    """Which finished tasks a rejudge runs again: every filter given must hold."""

    state = serializers.ChoiceField(
        choices=[str(state) for state in TaskState if state.final], required=False
    )
    verdicts = serializers.ListField(
        child=serializers.ChoiceField(choices=[str(status) for status in Status]),
        required=False,
        default=list,
        max_length=len(Status),
        help_text="done tasks with one of these verdicts",
    )
    batch = StrictCharField(required=False, max_length=64)
    tag = StrictCharField(
        required=False, max_length=255, help_text="tasks that require this node tag"
    )
    owner = StrictCharField(required=False, max_length=150, help_text="admins: another's tasks")


class BundleRequest(StrictSerializer):
    references = serializers.ListField(
        child=StrictCharField(validators=[_reference]),
        allow_empty=False,
        max_length=MAX_BATCH,
        help_text="the blobs wanted, in order",
    )


class CapacityField(SpecField[Capacity]):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "help_text",
            '{"cpus", "memory", "gpus", "workspace", "resources": {"name": count}}; sizes in '
            "bytes or with units (16G)",
        )
        super().__init__(_capacity, **kwargs)


class NodeRequest(StrictSerializer):
    capacity = CapacityField(required=False)
    tags = serializers.ListField(
        child=StrictCharField(allow_blank=False, max_length=255), required=False, max_length=1000
    )
    defaults = SpecField(
        _limits, required=False, help_text="limits, as in kolejka_task.json: what tasks get"
    )
    slots = StrictIntegerField(
        required=False, default=1, min_value=1, max_value=10000, help_text="tasks run at once"
    )


class DrainRequest(StrictSerializer):
    drain = StrictBooleanField(required=False, default=True)


class ClaimRequest(StrictSerializer):
    free = CapacityField(
        required=False, allow_null=True, help_text="what is free now (default: the capacity less "
        "what the node's running tasks take)"
    )  # fmt: skip
    idle = StrictBooleanField(
        required=False, allow_null=True, help_text="whether the node runs nothing (default: "
        "whether it holds no lease)"
    )  # fmt: skip
    max = StrictIntegerField(
        required=False,
        default=1,
        min_value=1,
        max_value=MAX_CLAIM,
        help_text="take up to this many tasks that start together in `free` (at most the "
        "node's free slots); all come in `claimed`",
    )
    wait = WaitField()


class HealthRequest(StrictSerializer):
    problems = serializers.ListField(
        child=StrictCharField(allow_blank=False, max_length=1000),
        max_length=32,
        help_text="what the node's own check found; [] when healthy",
    )


class HeartbeatRequest(StrictSerializer):
    running = StrictBooleanField(required=False, default=False)


class FailRequest(StrictSerializer):
    error = StrictCharField(allow_blank=False, max_length=65536, help_text="what failed")
    retry = StrictBooleanField(required=False, default=True)


class ResultRequest(DocumentSerializer[Result]):
    """kolejka_result.json, files as references of blobs the foreman uploaded."""

    parse = Result.from_dict


class ResultQuery(StrictSerializer):
    claim = serializers.IntegerField(
        required=False,
        default=0,
        min_value=0,
        max_value=MAX_CLAIM,
        help_text="also claim up to this many next tasks for the lease's node, without "
        "waiting, in what is free once this task ends (its capacity less its other tasks): "
        "they come in `claimed` as a claim's would",
    )


class LogAppendRequest(StrictSerializer):
    stream = serializers.ChoiceField(choices=LogStream.choices)
    offset = StrictIntegerField(
        min_value=0,
        max_value=2**62,
        help_text="where `data` starts in the stream: the end the last answer gave (a chunk "
        "sent again is not stored twice)",
    )
    # A field named as DRF's `Serializer.data`: the metaclass takes it out of the class.
    data = Base64Field(  # type: ignore[assignment]
        max_bytes=MAX_CHUNK, help_text="the bytes, base64; at most 64 KiB"
    )
    truncated = StrictBooleanField(
        required=False, default=False, help_text="the node's output cap ends the stream here"
    )


def _original_task(data: object) -> TaskSpec:
    """A task as the original's client sends it: the server names the task, so the `id` it may
    carry is dropped (as the original's server did), and so is the `path` the client keeps
    beside the `reference` of an uploaded file."""
    if isinstance(data, dict):
        data = {key: value for key, value in data.items() if key != "id"}
        files = data.get("files")
        if isinstance(files, dict):
            data["files"] = {
                name: {key: value for key, value in file.items() if key != "path"}
                if isinstance(file, dict) and file.get("reference")
                else file
                for name, file in files.items()
            }
    return TaskSpec.from_dict(data, strict=True)


class LegacyTaskRequest(DocumentSerializer[TaskSpec]):
    """kolejka_task.json as the original client sends it, files as blob references."""

    parse = staticmethod(_original_task)


class ImageRequest(StrictSerializer):
    name = StrictCharField(max_length=255, help_text="a docker image name")
    reference = StrictCharField(validators=[_reference], help_text="the blob of its tarball")


# Query strings


class PageQuery(StrictSerializer):
    """A page of a list, newest first: `owner` (inspectors and admins), `limit`, `cursor`."""

    owner = serializers.CharField(
        required=False, allow_blank=True, max_length=150, help_text="inspectors and admins"
    )
    limit = serializers.IntegerField(required=False, default=100, min_value=1, max_value=1000)
    cursor = serializers.RegexField(
        r"^[0-9]{1,18}$",
        required=False,
        allow_blank=True,
        help_text="the `next` of the previous page",
        error_messages={"invalid": "is not a cursor this server gave"},
    )


class TaskListQuery(PageQuery):
    state = serializers.ChoiceField(choices=STATES, required=False, allow_blank=True)
    batch = serializers.CharField(required=False, allow_blank=True, max_length=64)


class TaskWaitQuery(StrictSerializer):
    wait = WaitField()
    state = serializers.ChoiceField(
        choices=STATES,
        required=False,
        allow_blank=True,
        help_text="with wait: answer when the task leaves this state",
    )


class ResultWaitQuery(StrictSerializer):
    wait = WaitField(
        help_text="long-poll: seconds to wait for the task to finish; the server cuts it to its "
        "maximum (the Kolejka-Max-Wait header)"
    )


class LogQuery(StrictSerializer):
    stream = serializers.ChoiceField(
        choices=LogStream.choices,
        required=False,
        allow_blank=True,
        default=LogStream.STDOUT,
        help_text="stdout (also when empty) or stderr",
    )

    def validate_stream(self, value: str) -> str:
        return value or LogStream.STDOUT

    offset = serializers.IntegerField(
        required=False, default=0, min_value=0, max_value=2**62, help_text="the first byte wanted"
    )
    limit = serializers.IntegerField(
        required=False,
        default=MAX_CHUNK,
        min_value=1,
        max_value=MAX_READ,
        help_text="at most this many bytes",
    )
    wait = WaitField(
        help_text="long-poll: seconds to wait for output past `offset` (or the task's end) "
        "when there is none yet; the server cuts it to its maximum (the Kolejka-Max-Wait header)"
    )


class BatchListQuery(PageQuery):
    state = serializers.ChoiceField(choices=["open", "sealed"], required=False, allow_blank=True)


class ImageQuery(StrictSerializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=255)


def node_name(name: str) -> str:
    """`name` if it may name a node; `ValidationError` naming ``name`` otherwise."""
    if not NODE_NAME.fullmatch(name):
        raise serializers.ValidationError(
            {"name": ["a node name is letters, digits, '.', '_' and '-', at most 255"]}
        )
    return name
