"""The rules of a REST binding, read from the protos' options (docs/rest-conventions.md).

Descriptor logic only (protobuf and the generated option stubs): used at run time by
services/rest.py and at build time by protos/openapi.py, where nothing else is installed.
"""

from __future__ import annotations

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from zquant.api.v1 import rest_pb2


def rest_options(method: MethodDescriptor) -> rest_pb2.RestResponse:
    return method.GetOptions().Extensions[rest_pb2.rest]


def typed_service(rest_service: ServiceDescriptor) -> ServiceDescriptor:
    name = rest_service.GetOptions().Extensions[rest_pb2.rest_service].typed
    if not name:
        raise ValueError(f"{rest_service.full_name} lacks option (zquant.api.v1.rest_service).typed")
    return descriptor_pool.Default().FindServiceByName(name)


def check_binding(rest_service: ServiceDescriptor) -> None:
    """Every REST method mirrors a typed method (same name, same request type, same streaming),
    a list_field names a repeated field next to `total`, and a typed RPC answering a document
    (google.api.HttpBody) declares its document_type. Raises ValueError otherwise."""
    typed = typed_service(rest_service)
    for method in rest_service.methods:
        twin = typed.methods_by_name.get(method.name)
        where = f"{rest_service.full_name}.{method.name}"
        if twin is None:
            raise ValueError(f"{where}: {typed.full_name} has no method {method.name}")
        if twin.input_type is not method.input_type or twin.server_streaming != method.server_streaming:
            raise ValueError(f"{where}: request type or streaming differs from {typed.full_name}.{method.name}")
        options = rest_options(method)
        if options.list_field:
            fields = twin.output_type.fields_by_name
            listed = fields.get(options.list_field)
            if listed is None or not listed.is_repeated or set(fields) != {options.list_field, "total"}:
                raise ValueError(f"{where}: list_field {options.list_field!r} must name the repeated field of a "
                                 f"response holding only it and `total`")
        if options.open_at_once and not method.server_streaming:
            raise ValueError(f"{where}: open_at_once is for server streams")
        if options.status not in (0, 200, 201, 204):
            raise ValueError(f"{where}: unsupported success status {options.status}")
        document = twin.output_type.full_name == "google.api.HttpBody"
        if document != bool(options.document_type):
            raise ValueError(f"{where}: document_type is set exactly when the typed RPC returns google.api.HttpBody")
        if document and (options.list_field or options.status == 204):
            raise ValueError(f"{where}: a document response has no list_field and is not a 204")


def public_methods(rest_service: ServiceDescriptor) -> frozenset[str]:
    """Full method names of the REST methods marked public (no credentials)."""
    return frozenset(f"/{rest_service.full_name}/{m.name}" for m in rest_service.methods if rest_options(m).public)
