"""OpenAPI schema additions: every operation may answer with the one error shape."""

from __future__ import annotations

from typing import Any

ERRORS = {
    "400": "invalid input; `field` names it",
    "401": "not authenticated",
    "403": "the caller's role may not do this",
    "404": "no such object (or not the caller's)",
    "405": "method not allowed",
    "406": "not acceptable",
    "409": "conflict with the object's state",
    "413": "the body is too large",
    "415": "unsupported media type",
    "507": "quota exceeded",
}


def add_error_responses(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = {
        "type": "object",
        "properties": {
            "code": {"type": "string"},
            "detail": {"type": "string"},
            "field": {"type": "string"},
        },
        "required": ["code", "detail"],
    }
    reference = {"$ref": "#/components/schemas/Error"}
    for path in result.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            for status, description in ERRORS.items():
                responses.setdefault(
                    status,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": reference}},
                    },
                )
    return result
