"""The inbox's pages through the real app (no broker): login, sessions, CSRF, rate limit, headers,
pages, acknowledge and its outbox. Never a client id in a log line."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from shared.contracts import topics
from shared.contracts.alerts import AlertAcknowledged
from shared.inbox.store import web_sessions
from tests.inbox_support import alert_event, directory, episode, synthetic_alert
from tests.unit.inbox.web import Web, login, make_web, token


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    w = make_web(tmp_path)
    scored, signals = episode(client="c-secret-77")
    crit = next(s for s in signals if s.data.kind == "critical_item")
    w.store.ingest([directory(), *scored, *signals, alert_event(crit)], {})
    w.add_user("alice", "clinic-01", "clin-01")
    w.add_user("bob", "clinic-01", "clin-02")
    yield w
    w.store.close()


def _alert_id(web: Web) -> str:
    (row,) = web.store.dump()["alerts"]
    return str(row[0])


def test_pages_need_a_session(web: Web) -> None:
    with web.client() as c:
        r = c.get("/alerts", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        r = c.get(f"/alerts/{_alert_id(web)}", follow_redirects=False)
        assert r.status_code == 303
        assert c.post(f"/alerts/{_alert_id(web)}/acknowledge", follow_redirects=False).status_code == 303
    assert web.publisher.sent == []


def test_login_sets_a_signed_httponly_samesite_cookie_and_shows_the_alert(web: Web) -> None:
    with web.client() as c:
        r = login(c, "alice")
        assert r.status_code == 303 and r.headers["location"] == "/alerts"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
        page = c.get("/alerts")
        assert page.status_code == 200 and "Critical item endorsed" in page.text
        assert f'href="/alerts/{_alert_id(web)}"' in page.text
        detail = c.get(f"/alerts/{_alert_id(web)}")
        assert detail.status_code == 200
        for text in ("<code>critical_item.", "version <code>", "Evidence", "Trajectory", 'class="chart"'):
            assert text in detail.text
    assert web.metric("rapport_inbox_logins_total", outcome="ok") == 1


def test_wrong_password_and_unknown_user_look_the_same(web: Web) -> None:
    with web.client() as c:
        wrong = login(c, "alice", "not the password at all")
        unknown = login(c, "mallory", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong username or password" in wrong.text and "Wrong username or password" in unknown.text


def test_login_is_rate_limited_per_username(tmp_path: Path) -> None:
    web = make_web(tmp_path, login_max_failures=3)
    web.store.ingest([directory()], {})
    web.add_user("alice", "clinic-01", "clin-01")
    with web.client() as c:
        for _ in range(3):
            assert login(c, "alice", "wrong password here").status_code == 401
        limited = login(c, "alice")
        assert limited.status_code == 429, "even the right password waits"
        assert int(limited.headers["retry-after"]) > 0
        assert login(c, "bob-other", "wrong password here").status_code == 401, "other usernames unaffected"
    assert web.metric("rapport_inbox_logins_total", outcome="rate_limited") == 1


def test_login_without_its_csrf_token_is_refused(web: Web) -> None:
    with web.client() as c:
        c.get("/login")
        r = c.post("/login", data={"username": "alice", "password": "correct horse battery staple"})
        assert r.status_code == 400
        assert c.get("/alerts", follow_redirects=False).status_code == 303, "no session was started"
    assert web.metric("rapport_inbox_csrf_rejected_total") == 1


def test_acknowledge_needs_the_sessions_csrf_token(web: Web) -> None:
    with web.client() as c:
        login(c, "alice")
        r = c.post(f"/alerts/{_alert_id(web)}/acknowledge", data={"csrf_token": "forged", "note": "x"})
        assert r.status_code == 403
    assert web.publisher.sent == [] and web.store.acknowledgement(_alert_id(web)) is None


def test_acknowledge_publishes_once_keeps_the_note_home_and_shows_who_and_when(web: Web) -> None:
    alert_id = _alert_id(web)
    note = "Called the client, safety plan reviewed <script>alert(1)</script>"
    with web.client() as c:
        login(c, "alice")
        page = c.get(f"/alerts/{alert_id}")
        r = c.post(f"/alerts/{alert_id}/acknowledge", data={"csrf_token": token(page.text), "note": note})
        assert r.status_code == 200 and "Acknowledged by" in r.text and "clin-01" in r.text
        assert "reviewed &lt;script&gt;" in r.text and "<script>" not in r.text, "notes are escaped"
        again = c.post(f"/alerts/{alert_id}/acknowledge", data={"csrf_token": token(page.text)})
        assert again.status_code == 200
        assert alert_id not in c.get("/alerts").text, "an acknowledged alert leaves the open list"
    (sent,) = web.publisher.sent
    topic, key, value = sent
    assert topic == topics.ALERT_ACKS and key == b"clinic-01|c-secret-77"
    event = AlertAcknowledged.model_validate_json(value)
    assert str(event.data.alert_id) == alert_id and event.data.acknowledged_by == "clin-01"
    assert b"safety plan" not in value, "the note never leaves the inbox"
    stored = web.store.acknowledgement(alert_id)
    assert stored is not None and stored.note == note and stored.published_at is not None


def test_an_unconfirmed_acknowledgement_is_kept_and_sent_by_the_outbox(web: Web) -> None:
    alert_id = _alert_id(web)
    web.publisher.fail = 1
    with web.client() as c:
        login(c, "alice")
        page = c.get(f"/alerts/{alert_id}")
        r = c.post(f"/alerts/{alert_id}/acknowledge", data={"csrf_token": token(page.text)})
        assert "Saved; telling the notifier" in r.text
        deadline = time.monotonic() + 10
        while not web.publisher.sent and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(web.publisher.sent) == 1
    stored = web.store.acknowledgement(alert_id)
    assert stored is not None and stored.published_at is not None
    assert web.metric("rapport_inbox_acknowledgements_total", outcome="pending") == 1
    assert web.metric("rapport_inbox_ack_publish_failures_total") == 1


def test_other_clinicians_alert_and_unknown_ids_are_the_same_404(web: Web) -> None:
    alert_id = _alert_id(web)
    with web.client() as c:
        login(c, "bob")
        assert alert_id not in c.get("/alerts").text
        denied = c.get(f"/alerts/{alert_id}")
        unknown = c.get("/alerts/00000000-0000-4000-8000-000000000000")
        garbage = c.get("/alerts/not-a-uuid")
        assert denied.status_code == unknown.status_code == garbage.status_code == 404
        assert denied.text == unknown.text
        ack = c.post(f"/alerts/{alert_id}/acknowledge", data={"csrf_token": token(denied.text)})
        assert ack.status_code == 404
    assert web.publisher.sent == []
    assert web.metric("rapport_inbox_access_denied_total", action="read", reason="not_permitted") == 1
    assert web.metric("rapport_inbox_access_denied_total", action="read", reason="unknown") == 2
    assert web.metric("rapport_inbox_access_denied_total", action="acknowledge", reason="not_permitted") == 1


def test_security_headers_on_every_response(web: Web) -> None:
    with web.client() as c:
        for path in ("/login", "/healthz", "/static/inbox.css", "/alerts"):
            r = c.get(path, follow_redirects=False)
            csp = r.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "script-src" not in csp and "unsafe-inline" not in csp
            assert "default-src 'none'" in csp
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["x-frame-options"] == "DENY"
            assert "strict-transport-security" not in r.headers, "no HSTS over plain HTTP"
        assert c.get("/alerts", follow_redirects=False).headers["cache-control"] == "no-store"


def test_behind_tls_cookies_are_secure_host_cookies_and_hsts_is_sent(tmp_path: Path) -> None:
    web = make_web(tmp_path, behind_tls=True)
    web.store.ingest([directory()], {})
    web.add_user("alice", "clinic-01", "clin-01")
    with web.client() as c:
        c.base_url = "https://inbox.test"  # type: ignore[assignment]
        assert "max-age=" in c.get("/login").headers["strict-transport-security"]
        r = login(c, "alice")
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("__Host-rapport_inbox_session=") and "Secure" in cookie


def test_an_idle_session_times_out(web: Web) -> None:
    with web.client() as c:
        login(c, "alice")
        assert c.get("/alerts").status_code == 200
        with web.store.engine.begin() as conn:
            conn.execute(
                update(web_sessions).values(
                    last_seen_at=time.time() - web.settings.session_idle_timeout_s - 5
                )
            )
        r = c.get("/alerts", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_logout_and_disabling_end_the_session(web: Web) -> None:
    from shared.contracts.events import utc_now
    from shared.inbox.accounts import disable_user

    with web.client() as c:
        login(c, "alice")
        page = c.get("/alerts")
        c.post("/logout", data={"csrf_token": token(page.text)})
        assert c.get("/alerts", follow_redirects=False).status_code == 303
        login(c, "alice")
        assert c.get("/alerts").status_code == 200
        disable_user(web.store, "alice", utc_now())
        assert c.get("/alerts", follow_redirects=False).status_code == 303
        assert login(c, "alice").status_code == 401, "a disabled account cannot log in"


def test_no_client_data_in_logs_or_urls(web: Web, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    web.publisher.fail = 1
    with web.client() as c:
        login(c, "alice")
        page = c.get("/alerts")
        links = [part.split('"')[0] for part in page.text.split('href="')[1:]]
        assert links and not any("c-secret-77" in link for link in links)
        detail = c.get(f"/alerts/{_alert_id(web)}")
        c.post(f"/alerts/{_alert_id(web)}/acknowledge", data={"csrf_token": token(detail.text), "note": "n"})
    text = "\n".join(
        r.getMessage() + json.dumps({k: str(v) for k, v in vars(r).items()}) for r in caplog.records
    )
    assert "c-secret-77" not in text and "alice" not in text


def test_openapi_is_published(web: Web) -> None:
    with web.client() as c:
        spec = c.get("/openapi.json").json()
    assert "/alerts/{alert_id}/acknowledge" in spec["paths"] and "/readyz" in spec["paths"]


def test_list_for_a_supervisor_includes_the_team(web: Web) -> None:
    own = _alert_id(web)
    events = synthetic_alert(clinic="clinic-01", clinician="clin-02", severity="high", n=9)
    web.store.ingest(events, {})
    web.add_user("sue", "clinic-01", "sup-01")
    with web.client() as c:
        login(c, "sue")
        text = c.get("/alerts").text
    assert own in text and str(events[0].data.alert_id) in text
