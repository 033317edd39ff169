"""Injected failures: what a test asks to go wrong, and how a call that meets a fault is answered.

A fault is queued (`StandInState.add_fault`), consumed by the next `count` matching requests
(`take`), and answered by `answer`: an error, a delay, a dropped connection, a success of another
shape (`result`) or a body that is not JSON (`raw_body`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from services.standin.wire import ApiError

if TYPE_CHECKING:
    from services.standin.state import StandInState

_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request",
    429: "Too Many Requests: retry after {retry_after}",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class Fault:
    """One injected failure, consumed by the next `count` matching requests."""

    method: str = "sendMessage"  # "*" matches every method
    chat_id: int | str | None = None
    count: int = 1
    error_code: int | None = None
    description: str | None = None
    retry_after: int | None = None
    migrate_to_chat_id: int | None = None
    delay: float = 0.0  # seconds to hang before answering
    deliver: bool = True  # for delay/close faults: store the message before hanging/closing
    close_connection: bool = False  # drop the TCP connection without answering
    result: Any = None  # answer {"ok": true, "result": <this>} (after the method ran, if deliver)
    raw_body: str | None = None  # answer this text (not JSON) with error_code (default 502)

    @classmethod
    def coerce(cls, value: Fault | Mapping[str, Any]) -> Fault:
        """Build a Fault from a Fault or a mapping (unknown keys are an error)."""
        if isinstance(value, Fault):
            return Fault(**asdict(value))
        known = {f.name for f in fields(cls)}
        unknown = set(value) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        fault = cls(**{k: v for k, v in value.items() if v is not None})
        if fault.count < 1:
            raise ValueError("count must be >= 1")
        return fault

    def matches(self, method: str, chat_id: Any) -> bool:
        """Whether this fault applies to a call of `method` for `chat_id`."""
        if self.method != "*" and self.method.lower() != method.lower():
            return False
        return self.chat_id is None or str(self.chat_id) == str(chat_id)

    def error(self) -> ApiError:
        """The error this fault answers with (502 Bad Gateway when no error_code is set)."""
        code = self.error_code or 502
        params: dict[str, int] = {}
        retry_after = self.retry_after
        if code == 429 and retry_after is None:
            retry_after = 1
        if retry_after is not None:
            params["retry_after"] = int(retry_after)
        if self.migrate_to_chat_id is not None:
            params["migrate_to_chat_id"] = int(self.migrate_to_chat_id)
        description = self.description
        if description is None:
            default = _DEFAULT_DESCRIPTIONS.get(code, "Error")
            description = default.format(retry_after=retry_after)
        return ApiError(code, description, params or None)


def take(faults: list[Fault], method: str, chat_id: Any) -> Fault | None:
    """Consume one use of the first fault in the queue matching this call, if any."""
    for index, fault in enumerate(faults):
        if fault.matches(method, chat_id):
            fault.count -= 1
            if fault.count <= 0:
                del faults[index]
            return fault
    return None


class Dropped(Exception):
    """The connection was closed on purpose by a fault."""


class RawAnswer(Exception):
    """A fault answers with a body that is not JSON."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(status)
        self.status = status
        self.text = text


async def answer(
    state: StandInState,
    fault: Fault,
    token: str,
    method: str,
    params: dict[str, Any],
    close_connection: Callable[[], None],
) -> tuple[int, Any]:
    """The (HTTP status, JSON body) of a call that met `fault`, after running the method if the
    fault delivers. Raises `RawAnswer` for a body that is not JSON, and `Dropped` after closing
    the connection with `close_connection`."""
    if fault.result is not None:  # an odd success: ok, with a result of another shape
        if fault.deliver:
            await state.call(token, method, params)
        return 200, {"ok": True, "result": fault.result}
    if fault.raw_body is not None:  # what a proxy in front of the Bot API may answer
        raise RawAnswer(fault.error_code or 502, fault.raw_body)
    if fault.close_connection:
        if fault.deliver:
            await state.call(token, method, params)
        if fault.delay:
            await state.wait_for(lambda: state.closing, fault.delay)
        close_connection()
        raise Dropped
    if fault.delay:
        if fault.deliver:
            status, body = await state.call(token, method, params)
            await state.wait_for(lambda: state.closing, fault.delay)
            if fault.error_code is None:
                return status, body
        else:
            await state.wait_for(lambda: state.closing, fault.delay)
    return state.error_answer(token, fault.error())
