"""No real secret anywhere in deploy/: only placeholders, as shared/settings.py declares them
(tests/deploy/test_placeholders.py checks that production refuses each one)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from shared.settings import is_placeholder as settings_placeholder
from tests.deploy.conftest import DEPLOY, K8S, ROOT, env_file_entries

pytestmark = pytest.mark.unit

SECRET_VARIABLES = re.compile(
    r"^(TELEGRAM_BOT_TOKEN|TELEGRAM_WEBHOOK_SECRET|JWT_SECRET|JWT_PUBLIC_KEY|"
    r"CHAT_ID_ENCRYPTION_KEY|[A-Z_]*PASSWORD|[A-Z_]*_PASS)$"
)
SECRET_SHAPES = {
    "Telegram bot token": re.compile(r"\b\d{6,12}:[A-Za-z0-9_-]{30,}"),
    "JWT": re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}"),
    "Fernet key": re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}=(?![A-Za-z0-9_=-])"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub/Slack token": re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{20,}|xox[abpr]-[A-Za-z0-9-]{10,})"),
}
URL_PASSWORD = re.compile(r"[a-z+]+://[^:/@\s]+:([^@\s]+)@")


def deploy_files() -> list[Path]:
    files = [p for p in DEPLOY.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    return [*files, ROOT / ".dockerignore"]


def is_placeholder(value: str) -> bool:
    """A placeholder by the services' own declaration (shared/settings.py, the one production
    refuses), or a compose `${VARIABLE...}` interpolation."""
    return value.startswith("${") or settings_placeholder(value)


@pytest.mark.parametrize("path", deploy_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_looks_like_a_real_secret(path):
    text = path.read_text(errors="replace")
    for what, shape in SECRET_SHAPES.items():
        assert not shape.search(text), f"{path.name}: looks like a {what}"
    for password in URL_PASSWORD.findall(text):
        assert is_placeholder(password), f"{path.name}: a password in a URL: {password[:3]}..."


@pytest.mark.parametrize(
    "path", [DEPLOY / ".env.example", K8S / "overlays" / "dev" / "secrets.dev.env"]
)
def test_env_file_secrets_are_placeholders(path):
    for _, name, value, _ in env_file_entries(path):
        if SECRET_VARIABLES.match(name):
            assert is_placeholder(value), f"{path.name}: {name}"


def test_secret_template_values_are_placeholders():
    template = yaml.safe_load((K8S / "secret.template.yaml").read_text())
    assert "TEMPLATE" in (K8S / "secret.template.yaml").read_text().splitlines()[0]
    for name, value in template["stringData"].items():
        assert is_placeholder(value), name


def test_compose_secrets_are_placeholders_or_variables(compose):
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        for variable, value in environment.items():
            if SECRET_VARIABLES.match(variable):
                assert is_placeholder(str(value)), f"{name}: {variable}"
