"""Request bodies: JSON read strictly, and the raw bytes of a blob upload.

Strict JSON refuses what the JSON grammar allows but nothing downstream can hold, with a 400
naming the place: an object holding one key twice (Python would keep the last silently), nesting
deeper than `MAX_DEPTH`, NaN, infinities and numbers too large for a float, NUL characters and
lone UTF-16 surrogates in strings (PostgreSQL's jsonb cannot store either, and no program's
arguments or environment can hold them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

from .errors import Invalid, TooLarge

MAX_DEPTH = 64
# The escapes a NUL or a surrogate arrives as: raw control characters are not valid JSON, and a
# raw surrogate is not valid UTF-8. Bodies without them skip the walk over every string.
_SUSPECT = re.compile(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


class DuplicateKey(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(f"the key {key!r} appears twice in one object")
            seen.add(key)
    return document


def _constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:40]} is too large")
    return value


def _walk(document: Any) -> Iterator[tuple[str, Any, int]]:
    """Every value of `document` with its path (``tasks[0].task.args[1]``) and depth."""
    stack: list[tuple[str, Any, int]] = [("", document, 0)]
    while stack:
        path, value, depth = stack.pop()
        yield path, value, depth
        if isinstance(value, dict):
            for key, item in value.items():
                yield f"{path}.{key}" if path else key, key, depth + 1
                stack.append((f"{path}.{key}" if path else key, item, depth + 1))
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", item, depth + 1) for index, item in enumerate(value))


def loads(text: str) -> Any:
    """`text` as JSON, strictly (see the module's docstring); `ParseError` or `Invalid` if not."""
    try:
        document = json.loads(
            text, object_pairs_hook=_object, parse_constant=_constant, parse_float=_float
        )
    except RecursionError:
        raise ParseError(f"JSON parse error - nested more than {MAX_DEPTH} deep") from None
    except ValueError as error:
        raise ParseError(f"JSON parse error - {error}") from None
    suspect = _SUSPECT.search(text) is not None
    deep = text.count("[") + text.count("{") > MAX_DEPTH
    if suspect or deep:
        for path, value, depth in _walk(document):
            if depth > MAX_DEPTH:
                raise ParseError(f"JSON parse error - nested more than {MAX_DEPTH} deep")
            if suspect and isinstance(value, str) and _BAD_TEXT.search(value):
                where = path or "body"
                raise Invalid(
                    f"{where}: must not hold NUL characters or lone UTF-16 surrogates",
                    field=path or None,
                )
    return document


class StrictJSONParser(BaseParser):
    """``application/json`` bodies, read by `loads`."""

    media_type = "application/json"

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        cap = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(cap + 1)
        if len(raw) > cap:
            raise TooLarge(f"the JSON body is larger than {cap} bytes; send files as blobs")
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            raise ParseError(f"JSON parse error - the body is not {encoding} text") from None
        return loads(text)


class RawBytes(BaseParser):
    """A blob upload's body: the view streams it itself, so this never reads it."""

    media_type = "application/octet-stream"

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        return stream


class JsonAlways(BaseContentNegotiation):
    """The API speaks JSON (and raw bytes for blobs) whatever ``Accept`` says: a client asking
    for ``application/octet-stream`` gets its blob, not a 406. A body is parsed only by the
    parser of exactly its media type."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        content_type = request.content_type.split(";")[0].strip()
        for parser in parsers:
            if parser.media_type == content_type:
                return parser
        return None

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, str(renderer.media_type)


class OriginalBodies(JsonAlways):
    """The legacy API's bodies as the original's server read them: a body of a type the view
    parses by its parser, and any other (the original's client sends its JSON and its blobs with
    no ``Content-Type``) by the view's first parser."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        found = list(parsers)
        return super().select_parser(request, found) or (found[0] if found else None)
