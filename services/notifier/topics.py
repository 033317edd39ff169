"""Forum topics: a send into a topic that Telegram says is closed or deleted goes to the group's
General topic instead, once; the group is told, the linker clears the link's topic
(`telegram.topic_closed`), and the delivery row records why."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from services.notifier.records import DeliveryStatus, Verdict
from services.notifier.render import labels
from services.notifier.telegram import Failure, Options, SendError


class Carrying(Protocol):
    """What a send reads its options from (a `Send`, or a released message's `Held`)."""

    options: Options


@dataclass
class Held:
    """The options of a message released after quiet hours."""

    options: Options


@dataclass
class TopicFallback:
    """One message's way out of a closed topic: its options lose the thread, once."""

    message: Carrying
    language: str
    refused: SendError | None = None
    """Telegram's answer for the topic, once the message fell back to General."""
    thread: int | None = None

    def to_general(self, error: SendError) -> bool:
        """Whether to send again without the topic: the first time Telegram says the topic of
        a message sent into one is gone (then the message's options lose it)."""
        thread = self.message.options.thread
        if error.failure is not Failure.TOPIC_GONE or thread is None or self.refused is not None:
            return False
        self.refused, self.thread = error, thread
        self.message.options = replace(self.message.options, thread=None)
        return True

    def notice(self) -> str:
        """What the group is told (one short message, in the link's language)."""
        return labels(self.language).topic_gone

    def recorded(self, verdict: Verdict) -> Verdict:
        """The verdict with why the message went to General (the delivery row's error)."""
        if self.refused is None or verdict.status is not DeliveryStatus.SENT:
            return verdict
        why = f"topic {self.thread} gone ({self.refused.description}): sent to General"
        return replace(verdict, error=why)
