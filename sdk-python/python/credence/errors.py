"""The SDK's exceptions: ``CredenceError`` and one subclass per gRPC code the server uses,
plus the errors found on this side (connecting, bad input, a closed producer, fork)."""

from __future__ import annotations

from datetime import timedelta
from types import TracebackType

from . import _native

__all__ = [
    "Aborted",
    "AlreadyExists",
    "ClosedError",
    "ConnectError",
    "CredenceError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "ForkError",
    "InputError",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ProtocolError",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
]


_LOCAL_KINDS = frozenset({"connect", "input", "protocol", "closed", "fork"})


class CredenceError(Exception):
    """Any error of the SDK.

    ``code`` is the gRPC code in snake case (``"not_found"``) for errors the server
    answered, or what went wrong on this side (``"connect"``, ``"input"``...);
    ``message`` is the server's message; ``attempts`` how many times the call was sent;
    ``retry_after`` how long the server asked to wait, when it said.
    """

    code: str = "unknown"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        attempts: int = 0,
        retry_after: timedelta | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.attempts = attempts
        self.retry_after = retry_after

    def __str__(self) -> str:
        # Errors found on this side carry whole sentences ("cannot connect to ..."); the
        # server's messages read better after their code.
        if self.code in _LOCAL_KINDS:
            return self.message
        return f"{self.code}: {self.message}"


class InvalidArgument(CredenceError):
    """The server refused the request; the message names the field and what to change."""

    code = "invalid_argument"


class NotFound(CredenceError):
    """The thing asked for does not exist."""

    code = "not_found"


class AlreadyExists(CredenceError):
    """The thing to create exists already."""

    code = "already_exists"


class ResourceExhausted(CredenceError):
    """A limit was reached (the pipeline is behind, a query ran out of time or memory)."""

    code = "resource_exhausted"


class Unavailable(CredenceError):
    """The node is down or restarting (after the retries the client was allowed)."""

    code = "unavailable"


class Unauthenticated(CredenceError):
    """No valid token was sent (``Client(..., token=...)``)."""

    code = "unauthenticated"


class PermissionDenied(CredenceError):
    """The token's role does not allow this call."""

    code = "permission_denied"


class FailedPrecondition(CredenceError):
    """The request conflicts with the server's state."""

    code = "failed_precondition"


class Aborted(CredenceError):
    """The operation lost a race; start over from a fresh read."""

    code = "aborted"


class DeadlineExceeded(CredenceError):
    """The call did not finish within its timeout."""

    code = "deadline_exceeded"


class Unimplemented(CredenceError):
    """The node cannot do this (e.g. its backend lacks the feature)."""

    code = "unimplemented"


class Internal(CredenceError):
    """A defect in the server; report it with the message."""

    code = "internal"


class ConnectError(CredenceError):
    """No connection could be made (wrong address, nothing listening, TLS refused)."""

    code = "connect"


class InputError(CredenceError, ValueError):
    """A value given to the SDK is unusable; nothing was sent."""

    code = "input"


class ProtocolError(CredenceError):
    """The server answered something this SDK cannot read (a version mismatch)."""

    code = "protocol"


class ClosedError(CredenceError):
    """The producer (or stream) is closed."""

    code = "closed"


class ForkError(CredenceError):
    """A client, producer or asyncio runtime made before ``fork()`` was used after it."""

    code = "fork"


_BY_CODE: dict[str, type[CredenceError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        ResourceExhausted,
        Unavailable,
        Unauthenticated,
        PermissionDenied,
        FailedPrecondition,
        Aborted,
        DeadlineExceeded,
        Unimplemented,
        Internal,
        ConnectError,
        InputError,
        ProtocolError,
        ClosedError,
        ForkError,
    )
}


def from_native(error: _native.NativeError) -> CredenceError:
    """The public exception for an error of the native module."""
    kind, message, attempts, retry_after = error.args
    cls = _BY_CODE.get(kind, CredenceError)
    wait = None if retry_after is None else timedelta(seconds=retry_after)
    return cls(message, code=kind, attempts=attempts, retry_after=wait)


class native_errors:  # noqa: N801 (used as `with native_errors():`, like a function)
    """Turns an error of the native module raised in its block into the public exception.
    ``__exit__`` returns ``None``: it never swallows an exception (so type checkers know a
    block that returns does return)."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(value, _native.NativeError):
            raise from_native(value) from None
