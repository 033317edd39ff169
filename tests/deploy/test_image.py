"""deploy/Dockerfile and .dockerignore, checked without a Docker engine (deploy/check_image.py)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.deploy.conftest import DEPLOY

pytestmark = pytest.mark.unit

_spec = importlib.util.spec_from_file_location("check_image", DEPLOY / "check_image.py")
assert _spec is not None and _spec.loader is not None
check_image = importlib.util.module_from_spec(_spec)
sys.modules["check_image"] = check_image  # dataclasses look their module up
_spec.loader.exec_module(check_image)


def test_the_dockerfile_passes_the_static_checks():
    stages = check_image.parse_dockerfile(check_image.DOCKERFILE.read_text())
    ignore = check_image.DockerIgnore(check_image.DOCKERIGNORE.read_text())
    assert check_image.check(stages, ignore) == []
    assert [s.name for s in stages] == ["uv", "build", "runtime"]


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        ("*\n!services/\n", "services/cli.py", False),
        ("*\n!services/\n", "tests/conftest.py", True),
        ("*\n!services/\n", "pyproject.toml", True),
        ("*\n!pyproject.toml\n", "pyproject.toml", False),
        ("*\n!services/\n**/__pycache__\n", "services/x/__pycache__/a.pyc", True),
        ("*\n!shared/\n**/*.py[cod]\n", "shared/db.pyc", True),
        ("*\n!shared/\n**/*.py[cod]\n", "shared/db.py", False),
        ("/deploy\n", "deploy/Dockerfile", True),
        ("docs/*.md\n", "docs/a.md", True),
        ("docs/*.md\n", "docs/sub/a.md", False),
        ("", "anything", False),
    ],
)
def test_dockerignore_rules_follow_docker(patterns, path, excluded):
    assert check_image.DockerIgnore(patterns).excluded(path) is excluded


def test_a_missing_copy_source_is_reported():
    dockerfile = (
        "FROM python:3.11-slim-bookworm AS build\n"
        "ENV UV_PROJECT_ENVIRONMENT=/app/.venv\n"
        "COPY no-such-file ./\n"
        "COPY tests ./tests\n"
        "RUN uv sync --frozen\n"
        "FROM python:3.11-slim-bookworm AS runtime\n"
        "COPY --from=build /app/.venv /app/.venv\n"
        "ENTRYPOINT sns-telegram\n"
    )
    ignore = check_image.DockerIgnore("*\n!services/\n")
    problems = "\n".join(check_image.check(check_image.parse_dockerfile(dockerfile), ignore))
    assert "no-such-file does not exist" in problems
    assert "tests/ is empty after .dockerignore" in problems
    assert "without --no-dev" in problems
    assert "numeric non-root USER" in problems
    assert 'ENTRYPOINT must be ["sns-telegram"]' in problems
