"""Wiring of the inbox: the FastAPI app (pages, login, acknowledge, /metrics, /healthz, /readyz),
the topic consumer and the acknowledgement outbox, all in one process and one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, Form, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import CollectorRegistry

from services.inbox import handlers
from services.inbox.chart import chart_data, render_chart
from services.inbox.consumer import ConsumerLagCollector, KafkaPublisher, TopicConsumer
from services.inbox.metrics import InboxMetrics
from services.inbox.security import Authenticated, LoginLimiter, Sessions, csrf_valid, security_headers
from services.inbox.settings import InboxSettings
from shared.contracts import topics
from shared.contracts.events import utc_now
from shared.inbox.accounts import Authenticator, HashParameters, password_hasher
from shared.inbox.projection import AlertSummary, iso, parse_iso
from shared.inbox.store import Acknowledgement, InboxStore, ScorePoint, SignalView
from shared.inbox.tenancy import Scope, Viewer, scope_for
from shared.runtime.health import render_metrics

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
MAX_NOTE = 1000


class Publisher(Protocol):
    """Where acknowledgements and dead letters go (the broker; a fake in web-only tests)."""

    async def publish(self, topic: str, key: bytes | None, value: bytes) -> None: ...


class LoginRequired(Exception):
    """Raised by the session dependency; answered with a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__("login required")
        self.next_path = next_path


@dataclass
class Inbox:
    """Everything the routes share."""

    settings: InboxSettings
    store: InboxStore
    publisher: Publisher
    metrics: InboxMetrics
    sessions: Sessions
    authenticator: Authenticator
    user_limiter: LoginLimiter
    address_limiter: LoginLimiter
    consumer: TopicConsumer | None
    templates: Jinja2Templates
    publishing: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while an acknowledgement is published, so a click and the outbox never both send one."""


def _safe_next(path: str | None) -> str:
    # Only our own alert pages: never an open redirect.
    if path and path.startswith("/alerts") and "//" not in path and "\\" not in path:
        return path
    return "/alerts"


def _tz(directory_tz: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(directory_tz or "UTC")
    except Exception:  # a zone the directory validated should exist; fall back, never fail a page
        return ZoneInfo("UTC")


def local_time(text: str | None, tz: ZoneInfo) -> str:
    """An ISO time from the database as the clinic reads it."""
    if not text:
        return ""
    return parse_iso(text).astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def age(text: str, now: datetime) -> str:
    """How long ago ``text`` was, in words."""
    seconds = max(0, int((now - parse_iso(text)).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h ago"
    if hours:
        return f"{hours} h {minutes} min ago"
    return f"{minutes} min ago" if minutes else "just now"


def build_charts(
    points: list[ScorePoint], episode_signals: list[SignalView], alert: AlertSummary
) -> list[dict[str, Any]]:
    """One chart per instrument of the episode: the alert's own instrument first, then outcome
    measures, then alliance measures."""
    flagged: dict[str, set[int]] = {}
    for s in episode_signals:
        flagged.setdefault(s.instrument, set()).add(s.session_number)
    by_instrument: dict[str, list[ScorePoint]] = {}
    for p in points:
        by_instrument.setdefault(p.instrument, []).append(p)
    order = sorted(
        by_instrument,
        key=lambda i: (i != alert.instrument, by_instrument[i][0].domain != "outcome", i),
    )
    charts = []
    for n, instrument in enumerate(order):
        series = by_instrument[instrument]
        scored = [(p.session_number, p.total) for p in series if p.total is not None]
        latest_scale = max(series, key=lambda p: (p.time, p.session_number)).scale
        data = chart_data(
            instrument,
            series[0].domain,
            scored,
            latest_scale,
            frozenset(flagged.get(instrument, set())),
            alert.session_number if instrument == alert.instrument else None,
        )
        charts.append({"data": data, "svg": render_chart(data, f"chart-{n}"), "points": series})
    return charts


def create_app(
    settings: InboxSettings,
    registry: CollectorRegistry | None = None,
    *,
    store: InboxStore | None = None,
    publisher: Publisher | None = None,
) -> FastAPI:
    """Build the inbox app. ``store`` and ``publisher`` default to the configured database and the
    broker; tests of the web layer pass their own."""
    registry = registry or CollectorRegistry()
    metrics = InboxMetrics.create(registry)
    own_store = store is None
    store = store or InboxStore.open(settings.database_url)
    kafka = KafkaPublisher(settings) if publisher is None else None
    out: Publisher = publisher if publisher is not None else kafka  # type: ignore[assignment]
    if settings.secret_key is not None:
        secret = settings.secret_key.get_secret_value()
        if len(secret) < 32:
            raise ValueError("RAPPORT_INBOX_SECRET_KEY must have at least 32 characters")
    else:
        log.warning("no secret key configured: sessions end when the inbox restarts")
        secret = secrets.token_urlsafe(48)
    hasher = password_hasher(
        HashParameters(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism)
    )
    consumer = TopicConsumer(settings, store, out, metrics) if settings.consume else None
    if consumer is not None:
        registry.register(ConsumerLagCollector(consumer))
    inbox = Inbox(
        settings=settings,
        store=store,
        publisher=out,
        metrics=metrics,
        sessions=Sessions(
            store,
            secret,
            idle_timeout_s=settings.session_idle_timeout_s,
            max_age_s=settings.session_max_age_s,
            behind_tls=settings.behind_tls,
        ),
        authenticator=Authenticator(store, hasher),
        user_limiter=LoginLimiter(settings.login_max_failures, settings.login_window_s),
        address_limiter=LoginLimiter(settings.login_max_failures_per_address, settings.login_window_s),
        consumer=consumer,
        templates=Jinja2Templates(directory=str(HERE / "templates")),
    )
    inbox.templates.env.filters["kind_label"] = handlers.kind_label

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        if kafka is not None:
            await kafka.start()
        tasks = [asyncio.create_task(_housekeeping(inbox, stop), name="housekeeping")]
        if consumer is not None:
            tasks.append(asyncio.create_task(_supervise(consumer, stop), name="consumer"))
        try:
            yield
        finally:
            stop.set()
            await asyncio.wait(tasks, timeout=30)
            for task in tasks:
                task.cancel()
            if kafka is not None:
                await kafka.stop()
            if own_store:
                store.close()

    app = FastAPI(
        title="Rapport clinician inbox",
        version="1",
        description=(
            "Server-rendered pages: open alerts, each alert's evidence and trajectory chart, "
            "acknowledge. Every page needs a session (POST /login); every form a CSRF token."
        ),
        docs_url=None,  # Swagger UI needs inline script, which the inbox's CSP forbids
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.inbox = inbox
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    headers = security_headers(settings.behind_tls)

    @app.middleware("http")
    async def secure_and_time(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        route = request.scope.get("route")
        label = getattr(route, "path", "unmatched")
        metrics.request_seconds.labels(label).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={_safe_next(exc.next_path)}", status_code=303)

    def authenticated(request: Request) -> Authenticated:
        found = inbox.sessions.read(request.cookies.get(inbox.sessions.cookie_name))
        if found is None:
            raise LoginRequired(request.url.path if request.method == "GET" else "/alerts")
        return found

    def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
        return inbox.templates.TemplateResponse(request, name, context, status_code=status)

    def viewer_context(auth: Authenticated) -> dict[str, Any]:
        return {
            "user": auth.user,
            "csrf_token": auth.session.csrf_token,
        }

    def not_found(request: Request, auth: Authenticated, action: str, reason: str) -> HTMLResponse:
        metrics.access_denied.labels(action, reason).inc()
        return page(request, "not_found.html", viewer_context(auth), status=404)

    def scope_of(auth: Authenticated) -> tuple[Scope | None, str]:
        directory = store.directory(auth.user.clinic_id)
        scope = scope_for(Viewer(auth.user.clinic_id, auth.user.person_id), directory)
        return scope, directory.timezone if directory else "UTC"

    def visible_alert(alert_id: str, auth: Authenticated) -> tuple[AlertSummary | None, str, str]:
        """(alert, reason when None, clinic time zone)."""
        scope, tz = scope_of(auth)
        alert = store.alert(alert_id) if _is_uuid(alert_id) else None
        if alert is None:
            return None, "unknown", tz
        if scope is None or not scope.permits(alert):
            return None, "not_permitted", tz
        return alert, "", tz

    # ------------------------------------------------------------------ operations

    @app.get("/healthz", include_in_schema=True, tags=["operations"])
    async def healthz() -> JSONResponse:
        """The event loop answers."""
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        """The database answers and the consumer has joined its group and writes."""
        db = await asyncio.to_thread(store.ping)
        consuming = consumer is None or (consumer.assigned and consumer.healthy)
        ready = db and consuming
        return JSONResponse(
            {"status": "ready" if ready else "starting", "database": db, "consumer": consuming},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def metrics_view() -> Response:
        """Prometheus metrics."""
        body, content_type = render_metrics(registry)
        return Response(body, headers={"Content-Type": content_type})

    # ------------------------------------------------------------------ login

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/alerts", status_code=303)

    def login_page(
        request: Request, status: int = 200, error: str | None = None, next_path: str = ""
    ) -> Response:
        token, cookie = inbox.sessions.new_login_token()
        response = page(
            request,
            "login.html",
            {"login_token": token, "error": error, "next": _safe_next(next_path)},
            status=status,
        )
        response.set_cookie(inbox.sessions.login_cookie_name, cookie, **inbox.sessions.cookie_options(3600))  # type: ignore[arg-type]
        return response

    @app.get("/login", response_class=HTMLResponse, tags=["pages"])
    def login_form(request: Request, next: str = "/alerts") -> Response:
        """The login form."""
        if inbox.sessions.read(request.cookies.get(inbox.sessions.cookie_name)) is not None:
            return RedirectResponse(_safe_next(next), status_code=303)
        return login_page(request, next_path=next)

    @app.post("/login", response_class=HTMLResponse, tags=["pages"])
    async def login(
        request: Request,
        username: str = Form(..., max_length=320),
        password: str = Form(..., max_length=1024),
        csrf_token: str = Form("", max_length=128),
        next: str = Form("/alerts", max_length=512),
    ) -> Response:
        """Check a username and password; on success start a session (new token, fresh cookie)."""
        if not inbox.sessions.login_token_valid(
            csrf_token, request.cookies.get(inbox.sessions.login_cookie_name)
        ):
            metrics.logins.labels("csrf").inc()
            metrics.csrf_rejected.inc()
            return login_page(request, 400, "The form expired. Please sign in again.", next)
        user_key = f"u:{username.strip().lower()}"
        address_key = f"a:{request.client.host if request.client else 'unknown'}"
        wait = max(inbox.user_limiter.retry_after(user_key), inbox.address_limiter.retry_after(address_key))
        if wait > 0:
            metrics.logins.labels("rate_limited").inc()
            response = login_page(request, 429, "Too many failed sign-ins. Please wait and try again.", next)
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        user = await asyncio.to_thread(inbox.authenticator.authenticate, username, password)
        if user is None:
            inbox.user_limiter.failed(user_key)
            inbox.address_limiter.failed(address_key)
            metrics.logins.labels("failed").inc()
            return login_page(request, 401, "Wrong username or password.", next)
        inbox.user_limiter.succeeded(user_key)
        cookie, _ = await asyncio.to_thread(inbox.sessions.start, user)
        metrics.logins.labels("ok").inc()
        response = RedirectResponse(_safe_next(next), status_code=303)
        response.set_cookie(
            inbox.sessions.cookie_name,
            cookie,
            **inbox.sessions.cookie_options(int(settings.session_max_age_s)),  # type: ignore[arg-type]
        )
        response.delete_cookie(inbox.sessions.login_cookie_name, path="/")
        return response

    @app.post("/logout", tags=["pages"])
    def logout(
        request: Request,
        auth: Authenticated = Depends(authenticated),  # noqa: B008 - FastAPI's dependency idiom
        csrf_token: str = Form("", max_length=128),
    ) -> Response:
        """End the session."""
        if not csrf_valid(auth.session, csrf_token):
            metrics.csrf_rejected.inc()
            return page(request, "forbidden.html", viewer_context(auth), status=403)
        inbox.sessions.end(request.cookies.get(inbox.sessions.cookie_name))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(inbox.sessions.cookie_name, path="/")
        return response

    # ------------------------------------------------------------------ pages

    @app.get("/alerts", response_class=HTMLResponse, tags=["pages"])
    def alert_list(
        request: Request,
        auth: Authenticated = Depends(authenticated),  # noqa: B008
    ) -> Response:
        """Open alerts the viewer may see: most severe first, then oldest."""
        scope, tz_name = scope_of(auth)
        found = store.alerts_in_scope(scope) if scope is not None else []
        acked = store.acknowledged_ids(a.alert_id for a in found)
        open_alerts = [a for a in found if a.alert_id not in acked]
        now = utc_now()
        tz = _tz(tz_name)
        rows = [
            {"alert": a, "raised": local_time(a.raised_at, tz), "age": age(a.raised_at, now)}
            for a in open_alerts
        ]
        context = viewer_context(auth) | {"rows": rows, "in_directory": scope is not None}
        return page(request, "alerts.html", context)

    @app.get("/alerts/{alert_id}", response_class=HTMLResponse, tags=["pages"])
    def alert_page(
        request: Request,
        alert_id: str,
        auth: Authenticated = Depends(authenticated),  # noqa: B008
    ) -> Response:
        """One alert: explanation, rule and version, evidence, trajectory charts, history, acknowledge.
        An alert that does not exist and one the viewer may not see both answer 404."""
        alert, reason, tz_name = visible_alert(alert_id, auth)
        if alert is None:
            return not_found(request, auth, "read", reason)
        tz = _tz(tz_name)
        signal = store.signal(alert.signal_id)
        points = store.episode_scores(alert.clinic_id, alert.client_id, alert.episode_id)
        episode_signals = store.episode_signals(alert.clinic_id, alert.client_id, alert.episode_id)
        ack = store.acknowledgement(alert.alert_id)
        history = store.alert_history(alert.alert_id)
        context = viewer_context(auth) | {
            "alert": alert,
            "signal": signal,
            "charts": build_charts(points, episode_signals, alert),
            "ack": ack,
            "history": [(h, local_time(h.time, tz)) for h in history],
            "raised": local_time(alert.raised_at, tz),
            "ack_time": local_time(ack.acknowledged_at, tz) if ack else "",
            "notifier_ack_time": local_time(alert.acknowledged_at, tz),
            "max_note": MAX_NOTE,
        }
        return page(request, "alert.html", context)

    @app.post("/alerts/{alert_id}/acknowledge", tags=["pages"])
    async def acknowledge(
        request: Request,
        alert_id: str,
        auth: Authenticated = Depends(authenticated),  # noqa: B008
        csrf_token: str = Form("", max_length=128),
        note: str = Form("", max_length=MAX_NOTE),
    ) -> Response:
        """Acknowledge an alert ("seen"), with an optional note kept only in the inbox's database;
        publishes ``AlertAcknowledged`` to ``rapport.alert-acks.v1``."""
        if not csrf_valid(auth.session, csrf_token):
            metrics.csrf_rejected.inc()
            return page(request, "forbidden.html", viewer_context(auth), status=403)
        alert, reason, _ = await asyncio.to_thread(visible_alert, alert_id, auth)
        if alert is None:
            return not_found(request, auth, "acknowledge", reason)
        target = RedirectResponse(f"/alerts/{alert.alert_id}", status_code=303)
        if alert.status != "open":
            metrics.acknowledgements.labels("already").inc()
            return target
        ack = Acknowledgement(
            alert_id=alert.alert_id,
            event_id=handlers.ack_event_id(alert.alert_id),
            clinic_id=alert.clinic_id,
            person_id=auth.user.person_id,
            username=auth.user.username,
            acknowledged_at=iso(utc_now()),
            note=note.strip() or None,
            published_at=None,
        )
        stored = await asyncio.to_thread(store.acknowledge, ack)
        if stored.published_at is not None:
            metrics.acknowledgements.labels("already").inc()
            return target
        published = await _publish_ack(inbox, stored, alert)
        metrics.acknowledgements.labels("published" if published else "pending").inc()
        return target

    return app


def _is_uuid(text: str) -> bool:
    import uuid

    try:
        return str(uuid.UUID(text)) == text.lower() and len(text) == 36
    except ValueError:
        return False


async def _publish_ack(inbox: Inbox, ack: Acknowledgement, alert: AlertSummary) -> bool:
    """Publish one stored acknowledgement and mark it published; False (kept for the outbox) when
    the broker does not confirm it."""
    async with inbox.publishing:
        current = await asyncio.to_thread(inbox.store.acknowledgement, ack.alert_id)
        if current is not None and current.published_at is not None:
            return True  # the other path sent it meanwhile
        return await _send_ack(inbox, ack, alert)


async def _send_ack(inbox: Inbox, ack: Acknowledgement, alert: AlertSummary) -> bool:
    event = handlers.build_acknowledgement(
        alert,
        event_id=ack.event_id,
        person_id=ack.person_id,
        acknowledged_at=parse_iso(ack.acknowledged_at),
    )
    try:
        await inbox.publisher.publish(
            topics.ALERT_ACKS,
            handlers.ack_key(alert.clinic_id, alert.client_id),
            event.model_dump_json().encode(),
        )
    except Exception as exc:  # kept in the outbox and sent again
        inbox.metrics.ack_publish_failures.inc()
        log.warning("acknowledgement not confirmed by the broker", extra={"error_type": type(exc).__name__})
        return False
    await asyncio.to_thread(inbox.store.mark_published, ack.alert_id, iso(datetime.now(UTC)))
    return True


async def _housekeeping(inbox: Inbox, stop: asyncio.Event) -> None:
    """Send acknowledgements the broker has not confirmed yet; purge timed-out sessions."""
    while not stop.is_set():
        try:
            pending = await asyncio.to_thread(inbox.store.unpublished_acknowledgements)
            inbox.metrics.acks_unpublished.set(len(pending))
            for ack in pending:
                alert = await asyncio.to_thread(inbox.store.alert, ack.alert_id)
                if alert is not None and await _publish_ack(inbox, ack, alert):
                    inbox.metrics.acks_unpublished.dec()
            await asyncio.to_thread(inbox.sessions.purge_expired)
        except Exception as exc:  # the database may be down for a moment; try again next round
            log.warning("housekeeping failed", extra={"error_type": type(exc).__name__})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), inbox.settings.outbox_interval_s)


async def _supervise(consumer: TopicConsumer, stop: asyncio.Event) -> None:
    """Run the consumer; if it fails (broker unreachable), report not ready and start it again."""
    delay = 1.0
    while not stop.is_set():
        try:
            await consumer.run(stop)
        except Exception as exc:
            consumer.healthy = False
            log.error("consumer stopped; restarting", extra={"error_type": type(exc).__name__})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 30.0)
