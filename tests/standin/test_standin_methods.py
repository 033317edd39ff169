"""The methods table is the one list of what the stand-in implements: the README and the
HTTP route agree with it."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest

from services.standin.methods import METHODS
from services.standin.server import StandIn

pytestmark = pytest.mark.unit

TOKEN = "123456:TEST-token-not-real"
README = Path(__file__).parents[2] / "services" / "standin" / "README.md"


def readme_methods() -> set[str]:
    """The method names in the first column of the README's "Bot API methods" table."""
    section = README.read_text().split("## Bot API methods", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`(\w+)`", row)}


def test_the_readme_lists_exactly_the_methods_of_the_table() -> None:
    assert readme_methods() == set(METHODS)


async def test_every_method_of_the_table_is_served(standin: StandIn) -> None:
    async with aiohttp.ClientSession() as http:
        for name in METHODS:
            async with http.post(f"{standin.base_url}/bot{TOKEN}/{name}") as r:
                assert r.status in (200, 400), (name, r.status)
    assert set(standin.stats["requests"]) == set(METHODS)
