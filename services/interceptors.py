"""Server interceptors every service installs: request context, error mapping, authentication.

One rule per concern, shared by the two server flavours: `ServiceInterceptor` for the
thread-pool `grpc.server` (auth_svc, engine_svc) and `AioServiceInterceptor` for `grpc.aio`
(task_svc, whose watch streams must not hold a thread each). Both take the request id
(`_request_id`), authenticate (`_authenticate`; blocking, so the aio flavour runs it on the
loop's executor) and map exceptions to a status (`_error_status`) the same way.

They wrap the handler's behaviour function, so they work for unary and server-streaming
RPCs alike; a streaming handler's (async) generator is consumed inside the wrapper, so
context variables (request id, principal) stay set and exceptions raised mid-stream are
mapped too.

Requests whose bytes do not parse (e.g. a string field holding invalid UTF-8) would make
grpcio answer INTERNAL "Exception deserializing request!"; the wrapper deserializes
tolerantly and answers INVALID_ARGUMENT instead.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

import grpc
import sqlalchemy.exc
from google.rpc import status_pb2
from grpc_status import rpc_status

from services.errors import (
    DomainError,
    InvalidArgument,
    Unauthenticated,
    Unavailable,
    abort_with,
    internal_status,
)
from services.logs import new_request_id, request_id_var
from services.principal import Credentials, Principal, current_principal, reset_principal, set_principal
from services.stream_limits import StreamLimits
from services.user_json import undecodable_field

log = logging.getLogger("zquant.rpc")

Behaviour = Callable[[Any, Any], Any]

ALWAYS_PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/",
                          "/grpc.reflection.v1.ServerReflection/")


class Authenticator(Protocol):
    """May also offer ``authenticate_cached(credentials) -> Principal | None``: the answer when it
    is at hand without blocking (None otherwise). The aio interceptor then authenticates on the
    event loop and offloads `authenticate` only on a miss (`services.auth_client`)."""

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


def _needs_auth(method: str, authenticator: Authenticator | None, public_methods: frozenset[str]) -> bool | None:
    """None: not intercepted at all (health, reflection); else whether credentials are required."""
    if method.startswith(ALWAYS_PUBLIC_PREFIXES):
        return None
    return authenticator is not None and method not in public_methods


def _request_id(metadata: tuple[tuple[str, Any], ...]) -> str:
    rid = next((v for k, v in metadata if k == "x-request-id" and isinstance(v, str) and len(v) <= 128), "")
    return rid or new_request_id()


def _credentials(metadata: tuple[tuple[str, Any], ...]) -> Credentials:
    credentials = Credentials.from_metadata(metadata)
    if not credentials.present:
        raise Unauthenticated("credentials required: Authorization: Bearer <token> or X-API-Key + X-API-Secret")
    return credentials


def _authenticate(authenticator: Authenticator, metadata: tuple[tuple[str, Any], ...]) -> Principal:
    return authenticator.authenticate(_credentials(metadata))


def _authenticate_cached(authenticator: Authenticator, metadata: tuple[tuple[str, Any], ...]) -> Principal | None:
    """`_authenticate` when the authenticator can answer without blocking, else None."""
    cached = getattr(authenticator, "authenticate_cached", None)
    if cached is None:
        return None
    principal: Principal | None = cached(_credentials(metadata))
    return principal


def _error_status(exc: Exception, method: str) -> tuple[str, status_pb2.Status]:
    """The status a call ends with for an exception its handler raised (and the log line)."""
    if isinstance(exc, DomainError):
        return exc.code.name, exc.to_status()
    if isinstance(exc, sqlalchemy.exc.DataError):
        # Values the database refuses (e.g. NUL bytes in text on PostgreSQL) are bad input.
        return "INVALID_ARGUMENT", InvalidArgument("a value was rejected by the database "
                                                   "(text must not contain NUL characters)").to_status()
    if isinstance(exc, sqlalchemy.exc.OperationalError):
        log.exception("database unavailable", extra={"method": method})
        return "UNAVAILABLE", Unavailable("database unavailable, try again later").to_status()
    if isinstance(exc, grpc.RpcError) and exc.code() == grpc.StatusCode.UNAVAILABLE:  # type: ignore[attr-defined]
        log.warning("dependency unavailable", extra={"method": method})
        return "UNAVAILABLE", Unavailable("a dependency is unavailable, try again later").to_status()
    log.exception("unhandled error", extra={"method": method}, exc_info=exc)
    return "INTERNAL", internal_status(request_id_var.get())


_MAPPED = (DomainError, sqlalchemy.exc.DataError, sqlalchemy.exc.OperationalError)


def _aborted(context: Any) -> str | None:
    """The status name when the handler already ended the call with context.abort()."""
    code = context.code()
    if code is None or code == grpc.StatusCode.OK or isinstance(code, int):
        return None
    return str(code.name)


def _log_call(method: str, status_name: str, started: float) -> None:
    log.debug("rpc", extra={"method": method, "status": status_name,
                            "ms": round((time.perf_counter() - started) * 1000, 2)})


class ServiceInterceptor(grpc.ServerInterceptor):
    """Request id + access log + error mapping + authentication, in that order (thread-pool server).

    `public_methods` are full method names ("/pkg.Service/Method") that need no credentials;
    health checks and reflection are always public.
    """

    ALWAYS_PUBLIC_PREFIXES = ALWAYS_PUBLIC_PREFIXES

    def __init__(self, authenticator: Authenticator | None, public_methods: frozenset[str] = frozenset()) -> None:
        self.authenticator = authenticator
        self.public_methods = public_methods

    def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        needs_auth = _needs_auth(method, self.authenticator, self.public_methods)
        if needs_auth is None:
            return handler

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
        self.rid_token = request_id_var.set(_request_id(metadata))
        self.principal_token = set_principal(None)
        self.started = time.perf_counter()
        if self.needs_auth:
            assert self.owner.authenticator is not None
            self.result(lambda: set_principal(_authenticate(self.owner.authenticator, metadata)))  # type: ignore[arg-type]
        return self

    def result(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:
            # context.abort() raises a plain Exception after setting the status: let it through.
            aborted = None if isinstance(exc, _MAPPED) else _aborted(self.context)
            if aborted is not None:
                self.status_name = aborted
                raise
            self.status_name, status = _error_status(exc, self.method)
            abort_with(self.context, status)
        return None

    def __exit__(self, exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
        if exc_type is GeneratorExit:
            self.status_name = "CANCELLED"
        _log_call(self.method, self.status_name, self.started)
        reset_principal(self.principal_token)
        request_id_var.reset(self.rid_token)


class AioServiceInterceptor(grpc.aio.ServerInterceptor):
    """The same as `ServiceInterceptor`, for a `grpc.aio` server whose handlers are coroutines
    and async generators. Authentication (a blocking call to auth_svc, cached) runs on the
    loop's executor so a slow auth_svc never stalls other calls. With `stream_limits`, every
    authenticated server stream holds one of the caller's slots while it is open."""

    def __init__(self, authenticator: Authenticator | None, public_methods: frozenset[str] = frozenset(),
                 stream_limits: StreamLimits | None = None) -> None:
        self.authenticator = authenticator
        self.public_methods = public_methods
        self.stream_limits = stream_limits

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        needs_auth = _needs_auth(method, self.authenticator, self.public_methods)
        if needs_auth is None:
            return handler

        def wrap_unary(behaviour: Behaviour) -> Behaviour:
            async def run(request: Any, context: grpc.aio.ServicerContext) -> Any:
                scope = _AioCallScope(self, method, context, needs_auth)
                try:
                    await scope.enter()
                    _check_decoded(request)
                    reply = behaviour(request, context)
                    return await reply if inspect.isawaitable(reply) else reply
                except Exception as exc:
                    await scope.fail(exc)
                finally:
                    scope.exit()
                return None  # unreachable: fail() aborts

            return run

        def wrap_stream(behaviour: Behaviour) -> Behaviour:
            async def run(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                scope = _AioCallScope(self, method, context, needs_auth)
                try:
                    await scope.enter()
                    _check_decoded(request)
                    with self._slot():
                        async for item in _aiter(behaviour(request, context)):
                            yield item
                except Exception as exc:
                    await scope.fail(exc)
                except (asyncio.CancelledError, GeneratorExit):
                    scope.status_name = "CANCELLED"  # the client went away
                    raise
                finally:
                    scope.exit()

            return run

        return _wrap(handler, wrap_unary, wrap_stream)

    def _slot(self) -> AbstractContextManager[None]:
        if self.stream_limits is None or not self.authenticator:
            return nullcontext()
        try:
            who = current_principal()
        except Unauthenticated:  # a public method: nobody to count it against
            return nullcontext()
        return self.stream_limits.hold(who.user_id)


async def _aiter(stream: Any) -> AsyncIterator[Any]:
    if hasattr(stream, "__aiter__"):
        async for item in stream:
            yield item
    else:  # a plain generator (not used by our aio services, but legal for grpc.aio)
        for item in stream:
            yield item


class _AioCallScope:
    def __init__(self, owner: AioServiceInterceptor, method: str, context: grpc.aio.ServicerContext,
                 needs_auth: bool) -> None:
        self.owner, self.method, self.context, self.needs_auth = owner, method, context, needs_auth
        self.status_name = "OK"
        self.started = time.perf_counter()

    async def enter(self) -> None:
        metadata = tuple(self.context.invocation_metadata() or ())
        self.rid_token = request_id_var.set(_request_id(metadata))
        self.principal_token = set_principal(None)
        if self.needs_auth:
            assert self.owner.authenticator is not None
            # A cached answer on the loop: an executor hop (two thread wake-ups) costs more than
            # a cache lookup, and the call's own work usually takes one hop already.
            principal = _authenticate_cached(self.owner.authenticator, metadata)
            if principal is None:
                principal = await _offload(_authenticate, self.owner.authenticator, metadata)
            set_principal(principal)

    async def fail(self, exc: Exception) -> None:
        if isinstance(exc, grpc.aio.AbortError):  # the handler ended the call itself
            self.status_name = _aborted(self.context) or "UNKNOWN"
            raise exc
        self.status_name, status = _error_status(exc, self.method)
        await self.context.abort_with_status(rpc_status.to_status(status))

    def exit(self) -> None:
        _log_call(self.method, self.status_name, self.started)
        try:
            reset_principal(self.principal_token)
            request_id_var.reset(self.rid_token)
        except (ValueError, AttributeError):
            pass  # a stream finalized outside its task (or enter() never ran): the context is gone anyway


def _offload(fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
    """`fn(*args)` on the running loop's executor, with the caller's context variables."""
    return asyncio.to_thread(fn, *args)
