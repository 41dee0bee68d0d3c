"""The dashboard in a real browser (headless Chromium), used as a person uses it, against the backend running
as processes (tests/live_stack.py) and simulated devices (`manage.py simulate_devices`).

On failure the test saves a screenshot and the page's HTML next to its logs and names them in the error.
FLEET_SCREENSHOT=<path> also saves the fleet page, once its devices are online, at that path (the README's
picture: `FLEET_SCREENSHOT=docs/fleet.png .venv/bin/pytest tests/test_dashboard_browser.py`).
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from selenium import webdriver
from selenium.webdriver.common.by import By

from apps.devices.models import Device
from apps.mqtt_service import topology
from browser import WAIT, sign_in, start_chromium, wait_for
from live_stack import PROJECT_ROOT, LiveStack, live_stack

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a browser test password"
DEVICES = 3
SCREENSHOT_DEVICES = 12  # a fuller fleet for the README's picture
PHONE = (390, 844)


class Journey:
    """The browser, the backend and what the steps share."""

    def __init__(self, driver: webdriver.Chrome, stack: LiveStack, evidence: Path) -> None:
        self.driver = driver
        self.stack = stack
        self.evidence = evidence

    def open(self, path: str) -> None:
        self.driver.get(self.stack.url + path)

    def css(self, selector: str) -> list:
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def text(self, selector: str) -> str:
        found = self.css(selector)
        return found[0].text if found else ""

    def wait(self, what: str, check, within: float = WAIT):
        return wait_for(self.driver, what, check, within)

    def wait_live(self) -> None:
        self.wait("the live connection", lambda: self.text("#live-state") == "live")


@contextlib.contextmanager
def evidence_on_failure(journey: Journey) -> Iterator[None]:
    try:
        yield
    except BaseException as exc:
        if isinstance(exc, pytest.skip.Exception):
            raise
        shot = journey.evidence / "failure.png"
        journey.driver.save_screenshot(str(shot))
        page = journey.evidence / "failure.html"
        page.write_text(journey.driver.page_source)
        raise AssertionError(f"{exc}\nscreenshot: {shot}\npage: {page}\n{journey.stack.logs_tail()}") from exc


@pytest.fixture
def journey(tmp_path: Path) -> Iterator[Journey]:
    database = connection.settings_dict["NAME"]
    with live_stack(database, tmp_path) as stack:
        driver = start_chromium()  # while the services start
        try:
            yield Journey(driver, stack.wait_ready(), tmp_path)
        finally:
            driver.quit()


def row(username: str) -> str:
    return f'tr[data-device="{username}"]'


def test_a_user_watches_the_fleet_live_sends_a_command_and_sees_a_device_die(
    journey: Journey, django_user_model
) -> None:
    user = django_user_model.objects.create_user(username=f"viewer-{uuid.uuid4().hex[:8]}", password=PASSWORD)
    prefix = f"web{uuid.uuid4().hex[:6]}"
    screenshot = os.environ.get("FLEET_SCREENSHOT")
    count = SCREENSHOT_DEVICES if screenshot else DEVICES
    usernames = [f"{prefix}-{number:04d}" for number in range(1, count + 1)]
    first, second = usernames[0], usernames[1]
    kind = topology.DEVICE_MESSAGE_KINDS[0]

    with evidence_on_failure(journey):
        sign_in(journey.driver, journey.stack.url, user.username, PASSWORD)
        journey.driver.execute_script("window.notReloaded = true;")

        simulator = journey.stack.simulate(
            *("--count", str(count), "--rate", str(count * 2), "--owner", user.username, "--prefix", prefix),
            *("--replies", "ok", "--reply-delay", "0.2"),
        )
        # New devices get their rows from their first events, without a reload.
        journey.wait(
            f"rows of {count} new devices",
            lambda: all(journey.css(row(username)) for username in usernames),
        )
        assert journey.text('[data-count="total"]') == str(count)

        journey.wait(
            "every badge to say online",
            lambda: all(journey.text(f"{row(u)} [data-field=state]") == "online" for u in usernames),
        )
        assert journey.text('[data-count="online"]') == str(count)
        assert journey.text('[data-count="offline"]') == "0"

        cell = f'{row(first)} [data-kind="{kind}"]'
        value = journey.wait(f"a {kind} value of {first}", lambda: journey.text(cell))
        journey.wait(f"the {kind} value of {first} to change", lambda: journey.text(cell) not in ("", value))
        assert journey.text(f"{row(first)} [data-field=last-seen]").endswith("s ago")
        assert journey.driver.execute_script("return window.notReloaded === true;")

        journey.driver.find_element(By.ID, "filter-name").send_keys(second)
        journey.wait(
            "the name filter",
            lambda: [r.get_attribute("data-device") for r in visible_rows(journey)] == [second],
        )
        journey.driver.find_element(By.ID, "filter-name").clear()
        journey.driver.execute_script(
            "document.getElementById('filter-name').dispatchEvent(new Event('input'));"
        )
        journey.wait("every row again", lambda: len(visible_rows(journey)) == count)

        if screenshot:
            target = PROJECT_ROOT / screenshot
            target.parent.mkdir(parents=True, exist_ok=True)
            journey.driver.save_screenshot(str(target))

        check_phone_width(journey)

        journey.driver.find_element(By.CSS_SELECTOR, f"{row(first)} a[data-field=link]").click()
        journey.wait("the device page", lambda: journey.driver.current_url.endswith(f"/fleet/{first}/"))
        journey.wait_live()
        journey.wait(
            f"{kind} messages arriving", lambda: len(journey.css(f'[data-messages="{kind}"] li')) >= 2
        )
        journey.wait("the chart", lambda: journey.css("#chart canvas"))

        send_command(journey)
        restart_server(journey, first)

        simulator.kill()  # no DISCONNECT, no goodbye: the broker publishes each device's Last Will
        journey.wait(
            "the badge to say offline", lambda: journey.text("#device [data-field=state]") == "offline"
        )
        journey.wait("the presence history", lambda: journey.text("#presence li .badge") == "offline")


def visible_rows(journey: Journey) -> list:
    return [element for element in journey.css("tr[data-device]") if element.is_displayed()]


def check_phone_width(journey: Journey) -> None:
    """At a phone's width nothing sticks out sideways: the table turns into one card per device."""
    size = journey.driver.get_window_size()
    journey.driver.set_window_size(*PHONE)
    try:
        journey.wait(
            "the page to fit a phone's width",
            lambda: journey.driver.execute_script(
                "return document.documentElement.scrollWidth <= window.innerWidth;"
            ),
            within=10.0,
        )
    finally:
        journey.driver.set_window_size(size["width"], size["height"])


def send_command(journey: Journey) -> None:
    driver = journey.driver
    driver.find_element(By.ID, "command-name").send_keys("reboot")
    params = driver.find_element(By.ID, "command-params")
    params.clear()
    params.send_keys(json.dumps({"delay": 1}))
    timeout = driver.find_element(By.ID, "command-timeout")
    timeout.clear()
    timeout.send_keys("30")
    driver.find_element(By.CSS_SELECTOR, "#command-form button[type=submit]").click()
    error = driver.find_element(By.ID, "command-error")
    journey.wait(
        "the command's row", lambda: journey.css("#commands tr[data-command]") or error.is_displayed()
    )
    assert not error.is_displayed(), f"the form says: {error.text}"
    journey.wait(
        "the command to reach succeeded",
        lambda: journey.text("#commands tr[data-command] [data-field=state]") == "succeeded",
    )
    assert "applied reboot" in journey.text("#commands tr[data-command] [data-field=outcome]")


def restart_server(journey: Journey, username: str) -> None:
    """The socket drops, the page says so, reconnects by itself and reads what it missed from the API."""
    journey.stack.server.stop()
    journey.wait("the page to notice", lambda: journey.text("#live-state").startswith("reconnecting"))
    Device.objects.filter(username=username).update(name="renamed while the server was down")
    journey.stack.launch_server().wait_ready()
    journey.wait_live()
    journey.wait(
        "the resynchronised name",
        lambda: journey.text("#device [data-field=name]") == "renamed while the server was down",
    )
