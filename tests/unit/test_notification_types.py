"""One declaration per event type (`TYPES` in shared/contract.py), and what must follow from it:
each type users get a message of has a template and golden texts in every language, each type
users get or may mute has a name in every language, and the lists the services and their
documents show are the registry's.

Adding a type users get: its data model and `TYPES` entry, its template (`TEMPLATES` in
services/notifier/render.py; `RECORDED` in planning.py if it is recorded as activity), and its
golden texts, `tests/notifier/goldens/<type>.<language>.txt`: its sample as rendered.
"""

import uuid
from datetime import date
from pathlib import Path
from typing import get_args

import pytest

from services.linker import preferences, texts
from services.linker.api.schemas import NotificationType, PreferencesUpdate
from services.notifier import render
from services.notifier.keyboards import MUTE, keyboard
from services.notifier.planning import RECORDED, activity_row, report_from_data
from services.notifier.planning import render as message_text
from shared.contract import (
    ACTIVITY_TYPES,
    MESSAGE_TYPES,
    MUTABLE_TYPES,
    TYPES,
    DailySummaryData,
    EventType,
    Shown,
    new_event,
    parse_event,
    sample_data,
)
from tests.support.examples import AT

pytestmark = pytest.mark.unit

GOLDENS = Path(__file__).resolve().parents[1] / "notifier" / "goldens"
LANGUAGES = sorted({*render.LANGUAGES, *preferences.LANGUAGES})
DAY = date(2026, 2, 26)
NAMED = [t for t, spec in TYPES.items() if spec.shown is Shown.MESSAGE or spec.mutable]
"""The types whose name users read (an edit shows only new numbers in a message of another)."""


def sample_event(event_type: EventType):
    event = new_event(event_type, "123", sample_data(event_type, DAY), occurred_at=AT)
    return parse_event(event.to_json())


def test_the_notifier_and_the_linker_speak_the_same_languages():
    assert set(render.LANGUAGES) == set(preferences.LANGUAGES)


def test_every_message_type_has_a_template_and_nothing_else_has():
    assert set(render.TEMPLATES) == set(MESSAGE_TYPES)


def test_every_type_recorded_as_activity_says_what_it_keeps():
    assert set(RECORDED) == set(ACTIVITY_TYPES)
    for event_type in ACTIVITY_TYPES:
        event, data = sample_event(event_type)
        assert activity_row(event, data).type == event_type


@pytest.mark.parametrize(
    ("event_type", "language"), [(t, lang) for t in NAMED for lang in LANGUAGES]
)
def test_every_type_users_get_or_mute_has_a_name_in_each_language(event_type, language):
    name = TYPES[event_type].names.get(language, "")
    assert name.strip(), f"TYPES[{event_type}].names has no {language!r} name"
    assert texts.type_name(event_type.value, language) == name


def test_only_messages_can_be_muted_and_internal_events_are_never_shown():
    for event_type, spec in TYPES.items():
        assert not spec.mutable or spec.shown is Shown.MESSAGE, event_type
        assert not spec.internal or spec.shown is Shown.NOTHING, event_type


@pytest.mark.parametrize(
    ("event_type", "language"), [(t, lang) for t in MESSAGE_TYPES for lang in LANGUAGES]
)
def test_every_message_type_has_a_golden_text_in_each_language(event_type, language):
    event, data = sample_event(event_type)
    report = report_from_data(data) if isinstance(data, DailySummaryData) else None
    text = message_text(event, data, report, language)
    golden = GOLDENS / f"{event_type.value}.{language}.txt"
    assert golden.is_file(), f"no golden text {golden}; the sample renders as:\n{text}"
    assert text + "\n" == golden.read_text(encoding="utf-8")


def test_every_golden_text_is_of_a_message_type_and_a_language():
    expected = {f"{t.value}.{lang}.txt" for t in MESSAGE_TYPES for lang in LANGUAGES}
    assert {p.name for p in GOLDENS.iterdir()} == expected


def test_the_mute_button_the_commands_and_the_api_offer_exactly_the_mutable_types():
    assert tuple(t.value for t in MUTABLE_TYPES) == preferences.MUTABLE_TYPES
    assert get_args(NotificationType) == preferences.MUTABLE_TYPES
    enum = PreferencesUpdate.model_json_schema()["properties"]["muted_types"]["items"]["enum"]
    assert enum == list(preferences.MUTABLE_TYPES)
    for event_type in MESSAGE_TYPES:
        buttons = keyboard(event_type, uuid.uuid4(), {}, "en")
        mutes = [b for row in buttons for b in row if b.get("action") == MUTE]
        assert bool(mutes) == TYPES[event_type].mutable, event_type
