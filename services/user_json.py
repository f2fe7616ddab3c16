"""Limits on JSON that users send, and naming the field when a request cannot be decoded.

One depth limit for every JSON value a user supplies — a strategy's ``params_schema`` (JSON
text), a task's ``params`` (a ``google.protobuf.Struct``) — so deeply nested input is a 400
naming the field, never a RecursionError (500) in a parser or a renderer later.

REST bodies reach the services as protobuf (Envoy's transcoder parses the JSON), and protobuf
refuses messages nested more than 100 levels deep (a JSON level inside a Struct takes two). Such
a request does not even decode, so the interceptor asks ``undecodable_field`` which field made
the bytes unreadable: a string that is not UTF-8, or a value nested too deeply.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from services.errors import InvalidArgument
from services.json_limits import DEPTH_MESSAGE, MAX_JSON_DEPTH

PROTOBUF_MAX_DEPTH = 100  # the protobuf runtime's recursion limit when parsing
_STRUCT_TYPES = frozenset({"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"})


def text_depth(text: str) -> int:
    """Deepest nesting of arrays/objects in JSON text, without parsing it (no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def value_depth(value: Any) -> int:
    """Deepest nesting of lists/dicts in a decoded JSON value (iterative)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > MAX_JSON_DEPTH:
                return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def struct_depth(message: struct_pb2.Struct | struct_pb2.ListValue) -> int:
    """Deepest nesting of a Struct as JSON (a Struct is one object level)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(message, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, struct_pb2.Value):
            kind = item.WhichOneof("kind")
            if kind == "struct_value":
                item = item.struct_value
            elif kind == "list_value":
                item = item.list_value
            else:
                continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > MAX_JSON_DEPTH:
                return deepest
        children = item.fields.values() if isinstance(item, struct_pb2.Struct) else item.values
        stack.extend((child, depth) for child in children)
    return deepest


def parse_json_text(text: str, field: str) -> Any:
    """``json.loads`` for text a user sent in ``field``: too deep or not JSON → INVALID_ARGUMENT."""
    import json

    if text_depth(text) > MAX_JSON_DEPTH:
        raise InvalidArgument.field(field, DEPTH_MESSAGE)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidArgument.field(field, f"is not valid JSON: {exc}") from None


def struct_violation(message: struct_pb2.Struct) -> str | None:
    """The depth rule for a Struct field (e.g. params); None when it holds."""
    return DEPTH_MESSAGE if struct_depth(message) > MAX_JSON_DEPTH else None


# ---- requests that do not decode -------------------------------------------------------------


class _Truncated(Exception):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise _Truncated
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _walk(descriptor: Descriptor, data: bytes, path: str, depth: int, in_json: bool) -> tuple[str, str] | None:
    """First (field path, problem) in ``data`` read as ``descriptor``; None when none is found.
    Inside a Struct the path stops growing: the user knows the field by its own name."""
    if depth >= PROTOBUF_MAX_DEPTH - 1:
        return path or "request", DEPTH_MESSAGE if in_json else "is nested too deeply"
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(data, pos)
            continue
        if wire == 1:
            pos += 8
            continue
        if wire == 5:
            pos += 4
            continue
        if wire != 2:
            return path or "request", "is not a valid protobuf message"
        size, pos = _varint(data, pos)
        chunk = data[pos:pos + size]
        if len(chunk) != size:
            raise _Truncated
        pos += size
        field = descriptor.fields_by_number.get(number)
        if field is None:
            continue
        name = path if in_json else (f"{path}.{field.name}" if path else field.name)
        if field.type == FieldDescriptor.TYPE_STRING:
            try:
                chunk.decode("utf-8")
            except UnicodeDecodeError:
                return name, "must be valid UTF-8"
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            child = field.message_type
            found = _walk(child, chunk, name, depth + 1, in_json or child.full_name in _STRUCT_TYPES)
            if found is not None:
                return found
    return None


def undecodable_field(message_class: Any, data: bytes) -> tuple[str, str]:
    """(field path, problem) for request bytes the protobuf runtime refused to parse."""
    descriptor = getattr(message_class, "DESCRIPTOR", None)
    if isinstance(descriptor, Descriptor):
        try:
            found = _walk(descriptor, data, "", 0, descriptor.full_name in _STRUCT_TYPES)
        except _Truncated:
            found = None
        if found is not None:
            return found
    return "request", "is not a valid protobuf message"
