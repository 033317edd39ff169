"""Every secret-looking value this repository ships (deploy files, compose defaults, README and docs
examples, the `dev` command's defaults) is refused by production validation, so a placeholder
added later cannot reach production: add one anywhere and this test names the file and line."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from pydantic import SecretStr

from shared.settings import ConfigurationError, is_placeholder, variable_name
from tests.configs import SERVICE_SETTINGS, production
from tests.deploy.conftest import DEPLOY, ROOT

pytestmark = pytest.mark.unit

NAME = r"[A-Z][A-Z0-9_]*"
QUOTED = r"""(?:'([^'\n]*)'|"([^"\n]*)"|([^\s'"`]*))"""
ASSIGNMENTS = [
    # NAME=value: env files, kustomize literals, --from-literal=, docker run -e, Markdown
    re.compile(rf"(?<![A-Za-z0-9_$]){'(' + NAME + ')'}={QUOTED}"),
    # NAME: value: YAML (stringData, compose environment), also commented out
    re.compile(rf"^[ \t]*(?:#[ \t]*)?(?:-[ \t]+)?({NAME}):[ \t]+{QUOTED}", re.MULTILINE),
    # "NAME", "value" or "NAME": "value": Python (the dev command's defaults), JSON
    re.compile(rf"""["']({NAME})["']\s*[,:]\s*{QUOTED}"""),
]
JWT_ENCODE = re.compile(r"""jwt\.encode\(\{.*?\},\s*['"]([^'"]+)['"]""")
URL_WITH_PASSWORD = re.compile(r"""\b([a-z][a-z0-9+.-]*)://[^\s:/@'"`<>]+:([^\s@'"`<>/]+)@""")
COMPOSE_DEFAULT = re.compile(rf"(?<!\$)\$\{{({NAME}):?-([^${{}}]*)\}}")
PASSWORD_VARIABLE = re.compile(r"^[A-Z_]*(PASSWORD|_PASS)$")


@dataclass(frozen=True)
class Shipped:
    path: Path
    line: int
    variable: str
    value: str

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line} {self.variable}"


def scanned_files() -> list[Path]:
    deploy = [
        p
        for p in DEPLOY.rglob("*")
        if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts
    ]
    docs = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *ROOT.glob("services/*/*.md")]
    dev = [ROOT / "services" / "cli.py", *(ROOT / "services" / "dev").glob("*.py")]
    return sorted([*deploy, *docs, ROOT / "Makefile", *dev])


def _resolve_compose_defaults(text: str, found: list[tuple[int, str, str]]) -> str:
    """Replace each `${NAME:-default}` (innermost first) by its default, recording them."""
    while match := COMPOSE_DEFAULT.search(text):
        found.append((match.start(), match.group(1), match.group(2)))
        text = text[: match.start()] + match.group(2) + text[match.end() :]
    return text


def shipped_values(path: Path) -> list[Shipped]:
    """Every (variable, value) the file assigns, with its line."""
    text = path.read_text(errors="replace")
    raw: list[tuple[int, str, str]] = []
    text = _resolve_compose_defaults(text, raw)
    for pattern in ASSIGNMENTS:
        for match in pattern.finditer(text):
            value = next((g for g in match.groups()[1:] if g is not None), "")
            raw.append((match.start(), match.group(1), value))
    raw += [(m.start(), "JWT_SECRET", m.group(1)) for m in JWT_ENCODE.finditer(text)]
    for match in URL_WITH_PASSWORD.finditer(text):
        scheme = match.group(1)
        variable = "RABBITMQ_URL" if scheme.startswith("amqp") else "DATABASE_URL"
        if scheme.startswith(("amqp", "postgres")):
            raw.append((match.start(), f"{variable} password", match.group(2)))
    return [
        Shipped(path, text.count("\n", 0, at) + 1, variable, value)
        for at, variable, value in raw
        if value and not value.startswith("$")  # unset, or a shell/compose variable
    ]


def settings_reading(variable: str) -> list[tuple[type, str]]:
    return [
        (cls, field)
        for cls in SERVICE_SETTINGS.values()
        for field in cls.model_fields
        if variable_name(cls, field) == variable
    ]


def is_secret(cls: type, field: str) -> bool:
    annotation = cls.model_fields[field].annotation
    return SecretStr in (getattr(annotation, "__args__", ()) or (annotation,))


def to_check() -> list[tuple[Shipped, type, str, str]]:
    """(where, settings class, field, value) of every shipped value production must refuse."""
    checks = []
    for path in scanned_files():
        for shipped in shipped_values(path):
            name, value = shipped.variable, shipped.value
            if name.endswith(" password") or PASSWORD_VARIABLE.match(name):
                password = quote(value, safe="")
                urls = {
                    "rabbitmq_url": f"amqps://sns:{password}@mq.internal:5671/sns",
                    "database_url": f"postgresql://sns:{password}@db.internal:5432/sns",
                }
                for cls in SERVICE_SETTINGS.values():
                    checks += [(shipped, cls, field, url) for field, url in urls.items()]
                continue
            for cls, field in settings_reading(name):
                if is_secret(cls, field) or is_placeholder(value, secret=False):
                    checks.append((shipped, cls, field, value))
    return checks


CHECKS = to_check()


@pytest.mark.parametrize(
    ("shipped", "cls", "field", "value"),
    CHECKS,
    ids=[f"{c[0]}-{c[1].__name__}" for c in CHECKS],
)
def test_each_shipped_value_is_refused_in_production(shipped, cls, field, value):
    with pytest.raises(ConfigurationError) as caught:
        production(cls, **{field: value}).validate_for_production()
    assert variable_name(cls, field) in str(caught.value), f"{shipped}: {caught.value}"


def test_the_scan_finds_what_the_repository_ships():
    found = {(str(c[0].path.relative_to(ROOT)), c[0].variable) for c in CHECKS}
    assert found >= {
        ("deploy/.env.example", "JWT_SECRET"),
        ("deploy/.env.example", "POSTGRES_PASSWORD"),
        ("deploy/docker-compose.yml", "RABBITMQ_PASSWORD"),
        ("deploy/docker-compose.yml", "RABBITMQ_URL"),
        ("deploy/k8s/overlays/dev/secrets.dev.env", "DATABASE_URL"),
        ("deploy/k8s/secret.template.yaml", "TELEGRAM_BOT_TOKEN"),
        ("deploy/k8s/secret.template.yaml", "JWT_PUBLIC_KEY"),
        ("deploy/k8s/overlays/prod/kustomization.yaml", "TELEGRAM_WEBHOOK_URL"),
        ("deploy/README.md", "TELEGRAM_BOT_TOKEN"),
        ("README.md", "RABBITMQ_URL password"),
        ("services/dev/tokens.py", "JWT_SECRET"),
    }
