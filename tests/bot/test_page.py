"""The simulator page in a real browser: Debian's chromium, driven by Playwright."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, async_playwright, expect

from bot.services import Services
from bot.web.app import create_app
from bot.web.page import PAGE_STRINGS
from flows.i18n import translator
from storage.migrate import upgrade
from tests.conftest import make_settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    # The page is the same on both databases; SQLite keeps this test quick.
    url = f"sqlite:///{tmp_path / 'page.db'}"
    await asyncio.to_thread(upgrade, url)
    test_server = TestServer(create_app(Services.build(make_settings(url, tmp_path))))
    await test_server.start_server()
    yield test_server
    await test_server.close()


@pytest.fixture
async def live_server(tmp_path: Path) -> AsyncIterator[TestServer]:
    """Beside a real channel (a Telegram bot, never contacted here), turned on explicitly."""
    url = f"sqlite:///{tmp_path / 'page.db'}"
    await asyncio.to_thread(upgrade, url)
    settings = make_settings(url, tmp_path, telegram_bot_token="123456:ABCDEF", simulator=True)
    test_server = TestServer(create_app(Services.build(settings), background=False))
    await test_server.start_server()
    yield test_server
    await test_server.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert Path(CHROMIUM).exists(), "install chromium (make test does)"
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        await launched.close()


async def send(page: Page, text: str) -> None:
    await page.fill("#text", text)
    await page.click("#send")


async def test_a_conversation_in_sms_style_then_telegram_style(
    server: TestServer, browser: Browser, tmp_path: Path
) -> None:
    page = await browser.new_page(locale="en-GB")
    await page.goto(str(server.make_url("/")))
    await expect(page.locator("h1")).to_have_text("Hotline simulator")
    await expect(page.locator("#live")).to_be_hidden()  # no real channel: nothing to warn of
    await send(page, "hi")
    await expect(page.locator(".bot").last).to_contain_text("8. العربية")
    await send(page, "1")
    await expect(page.locator(".bot").last).to_contain_text("Is it safe for you")

    await page.select_option("#style", "telegram")
    await page.click("#restart")
    await expect(page.locator(".bubble")).to_have_count(0)
    await send(page, "hello")
    await page.get_by_role("button", name="Українська").click()
    safety = translator("uk")("Is it safe for you to get messages from us on this phone?")
    await expect(page.locator(".bot").last).to_contain_text(safety)
    await expect(page.locator(".me").last).to_have_text("Українська")
    await page.screenshot(path=str(tmp_path / "simulator.png"))
    if os.environ.get("SCREENSHOT_TO"):
        await page.screenshot(path=os.environ["SCREENSHOT_TO"], full_page=True)


async def test_the_page_speaks_the_visitors_language_right_to_left(
    server: TestServer, browser: Browser
) -> None:
    page = await browser.new_page(locale="ar")
    await page.goto(str(server.make_url("/")))
    assert await page.get_attribute("html", "dir") == "rtl"
    await expect(page.locator("h1")).to_have_text(translator("ar")("Hotline simulator"))
    await send(page, "مرحبا")
    reply = page.locator(".bot").last
    await expect(reply).to_have_attribute("dir", "rtl")


async def test_beside_a_real_channel_the_page_warns_it_is_a_live_service(
    live_server: TestServer, browser: Browser
) -> None:
    page = await browser.new_page(locale="ru")
    await page.goto(str(live_server.make_url("/")))
    warning = translator("ru")(PAGE_STRINGS["live"])
    await expect(page.locator("#live")).to_be_visible()
    await expect(page.locator("#live")).to_have_text(warning)
    await send(page, "привет")
    await expect(page.locator(".bot").last).to_contain_text("Русский")
