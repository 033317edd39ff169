"""The APIs' documentation pages work without the internet (and in air-gapped clusters): the
linker's /docs and /redoc and the scheduler's admin /docs load Swagger UI and ReDoc from the
service itself, in a real headless Chromium that is refused every request off this machine."""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime

import pytest
from playwright.async_api import Browser, Page, Route

from tests.browser import TIMEOUT_MS, headless_chromium
from tests.linker.served import ServedLinker
from tests.scheduler.served import ServedScheduler

pytestmark = pytest.mark.e2e


async def offline_page(browser: Browser, outside: list[str]) -> Page:
    """A page whose requests reach 127.0.0.1 only; the others are recorded and refused."""
    page = await browser.new_page(viewport={"width": 1200, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)

    async def only_local(route: Route) -> None:
        url = route.request.url
        if urllib.parse.urlsplit(url).hostname in ("127.0.0.1", "localhost"):
            await route.continue_()
        else:
            outside.append(url)
            await route.abort()

    await page.route("**/*", only_local)
    return page


async def swagger_ui_shows(page: Page, url: str, title: str, path: str) -> None:
    await page.goto(url)
    await page.locator(".swagger-ui .info .title", has_text=title).wait_for()
    await page.locator(".opblock-summary-path", has_text=path).first.wait_for()


async def test_linker_docs_and_redoc_work_offline(database_url: str, rabbitmq_url: str) -> None:
    outside: list[str] = []
    with ServedLinker(database_url, rabbitmq_url) as linker:
        async with headless_chromium() as browser:
            page = await offline_page(browser, outside)
            await swagger_ui_shows(
                page, f"{linker.base_url}/docs", "SNS Telegram linker", "/api/telegram/link-account"
            )
            assert outside == []
            await page.goto(f"{linker.base_url}/redoc")
            await page.locator("h1", has_text="SNS Telegram linker").wait_for()
            await page.locator("h2", has_text="Check the Telegram connection status").wait_for()
    # ReDoc's bundle links its "powered by" logo; nothing else leaves the machine.
    assert set(outside) <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}


async def test_scheduler_admin_docs_work_offline(database_url: str, rabbitmq_url: str) -> None:
    outside: list[str] = []
    with ServedScheduler(database_url, rabbitmq_url, datetime.now(UTC)) as scheduler:
        async with headless_chromium() as browser:
            page = await offline_page(browser, outside)
            await swagger_ui_shows(
                page,
                f"{scheduler.base_url}/docs",
                "SNS Telegram scheduler",
                "/api/admin/scheduler/jobs",
            )
    assert outside == []
