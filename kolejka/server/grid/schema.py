"""OpenAPI schema additions: the error answers every operation may give, in the one shape of
`serializers.ErrorSerializer`, and the headers every answer carries."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from rest_framework import serializers

from .serializers import ErrorSerializer

ERRORS = {
    "400": "invalid input; `field` names it",
    "401": "not authenticated",
    "403": "the caller's role may not do this",
    "404": "no such object (or not the caller's)",
    "405": "method not allowed",
    "409": "conflict with the object's state",
    "413": "the body is too large",
    "415": "unsupported media type",
    "503": "the server cannot reach its database; repeat after Retry-After seconds",
    "507": "the caller's quota, or the server's storage, is full",
}
# Text without NUL characters and lone surrogates (parsers.StrictJSONParser refuses them).
TEXT = "^[^\\u0000\\ud800-\\udfff]*$"
MAX_WAIT_HEADER = {
    "Kolejka-Max-Wait": {
        "description": "the longest long-poll wait this server grants, in seconds",
        "schema": {"type": "number"},
    }
}
RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "seconds to wait before repeating",
        "schema": {"type": "integer"},
    }
}


def error_component() -> dict[str, Any]:
    """The JSON schema of `ErrorSerializer` (its fields are all strings)."""
    fields = ErrorSerializer().fields
    assert all(isinstance(field, serializers.CharField) for field in fields.values())
    return {
        "type": "object",
        "description": ErrorSerializer.__doc__,
        "properties": {
            name: {"type": "string", "description": str(field.help_text)}
            for name, field in fields.items()
        },
        "required": [name for name, field in fields.items() if field.required],
        "additionalProperties": True,
    }


def add_error_responses(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = error_component()
    reference = {"$ref": "#/components/schemas/Error"}
    for path in result.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            for status, answer in responses.items():
                if status.startswith("2"):
                    answer.setdefault("headers", {}).update(MAX_WAIT_HEADER)
            for status, description in ERRORS.items():
                responses.setdefault(
                    status,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": reference}},
                        "headers": RETRY_AFTER_HEADER if status == "503" else {},
                    },
                )
    return result


class DocumentSchema(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]
    """A whole-body document of the task format (a result): an object the format describes."""

    target_class = "kolejka.server.grid.fields.DocumentSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        return {
            "type": "object",
            "description": (type(self.target).__doc__ or "").strip() + " (docs/task-format.md)",
            "additionalProperties": True,
        }


class StrictSchema(OpenApiSerializerExtension):  # type: ignore[no-untyped-call]
    """A strict request serializer: its object takes no other keys."""

    target_class = "kolejka.server.grid.fields.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema: dict[str, Any] = auto_schema._map_basic_serializer(self.target, direction)
        schema["additionalProperties"] = False
        for field in schema.get("properties", {}).values():
            for text in (field, field.get("items") or {}):
                if text.get("type") == "string" and not {"pattern", "enum", "format"} & set(text):
                    text["pattern"] = TEXT  # what the strict JSON parser lets through
        return schema
