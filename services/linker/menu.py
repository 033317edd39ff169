"""Inline buttons the linker understands: their actions, how long each stays valid, how often
Retry may be pressed, the /settings keyboard, and what a settings button changes (pure; the bot
signs the data with `services.common.callbacks`).

Settings buttons carry the value they set, not "toggle": pressing an old keyboard, or Telegram
delivering the same press twice, sets the same value again instead of flipping it back.

Every button is dated when it is signed. Retry works for 7 days (a retry of an older post is the
dashboard's job), "Mute this type" for 30 days (muting is harmless and undone with /settings),
and a /settings keyboard for 1 day (a press that changes a setting re-signs the keyboard it
edits, so a menu in use stays fresh). A button from before buttons were dated is answered as
expired.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta

from services.common.callbacks import Signed
from services.linker import texts
from services.linker.preferences import (
    LANGUAGES,
    MODES,
    MUTABLE_TYPES,
    QUIET_MODES,
    QUIET_PRESETS,
    Preferences,
    PreferencesChange,
)

MUTE = "m"
"""On notifications (the notifier's "Mute this type"): argument = the event type."""
RETRY = "r"
"""On failure notifications (the notifier's "Retry"): argument = short_uuid(event_id)."""
SET_MUTED = "sm"
SET_UNMUTED = "su"
SET_LANGUAGE = "sl"
SET_QUIET = "sq"
"""Argument `off`, or `HHMM-HHMM` (start-end)."""
SET_MODE = "sv"
"""Argument `<type>.<mode>`: the type delivered loud, silent or muted (`MODES`)."""
SET_QUIET_MODE = "sh"
"""Argument `hold` or `silent`: what quiet hours do (`QUIET_MODES`)."""
SET_PREVIEWS = "sp"
"""Argument `on` or `off`: link previews of post links."""
SET_IMAGES = "si"
"""Argument `on` or `off`: post notifications sent as the post's image with a caption."""
SET_TOPIC = "st"
"""Argument `general`: notifications go to the chat itself (a forum's General topic), not the
topic the link was made in. Only General: a topic is chosen by linking inside it."""
TOPIC_GENERAL = "general"
SETTINGS_ACTIONS = (
    SET_MUTED,
    SET_UNMUTED,
    SET_LANGUAGE,
    SET_QUIET,
    SET_MODE,
    SET_QUIET_MODE,
    SET_PREVIEWS,
    SET_IMAGES,
    SET_TOPIC,
)
"""`sm`/`su` (mute, unmute) are what keyboards before `sv` carry; they are still honoured."""
QUIET_OFF = "off"
ON_OFF = ("on", "off")
"""The arguments of an on/off setting's two buttons, in the order they are shown."""

RETRY_LIFETIME = timedelta(days=7)
MUTE_LIFETIME = timedelta(days=30)
SETTINGS_LIFETIME = timedelta(days=1)
"""Also the lifetime of any action not named here."""

RETRIES_PER_USER = 20
RETRIES_PER_POST = 3
RETRY_PERIOD = timedelta(hours=1)
"""Retry presses published per platform user, and per failed post, in any hour (GCRA: a burst of
that many, then one every period / limit)."""


def lifetime(action: str) -> timedelta:
    """How long a button with this action stays valid after it was signed."""
    if action == RETRY:
        return RETRY_LIFETIME
    if action == MUTE:
        return MUTE_LIFETIME
    return SETTINGS_LIFETIME


def expired(signed: Signed, now: datetime) -> bool:
    """Whether the pressed button is too old to act on (an undated one always is)."""
    age = signed.age(now)
    return age is None or age > lifetime(signed.action)


@dataclass(frozen=True)
class Button:
    """One inline button before signing."""

    label: str
    action: str
    argument: str


def quiet_argument(quiet: tuple[time, time] | None) -> str:
    """The `sq` argument for these quiet hours."""
    if quiet is None:
        return QUIET_OFF
    start, end = quiet
    return f"{start:%H%M}-{end:%H%M}"


def parse_quiet(argument: str) -> tuple[time, time] | None:
    """Quiet hours from an `sq` argument (None: off); raises ValueError when malformed."""
    if argument == QUIET_OFF:
        return None
    parts = argument.split("-")
    if len(parts) != 2 or not all(len(p) == 4 and p.isdigit() for p in parts):
        raise ValueError(f"not quiet hours: {argument!r}")
    start, end = (time(int(p[:2]), int(p[2:])) for p in parts)
    if start == end:
        raise ValueError("quiet hours must not start when they end")
    return start, end


def next_mode(mode: str) -> str:
    """The mode a type's button sets: loud, then silent, then muted, then loud again."""
    return MODES[(MODES.index(mode) + 1) % len(MODES)]


def settings_keyboard(prefs: Preferences) -> list[list[Button]]:
    """The /settings keyboard: each type's mode two per row (a press sets the next mode),
    quiet hours, what they do, link previews, post images, language; and, when notifications go
    to a forum topic, a button that moves them to General."""
    toggles = [
        Button(
            texts.type_button(t, prefs.mode(t), prefs.language),
            SET_MODE,
            f"{t}.{next_mode(prefs.mode(t))}",
        )
        for t in MUTABLE_TYPES
    ]
    choices = [None, *QUIET_PRESETS]
    quiet = [
        Button(_chosen(label, choice == prefs.quiet_hours), SET_QUIET, quiet_argument(choice))
        for label, choice in zip(texts.quiet_buttons(prefs.language), choices, strict=True)
    ]
    languages = [
        Button(_chosen(texts.LANGUAGE_NAMES[lang], lang == prefs.language), SET_LANGUAGE, lang)
        for lang in LANGUAGES
    ]
    quiet_modes = [
        Button(_chosen(label, mode == prefs.quiet_mode), SET_QUIET_MODE, mode)
        for label, mode in zip(texts.quiet_mode_buttons(prefs.language), QUIET_MODES, strict=True)
    ]
    previews = _on_off(texts.preview_buttons(prefs.language), prefs.link_previews, SET_PREVIEWS)
    images = _on_off(texts.image_buttons(prefs.language), prefs.post_images, SET_IMAGES)
    rows = [toggles[:2], toggles[2:], quiet, quiet_modes, previews, images, languages]
    if prefs.message_thread_id is not None:
        rows.append([Button(texts.general_button(prefs.language), SET_TOPIC, TOPIC_GENERAL)])
    return rows


def settings_change(action: str, argument: str) -> PreferencesChange | None:
    """What a settings button changes; None when the action or argument is not one of ours."""
    if action in (SET_MUTED, SET_UNMUTED) and argument in MUTABLE_TYPES:
        return lambda prefs: prefs.muting(argument, action == SET_MUTED)
    if action == SET_MODE:
        event_type, _, mode = argument.rpartition(".")
        if event_type in MUTABLE_TYPES and mode in MODES:
            return lambda prefs: prefs.with_mode(event_type, mode)
        return None
    if action == SET_QUIET_MODE and argument in QUIET_MODES:
        return lambda prefs: replace(prefs, quiet_mode=argument)
    if action == SET_PREVIEWS and argument in ON_OFF:
        return lambda prefs: replace(prefs, link_previews=argument == "on")
    if action == SET_IMAGES and argument in ON_OFF:
        return lambda prefs: replace(prefs, post_images=argument == "on")
    if action == SET_TOPIC and argument == TOPIC_GENERAL:
        return lambda prefs: replace(prefs, message_thread_id=None)
    if action == SET_LANGUAGE and argument in LANGUAGES:
        return lambda prefs: replace(prefs, language=argument)
    if action == SET_QUIET:
        try:
            quiet = parse_quiet(argument)
        except ValueError:
            return None
        return lambda prefs: replace(prefs, quiet_hours=quiet)
    return None


def _on_off(labels: list[str], value: bool, action: str) -> list[Button]:
    """An on/off setting's two buttons (`labels`: on, then off), the current one chosen."""
    return [
        Button(_chosen(label, (argument == "on") == value), action, argument)
        for label, argument in zip(labels, ON_OFF, strict=True)
    ]


def _chosen(label: str, chosen: bool) -> str:
    return texts.CHOSEN + label if chosen else label
