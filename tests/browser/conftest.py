"""A real headless Chromium driven through Selenium: Debian's `chromium` and `chromium-driver` (installed by
`make test` when missing). Selenium Manager is never asked for anything: the binaries are given, nothing downloads.

Screenshots go to a temporary directory, or to $INBOX_SCREENSHOT_DIR when set (docs/sandbox-inbox.md: how the ones
under docs/images/ are regenerated).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER_CANDIDATES = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
# Selenium Manager must never try to fetch a driver or a browser (no internet here; the binaries are given).
os.environ.setdefault("SE_OFFLINE", "true")
WAIT_SECONDS = 10.0
WINDOW = (1280, 860)


def _find(env: str, names: tuple[str, ...], candidates: tuple[str, ...]) -> str:
    configured = os.environ.get(env)
    if configured:
        return configured
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    pytest.fail(f"{names[0]} is not installed: `make browsers` (apt-get install chromium chromium-driver)")


@pytest.fixture(scope="session")
def download_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("INBOX_SCREENSHOT_DIR")
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="session")
def chrome(download_dir: Path) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = _find("CHROMIUM_BINARY", ("chromium", "chromium-browser"), CHROMIUM_CANDIDATES)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # we run as root in CI containers
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--metrics-recording-only",
        "--hide-scrollbars",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(download_dir),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    service = Service(executable_path=_find("CHROMEDRIVER", ("chromedriver",), CHROMEDRIVER_CANDIDATES))
    driver = webdriver.Chrome(options=options, service=service)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    yield driver
    driver.quit()


@pytest.fixture
def browser(chrome: WebDriver) -> Iterator[WebDriver]:
    """The session's browser at the default window size, on a blank page afterwards (no feed left open)."""
    chrome.set_window_size(*WINDOW)
    yield chrome
    chrome.get("about:blank")


Condition = Callable[[WebDriver], Any]


def wait_for(driver: WebDriver, condition: Condition, message: str, timeout: float = WAIT_SECONDS) -> Any:
    """An explicit wait on a condition (never a sleep): its first truthy value, or a timeout naming what was awaited.
    An element the page replaced while the condition read it (the live list re-rendered between finding a row and
    reading its attribute) means "not yet", and the condition is asked again."""
    waiting = WebDriverWait(
        driver,
        timeout,
        poll_frequency=0.05,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    )
    return waiting.until(condition, message)
