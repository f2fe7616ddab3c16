"""The JSON types of every transcoded request body, for the gateway's request check (``make proto``).

Envoy's transcoder parses REST bodies with protobuf's lenient JSON converter: ``"yes"`` becomes
``true``, a string becomes a one-element list, and its type errors often name no field. The
gateway therefore checks each body against the proto3 JSON mapping of its request message
before the transcoder sees it (deploy/request_check.lua, docs/gateway.md). This module writes
what that check needs, read from the same REST services and ``google.api.http`` rules as
protos/openapi.py, as a Lua table: deploy/request_types.lua, next to the descriptor set.

The table (only data; the checking code is hand-written in deploy/request_check.lua)::

    routes   = {{"POST", "/api/v1/users", "zquant.auth.v1.CreateUserRequest"}, ...}
    messages = {["zquant.auth.v1.CreateUserRequest"] = {
                   is_admin = {name = "is_admin", kind = "bool"}, isAdmin = <the same>, ...}}
    enums    = {["zquant.backtest.v1.SweepMethod"] = {grid = true, ...}}  -- names, lower case

A field is ``{name, kind}`` plus ``repeated = true``, or ``map_key = <kind>`` (its kind is then
the map value's), ``message``/``enum`` naming the type. Kinds: bool, string, bytes, int32,
uint32, int64, uint64, double, enum, message, struct (a JSON object), list (a JSON array),
value (any JSON), any (google.protobuf.Any: an object). Well-known types map to the kind of
their JSON form (Timestamp, Duration, FieldMask: string; wrappers: the wrapped scalar).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

_SCALAR_KINDS = {
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_SINT32: "int32",
    FieldDescriptor.TYPE_SFIXED32: "int32",
    FieldDescriptor.TYPE_UINT32: "uint32",
    FieldDescriptor.TYPE_FIXED32: "uint32",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_SINT64: "int64",
    FieldDescriptor.TYPE_SFIXED64: "int64",
    FieldDescriptor.TYPE_UINT64: "uint64",
    FieldDescriptor.TYPE_FIXED64: "uint64",
    FieldDescriptor.TYPE_DOUBLE: "double",
    FieldDescriptor.TYPE_FLOAT: "double",
}
# Well-known messages whose proto3 JSON form is not an object of their fields.
_WELL_KNOWN = {
    "google.protobuf.Struct": "struct",
    "google.protobuf.ListValue": "list",
    "google.protobuf.Value": "value",
    "google.protobuf.Any": "any",
    "google.protobuf.Timestamp": "string",
    "google.protobuf.Duration": "string",
    "google.protobuf.FieldMask": "string",
    "google.protobuf.BoolValue": "bool",
    "google.protobuf.StringValue": "string",
    "google.protobuf.BytesValue": "bytes",
    "google.protobuf.Int32Value": "int32",
    "google.protobuf.UInt32Value": "uint32",
    "google.protobuf.Int64Value": "int64",
    "google.protobuf.UInt64Value": "uint64",
    "google.protobuf.DoubleValue": "double",
    "google.protobuf.FloatValue": "double",
}
# The path templates the check can match: literal segments and single-segment variables
# (`{name}` or `{name=*}`), with an optional `:verb`. Anything else (`**`) must be taught to
# deploy/request_check.lua first, so generation refuses it rather than skip a route.
_VARIABLE = re.compile(r"\{[a-z_][a-z0-9_.]*(=\*)?\}")
_LITERAL = re.compile(r"[A-Za-z0-9_.~-]+")


class Schema:
    """Routes with a JSON body and the request messages reachable from them."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, str, str]] = []
        self.messages: dict[str, dict[str, dict[str, Any]]] = {}
        self.enums: dict[str, list[str]] = {}

    def add_route(self, verb: str, path: str, request: Descriptor) -> None:
        check_template(path)
        self.routes.append((verb.upper(), path, request.full_name))
        self.add_message(request)

    def add_message(self, message: Descriptor) -> None:
        if message.full_name in self.messages or message.full_name in _WELL_KNOWN:
            return
        fields: dict[str, dict[str, Any]] = {}
        self.messages[message.full_name] = fields  # before the fields: recursive types
        for field in message.fields:
            fields[field.name] = self.field_spec(field)

    def field_spec(self, field: FieldDescriptor) -> dict[str, Any]:
        spec: dict[str, Any] = {"name": field.name}
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            spec["map_key"] = self.kind(field.message_type.fields_by_name["key"], spec)
            spec["kind"] = self.kind(field.message_type.fields_by_name["value"], spec)
            return spec
        spec["kind"] = self.kind(field, spec)
        if field.is_repeated:
            spec["repeated"] = True
        return spec

    def kind(self, field: FieldDescriptor, spec: dict[str, Any]) -> str:
        """The kind of one value of ``field``; names its message or enum type in ``spec``."""
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            name = field.message_type.full_name
            if name in _WELL_KNOWN:
                return _WELL_KNOWN[name]
            self.add_message(field.message_type)
            spec["message"] = name
            return "message"
        if field.type == FieldDescriptor.TYPE_ENUM:
            enum = field.enum_type
            # case_insensitive_enum_parsing (deploy/envoy.yaml): any case of a name is accepted.
            self.enums[enum.full_name] = sorted({v.name.lower() for v in enum.values})
            spec["enum"] = enum.full_name
            return "enum"
        if field.type == FieldDescriptor.TYPE_GROUP:
            raise ValueError(f"{field.full_name}: groups have no proto3 JSON form")
        return _SCALAR_KINDS[field.type]


def check_template(path: str) -> None:
    """Refuse a path template deploy/request_check.lua cannot match exactly."""
    if not path.startswith("/"):
        raise ValueError(f"path template {path!r} must start with /")
    body, _, verb = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "")
    if verb and not _LITERAL.fullmatch(verb):
        raise ValueError(f"path template {path!r}: custom verb {verb!r} is not a plain word")
    for segment in body[1:].split("/"):
        if not (_LITERAL.fullmatch(segment) or _VARIABLE.fullmatch(segment)):
            raise ValueError(f"path template {path!r}: segment {segment!r} is neither a literal nor a "
                             f"single-segment variable; teach deploy/request_check.lua to match it first")


def build() -> Schema:
    """The schema of every body-carrying REST binding of the REST services in protos/."""
    from protos import openapi  # the same reading of the REST services and http rules
    from services import rest_contract

    schema = Schema()
    for service in openapi.rest_services():
        rest_contract.check_binding(service)
        typed = rest_contract.typed_service(service)
        for method in service.methods:
            request = typed.methods_by_name[method.name].input_type
            for verb, path, body in openapi.http_rules(method):
                if not body:
                    continue
                if body != "*":
                    raise ValueError(f"{service.full_name}.{method.name}: body {body!r}: only body \"*\" is "
                                     f"checked by the gateway (deploy/request_check.lua)")
                schema.add_route(verb, path, request)
    return schema


# ---------------------------------------------------------------- Lua output


def _lua_string(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.extend(f"\\{b}" for b in ch.encode())
    out.append('"')
    return "".join(out)


def _lua_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name not in _LUA_KEYWORDS \
        else f"[{_lua_string(name)}]"


_LUA_KEYWORDS = frozenset({"and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
                           "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"})


_SPEC_ORDER = ("name", "kind", "repeated", "map_key", "message", "enum")


def _lua_table(spec: dict[str, Any]) -> str:
    parts = []
    for key, value in sorted(spec.items(), key=lambda item: _SPEC_ORDER.index(item[0])):
        rendered = "true" if value is True else _lua_string(str(value))
        parts.append(f"{_lua_key(key)} = {rendered}")
    return "{" + ", ".join(parts) + "}"


def render(schema: Schema, max_json_depth: int, depth_message: str) -> str:
    """deploy/request_types.lua: ``return {routes = ..., messages = ..., enums = ...}``."""
    lines = [
        "-- Generated by `make proto` (protos/request_types.py) from protos/: do not edit.",
        "-- The proto3 JSON types of every transcoded request body; deploy/request_check.lua checks",
        "-- request bodies against them before Envoy's transcoder parses them (docs/gateway.md).",
        "return {",
        "  -- JSON inside a Struct/Value/ListValue field nests at most this many arrays/objects,",
        "  -- refused in these words (services/json_limits.py: the services' own rule).",
        f"  max_json_depth = {max_json_depth},",
        f"  json_depth_message = {_lua_string(depth_message)},",
        "  routes = {",
    ]
    lines += [f"    {{{_lua_string(v)}, {_lua_string(p)}, {_lua_string(m)}}}," for v, p, m in schema.routes]
    lines += ["  },", "  messages = {"]
    for name in sorted(schema.messages):
        lines.append(f"    [{_lua_string(name)}] = {{")
        fields = schema.messages[name]
        for field_name, spec in fields.items():
            lines.append(f"      {_lua_key(field_name)} = {_lua_table(spec)},")
        lines.append("    },")
    lines += ["  },", "  -- The JSON names (lowerCamelCase) the converter accepts next to the proto names.",
              "  json_names = {"]
    for name in sorted(schema.messages):
        aliases = json_names(name)
        if aliases:
            pairs = ", ".join(f"{_lua_key(j)} = {_lua_string(p)}" for j, p in aliases.items())
            lines.append(f"    [{_lua_string(name)}] = {{{pairs}}},")
    lines += ["  },", "  enums = {"]
    for name in sorted(schema.enums):
        values = ", ".join(f"{_lua_key(v)} = true" for v in schema.enums[name])
        lines.append(f"    [{_lua_string(name)}] = {{{values}}},")
    lines += ["  },", "}", ""]
    return "\n".join(lines)


def json_names(message_name: str) -> dict[str, str]:
    """JSON name → proto name, for the fields whose JSON name differs."""
    from google.protobuf import descriptor_pool

    message = descriptor_pool.Default().FindMessageTypeByName(message_name)
    return {f.json_name: f.name for f in message.fields if f.json_name != f.name}


def write(out: Path) -> None:
    from services.json_limits import DEPTH_MESSAGE, MAX_JSON_DEPTH

    out.write_text(render(build(), MAX_JSON_DEPTH, DEPTH_MESSAGE))
