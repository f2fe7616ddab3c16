"""Server interceptors every service installs: request context, error mapping, authentication.

They wrap the handler's behaviour function, so they work for unary and server-streaming
RPCs alike; a streaming handler's generator is consumed inside the wrapper, so context
variables (request id, principal) stay set and exceptions raised mid-stream are mapped too.

Requests whose bytes do not parse (e.g. a string field holding invalid UTF-8) would make
grpcio answer INTERNAL "Exception deserializing request!"; the wrapper deserializes
tolerantly and answers INVALID_ARGUMENT instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import grpc
import sqlalchemy.exc

from services.errors import DomainError, InvalidArgument, Unavailable, abort_with, internal_status
from services.logs import new_request_id, request_id_var
from services.principal import Credentials, Principal, reset_principal, set_principal
from services.user_json import undecodable_field

log = logging.getLogger("zquant.rpc")

Behaviour = Callable[[Any, grpc.ServicerContext], Any]


class Authenticator(Protocol):
    def authenticate(self, credentials: Credentials) -> Principal: ...


class _Undecodable:
    """Stands in for a request whose bytes did not parse; names the field that broke it."""

    def __init__(self, message_class: Any, data: bytes) -> None:
        self.message_class, self.data = message_class, data

    def error(self) -> InvalidArgument:
        field, problem = undecodable_field(self.message_class, self.data)
        return InvalidArgument.field(field, problem)


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def run(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception:
            return _Undecodable(getattr(deserialize, "__self__", None), data)

    return run


def _check_decoded(request: Any) -> None:
    if isinstance(request, _Undecodable):
        raise request.error()


def _wrap(handler: grpc.RpcMethodHandler, wrap_unary: Callable[[Behaviour], Behaviour],
          wrap_stream: Callable[[Behaviour], Behaviour]) -> grpc.RpcMethodHandler:
    deserializer = _tolerant(handler.request_deserializer)
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            wrap_unary(handler.unary_unary), deserializer, handler.response_serializer)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            wrap_stream(handler.unary_stream), deserializer, handler.response_serializer)
    return handler  # client/bidi streaming: none of our services use them


class ServiceInterceptor(grpc.ServerInterceptor):
    """Request id + access log + error mapping + authentication, in that order.

    `public_methods` are full method names ("/pkg.Service/Method") that need no credentials;
    health checks and reflection are always public.
    """

    ALWAYS_PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/",
                              "/grpc.reflection.v1.ServerReflection/")

    def __init__(self, authenticator: Authenticator | None, public_methods: frozenset[str] = frozenset()) -> None:
        self.authenticator = authenticator
        self.public_methods = public_methods

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        if method.startswith(self.ALWAYS_PUBLIC_PREFIXES):
            return handler
        needs_auth = self.authenticator is not None and method not in self.public_methods

        def wrap_unary(behaviour: Behaviour) -> Behaviour:
            def run(request: Any, context: grpc.ServicerContext) -> Any:
                with _CallScope(self, method, context, needs_auth) as scope:
                    scope.result(lambda: _check_decoded(request))
                    return scope.result(lambda: behaviour(request, context))
                return None  # unreachable: the scope aborts on error

            return run

        def wrap_stream(behaviour: Behaviour) -> Behaviour:
            def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                with _CallScope(self, method, context, needs_auth) as scope:
                    scope.result(lambda: _check_decoded(request))
                    iterator = scope.result(lambda: behaviour(request, context))
                    while True:
                        item = scope.result(lambda: next(iterator, _END))
                        if item is _END:
                            break
                        yield item

            return run

        return _wrap(handler, wrap_unary, wrap_stream)


_END = object()


class _CallScope:
    """Sets the request id and principal for one call; maps every exception to a status."""

    def __init__(self, owner: ServiceInterceptor, method: str, context: grpc.ServicerContext, needs_auth: bool):
        self.owner, self.method, self.context, self.needs_auth = owner, method, context, needs_auth
        self.status_name = "OK"

    def __enter__(self) -> _CallScope:
        metadata = tuple(self.context.invocation_metadata() or ())
        rid = next((v for k, v in metadata if k == "x-request-id" and isinstance(v, str) and len(v) <= 128), "")
        self.rid_token = request_id_var.set(rid or new_request_id())
        self.principal_token = set_principal(None)
        self.started = time.perf_counter()
        if self.needs_auth:
            self.result(lambda: self._authenticate(metadata))
        return self

    def _authenticate(self, metadata: tuple[tuple[str, Any], ...]) -> None:
        from services.errors import Unauthenticated

        credentials = Credentials.from_metadata(metadata)
        if not credentials.present:
            raise Unauthenticated("credentials required: Authorization: Bearer <token> or X-API-Key + X-API-Secret")
        assert self.owner.authenticator is not None
        set_principal(self.owner.authenticator.authenticate(credentials))

    def result(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except DomainError as exc:
            self.status_name = exc.code.name
            abort_with(self.context, exc.to_status())
        except sqlalchemy.exc.DataError:
            # Values the database refuses (e.g. NUL bytes in text on PostgreSQL) are bad input.
            self.status_name = "INVALID_ARGUMENT"
            abort_with(self.context, InvalidArgument("a value was rejected by the database "
                                                     "(text must not contain NUL characters)").to_status())
        except sqlalchemy.exc.OperationalError:
            log.exception("database unavailable", extra={"method": self.method})
            self.status_name = "UNAVAILABLE"
            abort_with(self.context, Unavailable("database unavailable, try again later").to_status())
        except Exception as exc:
            # context.abort() raises a plain Exception after setting the status: let it through.
            if self.context.code() is not None and self.context.code() != grpc.StatusCode.OK:
                self.status_name = str(self.context.code().name)
                raise
            if isinstance(exc, grpc.RpcError) and exc.code() == grpc.StatusCode.UNAVAILABLE:  # type: ignore[attr-defined]
                log.warning("dependency unavailable", extra={"method": self.method})
                self.status_name = "UNAVAILABLE"
                abort_with(self.context, Unavailable("a dependency is unavailable, try again later").to_status())
            log.exception("unhandled error", extra={"method": self.method})
            self.status_name = "INTERNAL"
            abort_with(self.context, internal_status(request_id_var.get()))
        return None

    def __exit__(self, exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
        elapsed_ms = (time.perf_counter() - self.started) * 1000
        if exc_type is GeneratorExit:
            self.status_name = "CANCELLED"
        log.debug("rpc", extra={"method": self.method, "status": self.status_name, "ms": round(elapsed_ms, 2)})
        reset_principal(self.principal_token)
        request_id_var.reset(self.rid_token)
