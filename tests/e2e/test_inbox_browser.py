"""The inbox in a real browser (Debian's headless Chromium driven by Selenium) on the real broker:
log in, see the alert, its chart with one point per scored session, acknowledge → an
``AlertAcknowledged`` on the broker. Screenshots go to ``$RAPPORT_INBOX_SCREENSHOTS`` (the README's
come from ``docs/img/``) or the test's temporary folder.

The test produces the ``AlertEvent``s itself (many, for the screenshots); the whole chain through the
notifier is ``tests/e2e/test_alert_chain.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from shared.contracts import topics
from shared.contracts.alerts import AlertAcknowledged
from shared.inbox.store import InboxStore
from tests.inbox_support import alert_event, directory, episode
from tests.support import consume, produce, running_service, t

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"  # noqa: S105 - the test account's password
CHEAP = {"argon2_time_cost": "1", "argon2_memory_kib": "8", "argon2_parallelism": "1"}
SECRET = "x" * 48


def _screenshot(driver: Any, folder: Path, name: str, width: int) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(max(int(height) + 120, 600), 4000))
    driver.save_screenshot(str(folder / name))


def _wait_for(check: Any, what: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_log_in_read_the_alert_and_acknowledge_in_a_browser(
    kafka_bootstrap: str, ns: str, tmp_path: Path, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    shots = Path(os.environ.get("RAPPORT_INBOX_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    # A client whose depression score worsens until item 9 is endorsed at session 5, and another
    # whose alliance ratings fall: real scores and signals from the scoring and monitor handlers.
    scored, signals = episode(
        client="c-1042", phq9_totals=(11, 12, 14, 17, 20), srs_totals=(38, 37, 36, 34, 31), critical_at=5
    )
    scored2, signals2 = episode(
        client="c-2077", phq9_totals=(9, 9, 8, 9), srs_totals=(39, 38, 31, 30), critical_at=None
    )
    critical = next(s for s in signals if s.data.kind == "critical_item")
    alerts = [alert_event(critical)] + [alert_event(s) for s in signals + signals2 if s.id != critical.id]
    d = directory()
    produce(kafka_bootstrap, t(ns, topics.DIRECTORY), [(b"clinic-01", d.model_dump_json().encode())])
    produce(
        kafka_bootstrap,
        t(ns, topics.SURVEY_SCORED),
        [(f"clinic-01|{s.data.client_id}".encode(), s.model_dump_json().encode()) for s in scored + scored2],
    )
    produce(
        kafka_bootstrap,
        t(ns, topics.SIGNALS),
        [
            (f"clinic-01|{s.data.client_id}".encode(), s.model_dump_json().encode())
            for s in signals + signals2
        ],
    )
    produce(
        kafka_bootstrap,
        t(ns, topics.ALERTS),
        [(str(a.data.alert_id).encode(), a.model_dump_json().encode()) for a in alerts],
    )

    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    env = {**os.environ, **{f"RAPPORT_INBOX_{k.upper()}": v for k, v in CHEAP.items()}}
    added = subprocess.run(
        [
            sys.executable,
            "-m",
            "shared.cli",
            "inbox",
            "--database-url",
            url,
            "users",
            "add",
            "alice",
            "--clinic",
            "clinic-01",
            "--person",
            "clin-01",
            "--password-stdin",
        ],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stderr

    alert_id = str(alerts[0].data.alert_id)
    with running_service(
        "services.inbox",
        "RAPPORT_INBOX_",
        kafka_bootstrap,
        ns,
        tmp_path,
        database_url=url,
        secret_key=SECRET,
        **CHEAP,
    ) as inbox:
        store = InboxStore.open(url)
        try:
            _wait_for(
                lambda: len(store.dump()["alerts"]) == len(alerts) and store.signal(str(critical.id)),
                "the alerts in the inbox database",
            )
        finally:
            store.close()
        base = f"http://127.0.0.1:{inbox.port}"
        wait = WebDriverWait(browser, 30)

        browser.get(f"{base}/alerts")
        wait.until(ec.presence_of_element_located((By.ID, "username")))
        assert "/login" in browser.current_url, "pages need a session"
        browser.find_element(By.ID, "username").send_keys("alice")
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "ol.alerts")))
        items = browser.find_elements(By.CSS_SELECTOR, "ol.alerts li.alert")
        assert len(items) == len(alerts)
        assert "sev-critical" in items[0].get_attribute("class"), "most severe first"
        _screenshot(browser, shots, "inbox-list.png", 1280)

        browser.find_element(By.CSS_SELECTOR, f'a[href="/alerts/{alert_id}"]').click()
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "svg.chart")))
        assert "/alerts/" + alert_id == browser.current_url.removeprefix(base)
        phq9 = browser.find_element(By.CSS_SELECTOR, 'svg.chart[data-instrument="PHQ-9"]')
        phq9_sessions = sorted({s.data.session_number for s in scored if s.data.instrument == "PHQ-9"})
        assert len(phq9.find_elements(By.CSS_SELECTOR, "circle.point")) == len(phq9_sessions) == 5
        assert len(phq9.find_elements(By.CSS_SELECTOR, "circle.point.flagged")) >= 1
        assert phq9.find_elements(By.CSS_SELECTOR, "line.cutoff") and phq9.find_elements(
            By.CSS_SELECTOR, "rect.band"
        )
        srs = browser.find_element(By.CSS_SELECTOR, 'svg.chart[data-instrument="SRS"]')
        assert len(srs.find_elements(By.CSS_SELECTOR, "circle.point")) == 5
        assert "critical_item" in browser.page_source and "Evidence" in browser.page_source
        labelled = browser.find_element(By.CSS_SELECTOR, 'label[for="note"]')
        assert labelled.text.startswith("Note"), "form fields have labels"
        _screenshot(browser, shots, "inbox-alert.png", 1280)
        _screenshot(browser, shots, "inbox-alert-phone.png", 390)
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, "no sideways scrolling on a phone-sized screen"
        browser.set_window_size(1280, 900)

        # By keyboard only: type the note, Tab to the button, Enter.
        note = browser.find_element(By.ID, "note")
        note.send_keys("Phoned the client; safety plan reviewed")
        note.send_keys(Keys.TAB)
        focused = browser.switch_to.active_element
        assert focused.get_attribute("id") == "acknowledge"
        focused.send_keys(Keys.ENTER)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "p.acknowledged")))
        status = browser.find_element(By.CSS_SELECTOR, "p.acknowledged").text
        assert "Acknowledged by clin-01 (alice)" in status

    (record,) = consume(kafka_bootstrap, t(ns, topics.ALERT_ACKS), expected=1)
    ack = AlertAcknowledged.model_validate_json(record.value)
    assert (
        str(ack.data.alert_id) == alert_id
        and ack.data.acknowledged_by == "clin-01"
        and ack.data.via == "inbox"
    )
    assert record.key == b"clinic-01|c-1042"
    assert b"safety plan" not in record.value, "the note stays in the inbox"
