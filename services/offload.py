"""Servicer methods of a `grpc.aio` service written as ordinary blocking code.

The rules and repositories below a servicer are plain synchronous Python (SQLAlchemy sessions,
calls to other services). On an event loop they must not run inline — one slow query would
stall every stream and call — so a servicer method declared ``@offloaded`` is served as a
coroutine whose body runs on the loop's executor (bounded: `services.server.build_aio_server`),
with the caller's context variables (principal, request id) copied along.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

Request = TypeVar("Request")
Reply = TypeVar("Reply")


def offloaded(method: Callable[[Any, Request], Reply]) -> Callable[[Any, Request, Any], Awaitable[Reply]]:
    """``def M(self, request) -> reply`` becomes ``async def M(self, request, context)``. The body
    gets no context: gRPC's aio context belongs to the loop, not to the executor's threads."""

    @functools.wraps(method)
    async def run(self: Any, request: Request, context: Any) -> Reply:
        return await asyncio.to_thread(method, self, request)

    run._offloaded_body = method  # type: ignore[attr-defined]
    return run


def blocking_body(handler: Callable[..., Any]) -> Callable[[Any], Any] | None:
    """The blocking body of a bound ``@offloaded`` method, bound to the same servicer (None for
    any other handler): a caller with blocking work of its own after the body (the REST
    rendering of a reply) runs both in one executor hop."""
    body = getattr(handler, "_offloaded_body", None)
    if body is None:
        return None
    return functools.partial(body, handler.__self__)  # type: ignore[attr-defined]
