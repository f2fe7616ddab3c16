"""Domain errors and their mapping to gRPC status codes.

Business code raises these plain exceptions (no gRPC in the domain layer); the server's
error interceptor turns them into a status with a message and, for invalid input, a
`google.rpc.BadRequest` listing every offending field. Anything else becomes INTERNAL with
only the request id in the message: stack traces go to the log, never to the client.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status


class DomainError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_status(self) -> status_pb2.Status:
        return status_pb2.Status(code=self.code.value[0], message=self.message)


class InvalidArgument(DomainError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, violations: Iterable[tuple[str, str]] | str, message: str | None = None) -> None:
        if isinstance(violations, str):
            violations = [("", violations)]
        self.violations = list(violations)
        text = message or "; ".join(f"{f}: {d}" if f else d for f, d in self.violations)
        super().__init__(text or "invalid argument")

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        return cls([(field, description)])

    def to_status(self) -> status_pb2.Status:
        status = super().to_status()
        detail = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d) for f, d in self.violations
            ]
        )
        status.details.add().Pack(detail)
        return status


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(DomainError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(DomainError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(DomainError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(DomainError):
    code = grpc.StatusCode.UNAVAILABLE


def internal_status(request_id: str) -> status_pb2.Status:
    return status_pb2.Status(code=code_pb2.INTERNAL, message=f"internal error (request id {request_id})")


def abort_with(context: grpc.ServicerContext, status: status_pb2.Status) -> None:
    """Ends the call with a rich status (details travel in the grpc-status-details-bin trailer)."""
    context.abort_with_status(rpc_status.to_status(status))


def field_violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    """Client side: the BadRequest field violations carried by an error, if any."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return []
    out: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out.extend((v.field, v.description) for v in bad.field_violations)
    return out
