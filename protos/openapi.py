"""The OpenAPI 3.1 description of the REST API, generated from the protos (``make proto``).

Source of truth, in order: the REST-only services (``*_rest.proto``) and their
``google.api.http`` rules give the paths, verbs and parameters; their ``zquant.api.v1.rest``
options give the success status, list unwrapping and security; the typed RPC of the same name
gives the request and response messages; proto comments become descriptions. Response schemas
follow the JSON dialect of ``services.rest.to_json_value`` (docs/rest-conventions.md), request
schemas what Envoy's transcoder parses. Written to deploy/openapi.json next to the descriptor
set; the gateway serves it at GET /api/v1/openapi.json.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

from google.api import annotations_pb2
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor, ServiceDescriptor

OPENAPI_PATH = "/api/v1/openapi.json"
VERBS = ("get", "put", "post", "delete", "patch")
SECURITY = [{"bearerAuth": []}, {"apiKey": [], "apiSecret": []}]
_INT32 = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32}
_UINT32 = {FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32}
_INT64 = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64,
          FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64}
_WKT_OUT: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
}
STATUS_SCHEMA = {
    "type": "object",
    "description": "An error (google.rpc.Status): `code` is the gRPC status code, `details` may hold a "
                   "google.rpc.BadRequest listing field violations.",
    "properties": {
        "code": {"type": "integer", "description": "gRPC status code (3 invalid argument, 5 not found, ...)"},
        "message": {"type": "string", "description": "What went wrong, naming the field where there is one."},
        "details": {"type": "array", "items": {"type": "object", "properties": {"@type": {"type": "string"}}}},
    },
    "required": ["code", "message"],
}


def rest_services() -> list[ServiceDescriptor]:
    """Every service carrying (zquant.api.v1.rest_service), from the generated stubs of protos/."""
    from zquant.api.v1 import rest_pb2

    out = []
    for proto in sorted(Path(__file__).resolve().parent.glob("zquant/**/*.proto")):
        relative = proto.relative_to(Path(__file__).resolve().parent).with_suffix("")
        module = importlib.import_module(".".join(relative.parts) + "_pb2")
        out += [s for s in module.DESCRIPTOR.services_by_name.values()
                if s.GetOptions().HasExtension(rest_pb2.rest_service)]
    return out


def http_rules(method: MethodDescriptor) -> list[tuple[str, str, str]]:
    """(verb, path, body) of the method's primary rule and its additional bindings."""
    rule = method.GetOptions().Extensions[annotations_pb2.http]
    out = []
    for r in [rule, *rule.additional_bindings]:
        verb = r.WhichOneof("pattern")
        if verb in VERBS:
            out.append((verb, getattr(r, verb), r.body))
    return out


def transcoded_operations() -> set[tuple[str, str]]:
    """Every (VERB, path) the gateway transcodes."""
    return {(verb.upper(), path) for service in rest_services() for m in service.methods
            for verb, path, _ in http_rules(m)}


class Comments:
    """Leading comments of messages, fields, services and methods, by full name."""

    def __init__(self, descriptor_set: Path) -> None:
        fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set.read_bytes())
        self.by_name: dict[str, str] = {}
        for f in fds.file:
            comments = {tuple(loc.path): loc.leading_comments.strip() for loc in f.source_code_info.location}
            prefix = f.package + "." if f.package else ""
            for i, msg in enumerate(f.message_type):
                self._message(comments, (4, i), prefix + msg.name, msg)
            for i, svc in enumerate(f.service):
                name = prefix + svc.name
                self.by_name[name] = comments.get((6, i), "")
                for j, m in enumerate(svc.method):
                    self.by_name[f"{name}.{m.name}"] = comments.get((6, i, 2, j), "")

    def _message(self, comments: dict[tuple[int, ...], str], path: tuple[int, ...], name: str,
                 msg: descriptor_pb2.DescriptorProto) -> None:
        self.by_name[name] = comments.get(path, "")
        for k, field in enumerate(msg.field):
            self.by_name[f"{name}.{field.name}"] = comments.get((*path, 2, k), "")
        for k, nested in enumerate(msg.nested_type):
            self._message(comments, (*path, 3, k), f"{name}.{nested.name}", nested)

    def __call__(self, name: str) -> str:
        return " ".join(self.by_name.get(name, "").split())


class Builder:
    def __init__(self, comments: Comments) -> None:
        self.comments = comments
        self.schemas: dict[str, Any] = {"google.rpc.Status": STATUS_SCHEMA}

    # ---------------------------------------------------------------- responses (REST dialect)

    def out_ref(self, message: Descriptor) -> dict[str, Any]:
        if message.full_name in _WKT_OUT:
            return dict(_WKT_OUT[message.full_name])
        if message.full_name not in self.schemas:
            self.schemas[message.full_name] = {}  # placeholder: recursive types
            props = {f.name: self.out_field(f) for f in message.fields}
            self.schemas[message.full_name] = {
                "type": "object", "description": self.comments(message.full_name), "properties": props,
                "required": [f.name for f in message.fields], "additionalProperties": False}
        return {"$ref": f"#/components/schemas/{message.full_name}"}

    def out_value(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            return self.out_ref(field.message_type)
        if field.type == FieldDescriptor.TYPE_ENUM:
            names = [v.name.lower() for v in field.enum_type.values if v.number != 0]
            return {"type": ["string", "null"], "enum": [*names, None]}
        return _scalar(field)

    def out_field(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = field.message_type.fields_by_name["value"]
            schema: dict[str, Any] = {"type": "object", "additionalProperties": self.out_value(value)}
        elif field.is_repeated:
            schema = {"type": "array", "items": self.out_value(field)}
        else:
            schema = self.out_value(field)
            if field.has_presence:  # unset → null
                schema = {"anyOf": [schema, {"type": "null"}]} if "$ref" in schema or not schema.get("type") \
                    else {**schema, "type": _with_null(schema["type"])}
        description = self.comments(f"{field.containing_type.full_name}.{field.name}")
        return {**schema, "description": description} if description else schema

    # ---------------------------------------------------------------- requests (proto3 JSON input)

    def in_ref(self, message: Descriptor, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
        if message.full_name in _WKT_OUT:
            return dict(_WKT_OUT[message.full_name])
        name = f"{message.full_name}Input"
        if skip:
            name = f"{message.full_name}Body"
        if name not in self.schemas:
            self.schemas[name] = {}
            props = {f.name: self.in_field(f) for f in message.fields if f.name not in skip}
            self.schemas[name] = {"type": "object", "description": self.comments(message.full_name),
                                  "properties": props}
        return {"$ref": f"#/components/schemas/{name}"}

    def in_value(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            return self.in_ref(field.message_type)
        if field.type == FieldDescriptor.TYPE_ENUM:
            return {"type": "string", "enum": [v.name.lower() for v in field.enum_type.values]}
        return _scalar(field)

    def in_field(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = field.message_type.fields_by_name["value"]
            schema: dict[str, Any] = {"type": "object", "additionalProperties": self.in_value(value)}
        elif field.is_repeated:
            schema = {"type": "array", "items": self.in_value(field)}
        else:
            schema = self.in_value(field)
        description = self.comments(f"{field.containing_type.full_name}.{field.name}")
        return {**schema, "description": description} if description else schema

    def query_parameters(self, message: Descriptor, bound: set[str], prefix: str = "") -> list[dict[str, Any]]:
        params: list[dict[str, Any]] = []
        for field in message.fields:
            name = prefix + field.name
            if name in bound:
                continue
            if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.full_name not in _WKT_OUT:
                params += self.query_parameters(field.message_type, bound, name + ".")
                continue
            schema = self.in_field(field)
            description = schema.pop("description", "")
            param: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": schema}
            if description:
                param["description"] = description
            if field.is_repeated:
                param.update(style="form", explode=True)
            params.append(param)
        return params

    # ---------------------------------------------------------------- operations

    def operation(self, service: ServiceDescriptor, typed: ServiceDescriptor, method: MethodDescriptor,
                  verb: str, path: str, body: str, suffix: str) -> dict[str, Any]:
        from zquant.api.v1 import rest_pb2

        twin = typed.methods_by_name[method.name]
        options = method.GetOptions().Extensions[rest_pb2.rest]
        request = twin.input_type
        path_fields = re.findall(r"\{([^}=]+)", path)
        params = [{"name": f, "in": "path", "required": True, "schema": self.in_value(request.fields_by_name[f]),
                   "description": self.comments(f"{request.full_name}.{f}")} for f in path_fields]
        op: dict[str, Any] = {
            "operationId": method.name + suffix,
            "tags": [typed.name],
            "summary": self.comments(f"{service.full_name}.{method.name}"),
            "description": self.comments(f"{typed.full_name}.{method.name}"),
        }
        if body == "*":
            op["requestBody"] = {"required": False, "content": {"application/json": {
                "schema": self.in_ref(request, frozenset(path_fields))}}}
        else:
            params += self.query_parameters(request, set(path_fields))
        if params:
            op["parameters"] = params
        status = str(options.status or 200)
        if options.status == 204:
            success: dict[str, Any] = {"description": "Done; no content."}
        elif method.server_streaming:
            success = {"description": "A stream of newline-delimited JSON objects (NDJSON), one per event, each "
                                      "of this schema.",
                       "content": {"application/x-ndjson": {"schema": self.out_ref(twin.output_type)}}}
        elif twin.output_type.full_name == "google.api.HttpBody":
            success = {"description": "A document, sent as it is.",
                       "content": {options.document_type: {"schema": {"type": "string"}}}}
        elif options.list_field:
            item = self.out_value(twin.output_type.fields_by_name[options.list_field])
            success = {"description": "The page, as a JSON array.",
                       "headers": {"X-Total-Count": {"description": "Matching items in all pages.",
                                                     "schema": {"type": "integer", "minimum": 0}}},
                       "content": {"application/json": {"schema": {"type": "array", "items": item}}}}
        else:
            success = {"description": "OK", "content": {"application/json": {"schema": self.out_ref(twin.output_type)}}}
        op["responses"] = {status: success, "default": {
            "description": "An error, with the HTTP status of its gRPC code.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/google.rpc.Status"}}}}}
        op["security"] = [] if options.public else SECURITY
        return op


def _scalar(field: FieldDescriptor) -> dict[str, Any]:
    t = field.type
    if t in _INT32:
        return {"type": "integer", "format": "int32"}
    if t in _UINT32:
        return {"type": "integer", "format": "int32", "minimum": 0}
    if t in _INT64:
        return {"type": "integer", "format": "int64"}
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return {"type": "number"}
    if t == FieldDescriptor.TYPE_BOOL:
        return {"type": "boolean"}
    if t == FieldDescriptor.TYPE_BYTES:
        return {"type": "string", "contentEncoding": "base64"}
    return {"type": "string"}


def _with_null(kind: Any) -> list[Any]:
    kinds = kind if isinstance(kind, list) else [kind]
    return kinds if "null" in kinds else [*kinds, "null"]


def build(descriptor_set: Path) -> dict[str, Any]:
    from services import rest_contract

    builder = Builder(Comments(descriptor_set))
    paths: dict[str, dict[str, Any]] = {}
    for service in rest_services():
        rest_contract.check_binding(service)
        typed = rest_contract.typed_service(service)
        for method in service.methods:
            for k, (verb, path, body) in enumerate(http_rules(method)):
                suffix = "" if k == 0 else f"_{verb}"
                paths.setdefault(path, {})[verb] = builder.operation(service, typed, method, verb, path, body, suffix)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "zquant platform REST API",
            "version": "1",
            "description": "The zquant-compatible REST face of the platform's gRPC services, through the Envoy "
                           "gateway. JSON conventions: docs/rest-conventions.md. Authenticate with "
                           "`Authorization: Bearer <access token>` (POST /api/v1/auth/login) or an API key pair "
                           "(`X-API-Key` + `X-API-Secret`).",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(builder.schemas.items())),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "apiSecret": {"type": "apiKey", "in": "header", "name": "X-API-Secret"},
            },
        },
        "security": SECURITY,
    }


def write(descriptor_set: Path, out: Path) -> None:
    out.write_text(json.dumps(build(descriptor_set), indent=1, ensure_ascii=False) + "\n")
