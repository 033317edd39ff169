"""A message's ways out when Telegram refuses what it carries, each taken once:

- a forum topic that is closed or deleted (400 "message thread not found" / "TOPIC_CLOSED"): the
  message goes to the group's General topic; the group is told, the linker clears the link's topic
  (`telegram.topic_closed`);
- a photo Telegram cannot take (any other 400: a bad or unreachable URL, too big, "wrong file
  identifier/HTTP URL specified"): the notification goes as its text message instead.

The delivery row records why (its `error`, on a message that was sent), and whether the message
Telegram holds is a photo (its payload's `"sent_as": "photo"`: a later edit of its counts edits
the caption).
One notification stays one message: a fallback follows only a definite refusal, never a timeout.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from services.notifier.records import DeliveryStatus, Verdict
from services.notifier.render import labels
from services.notifier.telegram import SENT_AS_PHOTO, Failure, Options, SendError


class Carrying(Protocol):
    """What a send reads its options from (a `Send`, or a released message's `Held`)."""

    options: Options


@dataclass
class Held:
    """The options of a message released after quiet hours."""

    options: Options


@dataclass
class Fallback:
    """One message's fallbacks: its options lose the topic, or the photo, once each."""

    message: Carrying
    language: str
    topic_refused: SendError | None = None
    """Telegram's answer for the topic, once the message fell back to General."""
    thread: int | None = None
    """The topic it fell back from."""
    photo_refused: SendError | None = None
    """Telegram's answer for the photo, once the message fell back to text."""

    def to_general(self, error: SendError) -> bool:
        """Whether to send again without the topic: the first time Telegram says the topic of
        a message sent into one is gone (then the message's options lose it)."""
        thread = self.message.options.thread
        if error.failure is not Failure.TOPIC_GONE or thread is None or self.topic_refused:
            return False
        self.topic_refused, self.thread = error, thread
        self.message.options = replace(self.message.options, thread=None)
        return True

    def to_text(self, error: SendError) -> bool:
        """Whether to send again as a text message: the first time Telegram refuses a photo
        for a reason of the message's own (then the message's options lose the photo)."""
        photo = self.message.options.photo
        if error.failure is not Failure.REJECTED or photo is None or self.photo_refused:
            return False
        self.photo_refused = error
        self.message.options = replace(self.message.options, photo=None)
        return True

    def notice(self) -> str:
        """What a group whose topic is gone is told (one short message, in its language)."""
        return labels(self.language).topic_gone

    def recorded(self, verdict: Verdict) -> Verdict:
        """The verdict with why the message was sent otherwise than planned (the delivery
        row's error), and whether it is a photo (the row's payload)."""
        if verdict.status is not DeliveryStatus.SENT:
            return verdict
        why = []
        if self.topic_refused is not None:
            why.append(
                f"topic {self.thread} gone ({self.topic_refused.description}): sent to General"
            )
        if self.photo_refused is not None:
            why.append(f"photo refused ({self.photo_refused.description}): sent as text")
        kept = SENT_AS_PHOTO if self.message.options.photo is not None else None
        return replace(verdict, error="; ".join(why) or verdict.error, kept=kept)
