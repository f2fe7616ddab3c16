"""REST bindings: the zquant-shaped JSON face of the typed gRPC services (docs/rest-conventions.md).

A REST-only service (``zquant.backtest.v1.TaskRestService`` …) declares, per REST path, an RPC
with the same name and request type as a typed RPC, returning ``google.api.HttpBody``. Nothing
implements those RPCs by hand: ``register_rest_service`` adds one generic handler per method
that calls the typed servicer's method and renders its response with ``to_json_value`` — the
one place that decides how a proto message looks in REST JSON. Envoy's transcoder then passes
the body through untouched; response metadata ``x-zq-http-status`` (turned into the HTTP status
by the gateway's Lua filter) and ``x-total-count`` carry what a body cannot.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import keyword
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
import orjson
from google.api import httpbody_pb2
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from zquant.api.v1 import rest_pb2

from services.offload import blocking_body
from services.param_numbers import plain_number
from services.rest_contract import check_binding, rest_options

STATUS_HEADER = "x-zq-http-status"  # consumed by the gateway (deploy/envoy.yaml, lua filter)
TOTAL_HEADER = "x-total-count"
JSON = "application/json"
NDJSON = "application/x-ndjson"

Converter = Callable[[Any], Any]
_RENDERERS: dict[str, Converter] = {}


# --------------------------------------------------------------------------- the JSON dialect


def to_json_value(message: Message) -> Any:
    """A message as REST JSON data: every field present, proto names, unset optional and
    message fields None, enums lower-case names (the zero value None), 64-bit integers as
    numbers, non-finite floats None, Timestamps RFC 3339, Struct/Value as plain JSON."""
    full_name = message.DESCRIPTOR.full_name
    render = _RENDERERS.get(full_name) or _WELL_KNOWN.get(full_name)
    if render is None:
        render = _RENDERERS[full_name] = _renderer(message.DESCRIPTOR)
    return render(message)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON (orjson: a list page serializes ~10× faster than with json)."""
    return orjson.dumps(value)


def _renderer(descriptor: Descriptor) -> Converter:
    """The function rendering one message type: a single dict display, compiled once per type
    from the per-field rules below (`_field_expression`; the names come from the compiled protos).
    A list page renders thousands of fields: an expression per field instead of a converter call
    (or two) per field renders a page of 100 tasks in 0.75× the time."""
    converters: list[Converter] = []
    items = []
    for field in descriptor.fields:
        items.append(f"{field.name!r}: {_field_expression(field, converters)}")
    source = "def render(m):\n    return {" + ", ".join(items) + "}\n"
    namespace: dict[str, Any] = {f"_c{i}": c for i, c in enumerate(converters)}
    exec(compile(source, f"<rest renderer {descriptor.full_name}>", "exec"), namespace)  # noqa: S102
    return namespace["render"]  # type: ignore[no-any-return]


def _field_expression(field: FieldDescriptor, converters: list[Converter]) -> str:
    """The Python expression of one field's JSON value, with `m` the message. Converters it needs
    are appended to `converters` and named `_c<index>`; values JSON takes as they are (strings,
    bools, integers of every width) are read without any."""
    value = f"m.{field.name}" if not keyword.iskeyword(field.name) else f"getattr(m, {field.name!r})"

    def call(converter: Converter | None, arg: str) -> str:
        if converter is None:
            return arg
        converters.append(converter)
        return f"_c{len(converters) - 1}({arg})"

    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        item = _value_converter(field.message_type.fields_by_name["value"])
        return f"{{str(k): {call(item, 'v')} for k, v in {value}.items()}}"
    one = _value_converter(field)
    if field.is_repeated:
        return f"[{call(one, 'v')} for v in {value}]"
    if field.has_presence:  # message fields, proto3 `optional`, oneof members
        return f"({call(one, value)} if m.HasField({field.name!r}) else None)"
    return call(one, value)


def _value_converter(field: FieldDescriptor) -> Converter | None:
    """How one value of the field becomes JSON; None: as it is (strings, bools and every integer
    width — 64-bit ones stay numbers)."""
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return to_json_value
    if field.type == FieldDescriptor.TYPE_ENUM:
        names = {v.number: (None if v.number == 0 else v.name.lower()) for v in field.enum_type.values}
        return lambda v: names.get(v, v)
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return lambda v: v if math.isfinite(v) else None
    if field.type == FieldDescriptor.TYPE_BYTES:
        return lambda v: base64.b64encode(v).decode()
    return None


def _struct_value(value: Any) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return {k: _struct_value(v) for k, v in value.struct_value.fields.items()}
    if kind == "list_value":
        return [_struct_value(v) for v in value.list_value.values]
    if kind == "number_value":  # whole numbers as ints: the params rule (services.param_numbers)
        return plain_number(value.number_value) if math.isfinite(value.number_value) else None
    if kind in ("string_value", "bool_value"):
        return getattr(value, kind)
    return None  # null_value or unset


def _timestamp(m: Any) -> str:
    """Timestamp.ToJsonString's output (RFC 3339, 0/3/6/9 fraction digits, "Z"), from C-level
    time formatting: a task has four of them and a page a hundred tasks."""
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(m.seconds))
    nanos = m.nanos
    if nanos == 0:
        return text + "Z"
    if nanos % 1_000_000 == 0:
        return f"{text}.{nanos // 1_000_000:03d}Z"
    if nanos % 1000 == 0:
        return f"{text}.{nanos // 1000:06d}Z"
    return f"{text}.{nanos:09d}Z"


_WELL_KNOWN: dict[str, Converter] = {
    "google.protobuf.Timestamp": _timestamp,
    "google.protobuf.Struct": lambda m: {k: _struct_value(v) for k, v in m.fields.items()},
    "google.protobuf.Value": _struct_value,
    "google.protobuf.ListValue": lambda m: [_struct_value(v) for v in m.values],
    **{f"google.protobuf.{w}Value": (lambda m: m.value) for w in ("Int32", "Int64", "UInt32", "UInt64",
                                                                   "Bool", "String")},
    "google.protobuf.DoubleValue": lambda m: m.value if math.isfinite(m.value) else None,
    "google.protobuf.FloatValue": lambda m: m.value if math.isfinite(m.value) else None,
}


# --------------------------------------------------------------------------- responses


def render(reply: Message, options: rest_pb2.RestResponse) -> tuple[bytes, list[tuple[str, str]]]:
    """The REST body and response metadata for a typed reply."""
    metadata: list[tuple[str, str]] = []
    if options.status and options.status != 200:
        metadata.append((STATUS_HEADER, str(options.status)))
    if options.status == 204:
        return b"", metadata
    if options.list_field:
        item = _value_converter(reply.DESCRIPTOR.fields_by_name[options.list_field])
        metadata.append((TOTAL_HEADER, str(reply.total)))  # type: ignore[attr-defined]
        values = getattr(reply, options.list_field)
        return dumps([item(v) for v in values] if item is not None else list(values)), metadata
    return dumps(to_json_value(reply)), metadata


def respond(reply: Message, options: rest_pb2.RestResponse) -> tuple[httpbody_pb2.HttpBody, list[tuple[str, str]]]:
    """The HttpBody and response metadata for a typed reply. A typed RPC that already answers
    ``google.api.HttpBody`` (a document, such as a backtest's HTML report) goes out as it is."""
    if isinstance(reply, httpbody_pb2.HttpBody):
        status = [(STATUS_HEADER, str(options.status))] if options.status and options.status != 200 else []
        return reply, status
    data, metadata = render(reply, options)
    return _body(data), metadata


def _event(message: Message) -> httpbody_pb2.HttpBody:
    return httpbody_pb2.HttpBody(content_type=NDJSON, data=dumps(to_json_value(message)) + b"\n")


def _body(data: bytes) -> httpbody_pb2.HttpBody:
    return httpbody_pb2.HttpBody(content_type=JSON, data=data)


def _handler(typed: Callable[..., Any], options: rest_pb2.RestResponse, streaming: bool) -> Callable[..., Any]:
    """The behaviour of one REST method: the typed method, then the rendering. Metadata is
    sent only after the typed call succeeded, so an error keeps the status the transcoder maps."""
    # Envoy's transcoder sends the HTTP headers with the first HttpBody (it carries the content
    # type): `open_at_once` streams start with an empty one (rest.proto).
    opener = [httpbody_pb2.HttpBody(content_type=NDJSON)] if options.open_at_once else []
    if streaming and inspect.isasyncgenfunction(typed):
        async def stream_async(request: Message, context: Any) -> AsyncIterator[httpbody_pb2.HttpBody]:
            for body in opener:
                yield body
            async for message in typed(request, _Opened(context, is_async=True) if opener else context):
                yield _event(message)
        return stream_async
    if streaming:
        def stream(request: Message, context: grpc.ServicerContext) -> Iterator[httpbody_pb2.HttpBody]:
            yield from opener
            for message in typed(request, _Opened(context, is_async=False) if opener else context):
                yield _event(message)
        return stream
    body_of = blocking_body(typed)
    if body_of is not None:
        # An @offloaded typed method: its body and the rendering in one executor hop (a page of
        # 100 tasks renders in ~2 ms: not on the event loop, and not worth a second hop).
        async def unary_offloaded(request: Message, context: Any) -> httpbody_pb2.HttpBody:
            body, metadata = await asyncio.to_thread(lambda: respond(body_of(request), options))
            if metadata:
                await context.send_initial_metadata(metadata)
            return body
        return unary_offloaded
    if inspect.iscoroutinefunction(typed):
        async def unary_async(request: Message, context: Any) -> httpbody_pb2.HttpBody:
            body, metadata = respond(await typed(request, context), options)
            if metadata:
                await context.send_initial_metadata(metadata)
            return body
        return unary_async

    def unary(request: Message, context: grpc.ServicerContext) -> httpbody_pb2.HttpBody:
        body, metadata = respond(typed(request, context), options)
        if metadata:
            context.send_initial_metadata(metadata)
        return body
    return unary


class _Opened:
    """The call's context once the opener went out: the headers are sent, so the typed method's
    own send_initial_metadata (which gRPC would refuse now) does nothing."""

    def __init__(self, context: Any, *, is_async: bool) -> None:
        self._context = context
        self._is_async = is_async

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def send_initial_metadata(self, metadata: Any) -> Any:
        if self._is_async:
            async def done() -> None:
                return None
            return done()
        return None


def register_rest_service(server: Any, rest_service: ServiceDescriptor, typed_servicer: object) -> str:
    """Serves `rest_service` on `server` (grpc.Server or grpc.aio.Server) by way of
    `typed_servicer`, the servicer of the typed service. Returns the service's full name."""
    check_binding(rest_service)
    handlers = {}
    for method in rest_service.methods:
        typed = getattr(typed_servicer, method.name)
        request = message_factory.GetMessageClass(method.input_type)
        behaviour = _handler(typed, rest_options(method), method.server_streaming)
        make = grpc.unary_stream_rpc_method_handler if method.server_streaming else grpc.unary_unary_rpc_method_handler
        handlers[method.name] = make(behaviour, request_deserializer=request.FromString,
                                     response_serializer=httpbody_pb2.HttpBody.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(rest_service.full_name, handlers),))
    return rest_service.full_name
