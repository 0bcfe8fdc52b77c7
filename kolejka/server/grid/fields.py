"""Serializer fields for JSON request bodies, stricter than DRF's own: a JSON ``true`` is not a
number, ``"1"`` is not a boolean, ``5`` is not a string; documents of the task format are read
by `kolejka.common`, whose errors name the field."""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from kolejka.common import SpecError

T = TypeVar("T")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def spec_message(error: SpecError) -> str:
    """`error`'s message without its field (the serializer's path names it)."""
    return f"{error.problem} (got {_shown(error.value)})"


class StrictBooleanField(serializers.BooleanField):
    """A JSON ``true`` or ``false``, nothing else."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            raise serializers.ValidationError(f"must be true or false (got {_shown(data)})")
        return data


class StrictCharField(serializers.CharField):
    """A JSON string (DRF's own also takes numbers), free of NUL and lone surrogates."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            raise serializers.ValidationError(f"must be a string (got {_shown(data)})")
        return str(super().to_internal_value(data))


class StrictIntegerField(serializers.IntegerField):
    """A JSON whole number (DRF's own also takes ``"3"``, ``3.0`` and ``true``)."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise serializers.ValidationError(f"must be a whole number (got {_shown(data)})")
        return int(super().to_internal_value(data))


@extend_schema_field({"type": "string", "format": "byte"})
class Base64Field(serializers.Field):  # type: ignore[type-arg]
    """Bytes as a JSON string of base64, at most `max_bytes` of them once decoded."""

    def __init__(self, *, max_bytes: int, **kwargs: Any) -> None:
        self.max_bytes = max_bytes
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> bytes:
        if not isinstance(data, str):
            raise serializers.ValidationError(f"must be a string of base64 (got {_shown(data)})")
        too_long = serializers.ValidationError(f"must be at most {self.max_bytes} bytes")
        if len(data) > (self.max_bytes + 2) // 3 * 4:
            raise too_long  # before decoding it
        try:
            decoded = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise serializers.ValidationError("must be base64 (RFC 4648, with padding)") from None
        if len(decoded) > self.max_bytes:
            raise too_long
        return decoded

    def to_representation(self, value: bytes) -> str:
        return base64.b64encode(value).decode("ascii")


class WaitField(serializers.FloatField):
    """A long-poll's wait in seconds, from 0; a longer wait than ``KOLEJKA_MAX_WAIT`` is cut to
    it (every answer says the maximum in ``Kolejka-Max-Wait``)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("default", 0.0)
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault(
            "help_text",
            "long-poll: seconds to wait for news; the server cuts it to its maximum "
            "(the Kolejka-Max-Wait header)",
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or data is None:
            raise serializers.ValidationError(f"must be a number of seconds (got {_shown(data)})")
        value = float(super().to_internal_value(data))
        if not math.isfinite(value):
            raise serializers.ValidationError("must be a finite number of seconds")
        return min(value, float(settings.MAX_WAIT))


@extend_schema_field({"type": "object", "additionalProperties": True})
class SpecField(serializers.JSONField, Generic[T]):
    """A value read by a parser of `kolejka.common` (a task, limits, a capacity): `parse(value,
    name)` returns it or raises `SpecError`, whose field becomes this field's path."""

    def __init__(self, parse: Callable[[object, str], T], **kwargs: Any) -> None:
        self.parse = parse
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> T:  # type: ignore[override]
        name = self.field_name or ""
        try:
            return self.parse(data, name)
        except SpecError as error:
            inner = error.field
            if inner == name or inner.startswith(name + "."):
                inner = inner[len(name) :].lstrip(".")
            message = spec_message(error)
            raise serializers.ValidationError({inner: [message]} if inner else [message]) from None

    def to_representation(self, value: Any) -> Any:
        return value.to_dict() if hasattr(value, "to_dict") else value


class StrictSerializer(serializers.Serializer[Any]):
    """A request's body or query: keys it does not declare are refused, naming the first."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise serializers.ValidationError(
                {"non_field_errors": [f"must be a JSON object (got {_shown(data)})"]}
            )
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            known = ", ".join(sorted(self.fields)) or "none"
            raise serializers.ValidationError({unknown[0]: [f"unknown field; known: {known}"]})
        return super().to_internal_value(data)


class DocumentSerializer(serializers.BaseSerializer[Any], Generic[T]):
    """A whole body that is a document of the task format (a result), read by `parse`."""

    parse: Callable[[object], T]

    def to_internal_value(self, data: Any) -> T:
        try:
            return type(self).parse(data)
        except SpecError as error:
            raise serializers.ValidationError({error.field: [spec_message(error)]}) from None

    def to_representation(self, instance: Any) -> Any:
        return instance.to_dict()
