"""deploy/.env.example lists every variable the services read, each with a comment."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr, TypeAdapter

from tests.deploy.conftest import DEPLOY, env_file_entries

pytestmark = pytest.mark.unit

EXAMPLE = DEPLOY / ".env.example"


def test_every_setting_is_listed(settings_fields):
    listed = {name for _, name, _, _ in env_file_entries(EXAMPLE)}
    assert set(settings_fields) - listed == set()


def test_nothing_unknown_is_listed(settings_fields, compose_variables):
    listed = {name for _, name, _, _ in env_file_entries(EXAMPLE)}
    assert listed - set(settings_fields) - compose_variables == set()


def test_each_variable_is_listed_once():
    names = [name for _, name, _, _ in env_file_entries(EXAMPLE)]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def test_each_variable_has_a_comment():
    lines = EXAMPLE.read_text().splitlines()
    entries = {number for number, _, _, _ in env_file_entries(EXAMPLE)}
    for number, name, _, _ in env_file_entries(EXAMPLE):
        above = number - 1
        while above in entries:  # a group of related variables shares one comment
            above -= 1
        assert above >= 1 and lines[above - 1].startswith("# "), f"{name} has no comment"


def test_commented_values_are_the_defaults(settings_fields):
    for _, name, value, active in env_file_entries(EXAMPLE):
        if active or name not in settings_fields:
            continue
        cls, field = settings_fields[name]
        info = cls.model_fields[field]
        default = info.get_default(call_default_factory=True)
        if isinstance(default, SecretStr):
            continue  # the URLs: compose builds its own; the comment says the default
        assert parse(info.annotation, value) == default, name


def parse(annotation: Any, value: str) -> Any:
    if value == "":
        return None
    if isinstance(annotation, type) and issubclass(annotation, str):
        return annotation(value)
    try:
        return TypeAdapter(annotation).validate_python(value)
    except ValueError:
        return [item.strip() for item in value.split(",")]  # comma-separated lists


def test_active_values_are_development_ones():
    active = {name: value for _, name, value, is_active in env_file_entries(EXAMPLE) if is_active}
    # Loaded into every compose container: nothing that would weaken production or pin a URL.
    assert set(active) <= {"LOG_FORMAT", "JWT_SECRET"}
    assert "change-me" in active.get("JWT_SECRET", "change-me")
