"""In-memory fakes of the notifier's ports, recording what they were asked: Telegram (`FakeTelegram`,
a `TelegramSender` answering from a script), the linker (`RecordingLinker`, `InternalEvents`) and
the results' store (`MemoryResults`, `ResultStore`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.notifier.records import DeliveryResult
from services.notifier.telegram import LOUD, Markup, Options, SendError

Answer = int | SendError | None
"""A message id (accepted), the failure Telegram answers with, or None: accepted, a new id."""


@dataclass
class Call:
    method: str
    chat_id: int
    text: str
    reply_markup: dict[str, Any] | None
    message_id: int | None = None
    options: Options = LOUD


@dataclass
class FakeTelegram:
    """Answers each request with the next scripted answer (then accepts everything), writing
    each request before answering; `hold` keeps requests waiting until it is set."""

    script: list[Answer] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    hold: asyncio.Event | None = None
    next_id: int = 1000

    async def send_text(
        self,
        chat_id: int,
        text: str,
        *,
        reply_markup: dict[str, Any] | None = None,
        on_written: Callable[[], None] | None = None,
        options: Options = LOUD,
    ) -> int:
        self.calls.append(Call("sendMessage", chat_id, text, reply_markup, None, options))
        if on_written is not None:
            on_written()
        return await self._answer()

    async def edit_text(
        self, chat: int, message: int, text: str, markup: Markup = None, options: Options = LOUD
    ) -> None:
        self.calls.append(Call("editMessageText", chat, text, markup, message, options))
        await self._answer()

    async def _answer(self) -> int:
        if self.hold is not None:
            await self.hold.wait()
        answer = self.script.pop(0) if self.script else None
        if isinstance(answer, SendError):
            raise answer
        if answer is None:
            self.next_id += 1
            return self.next_id
        return answer


@dataclass
class RecordingLinker:
    """`InternalEvents`: what the linker would have been told."""

    gone: list[tuple[str, str]] = field(default_factory=list)
    migrated: list[tuple[str, int]] = field(default_factory=list)
    topics: list[tuple[str, int, str]] = field(default_factory=list)

    async def chat_gone(self, user_id: str, error: SendError) -> None:
        self.gone.append((user_id, error.description))

    async def chat_migrated(self, user_id: str, new_chat_id: int) -> None:
        self.migrated.append((user_id, new_chat_id))

    async def topic_closed(self, user_id: str, thread: int, error: SendError) -> None:
        self.topics.append((user_id, thread, error.description))


@dataclass
class MemoryResults:
    """`ResultStore`: the hand-over marks and results written, in order."""

    marks: list[tuple[int, bool]] = field(default_factory=list)
    results: list[DeliveryResult] = field(default_factory=list)

    async def mark_handed(self, marks: Sequence[tuple[int, bool]]) -> None:
        self.marks.extend(marks)

    async def finish(self, results: Sequence[DeliveryResult]) -> None:
        self.results.extend(results)
