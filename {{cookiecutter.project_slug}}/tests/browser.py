"""Headless Chromium for the browser tests: the system's own (Debian's `chromium` and `chromium-driver`),
driven by Selenium. Nothing is downloaded: the driver's path is given, so Selenium Manager never runs.
CHROMIUM_BINARY and CHROMEDRIVER point elsewhere (Google Chrome and its driver, for one)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"


def _import_selenium() -> None:
    """Import Selenium with websocket-client's module `websocket`, then give the name back to the project.

    The project's package `websocket` (src/websocket, on the path first) shadows websocket-client's module of
    the same name, which Selenium's remote driver imports (`from websocket import WebSocketApp`, for BiDi).
    Selenium keeps what it imported; afterwards `websocket` is the project's package again.
    """
    project_modules = {
        name: sys.modules.pop(name) for name in list(sys.modules) if name.split(".")[0] == "websocket"
    }
    saved_path = sys.path[:]
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != SRC]
    try:
        import selenium.webdriver.remote.webdriver  # noqa: F401
    finally:
        sys.path[:] = saved_path
        for name in [name for name in sys.modules if name.split(".")[0] == "websocket"]:
            del sys.modules[name]
        sys.modules.update(project_modules)


_import_selenium()

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402

CHROMIUM = Path(os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
INSTALL_HINT = "sudo apt-get install chromium chromium-driver"
# Generous: the bound only matters when something is broken, and the machine may be busy.
WAIT = 60.0

T = TypeVar("T")


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if not missing:
        return None
    return (
        f"Chromium and its driver are needed ({', '.join(missing)} not found): `{INSTALL_HINT}` "
        "(Debian, Ubuntu), or set CHROMIUM_BINARY and CHROMEDRIVER to a Chrome and its chromedriver"
    )


def start_chromium(width: int = 1280, height: int = 900) -> webdriver.Chrome:
    reason = missing_browser()
    if reason:
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in containers and CI
        "--disable-dev-shm-usage",  # small /dev/shm in containers
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",  # traffic only to the server under test
        "--lang=en-US",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))


def wait_for(driver: webdriver.Chrome, what: str, check: Callable[[], T], within: float = WAIT) -> T:
    """Poll `check` until it returns something truthy; fails saying what was awaited."""

    def attempt(_: webdriver.Chrome) -> T | None:
        try:
            return check()
        except StaleElementReferenceException:  # the page replaced the element meanwhile: look again
            return None

    try:
        return WebDriverWait(driver, within, poll_frequency=0.1).until(attempt)
    except TimeoutException:
        raise AssertionError(f"waited {within:.0f} s for {what}") from None


def sign_in(driver: webdriver.Chrome, base_url: str, username: str, password: str) -> None:
    """Open the site's index as a visitor would, sign in on the form it leads to, land on the fleet page and
    wait for its live connection."""
    driver.get(base_url + "/")
    driver.find_element(By.ID, "id_username").send_keys(username)
    driver.find_element(By.ID, "id_password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form.stacked button[type=submit]").click()
    wait_for(driver, "the fleet page", lambda: driver.current_url.endswith("/fleet/"))
    wait_for(
        driver,
        "the live connection",
        lambda: driver.find_element(By.ID, "live-state").text == "live",
    )
