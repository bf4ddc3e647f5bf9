"""Sessions, CSRF tokens, login rate limits and security headers of the inbox.

* A session is a random token: the browser holds it signed (itsdangerous) in an HttpOnly, SameSite
  cookie (``Secure`` and ``__Host-`` behind TLS); the database holds only its SHA-256, the account
  and the session's CSRF token. Sessions end after ``session_idle_timeout_s`` without a request and
  ``session_max_age_s`` after login, on logout, and when the account is disabled.
* Every form carries a CSRF token: the session's (synchronizer token), or before login a signed
  token that must match a cookie (double submit), so a login cannot be forced either.
* Failed logins are limited per username and per client address within a sliding window.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner

from shared.inbox.store import InboxStore, User, WebSession

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def security_headers(behind_tls: bool) -> dict[str, str]:
    """Headers every response carries."""
    headers = {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    }
    if behind_tls:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    return headers


def token_hash(token: str) -> str:
    """What the database stores of a session token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Authenticated:
    """A request's valid session and its account."""

    session: WebSession
    user: User


class Sessions:
    """Creates, reads and ends browser sessions."""

    def __init__(
        self,
        store: InboxStore,
        secret: str,
        *,
        idle_timeout_s: float,
        max_age_s: float,
        behind_tls: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._session_signer = TimestampSigner(secret, salt="rapport-inbox-session")
        self._login_signer = TimestampSigner(secret, salt="rapport-inbox-login-csrf")
        self.idle_timeout_s = idle_timeout_s
        self.max_age_s = max_age_s
        self.secure = behind_tls
        prefix = "__Host-" if behind_tls else ""
        self.cookie_name = f"{prefix}rapport_inbox_session"
        self.login_cookie_name = f"{prefix}rapport_inbox_login"
        self._clock = clock

    def cookie_options(self, max_age: int) -> dict[str, object]:
        """Attributes of both cookies."""
        return {"httponly": True, "samesite": "lax", "secure": self.secure, "path": "/", "max_age": max_age}

    def start(self, user: User) -> tuple[str, WebSession]:
        """A new session for ``user``: (cookie value, stored session)."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        session = WebSession(
            token_hash=token_hash(token),
            username=user.username,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
        )
        self._store.create_session(session)
        return self._session_signer.sign(token).decode(), session

    def read(self, cookie: str | None) -> Authenticated | None:
        """The session a cookie names, if it is valid, not timed out, and its account enabled;
        a timed-out or orphaned session is deleted."""
        if not cookie:
            return None
        try:
            token = self._session_signer.unsign(cookie, max_age=int(self.max_age_s)).decode()
        except (BadSignature, SignatureExpired):
            return None
        hashed = token_hash(token)
        session = self._store.session(hashed)
        if session is None:
            return None
        now = self._clock()
        expired = (
            now - session.last_seen_at > self.idle_timeout_s or now - session.created_at > self.max_age_s
        )
        user = None if expired else self._store.user(session.username)
        if user is None or user.disabled:
            self._store.delete_session(hashed)
            return None
        if now - session.last_seen_at > 10:  # fewer writes; the idle timeout is minutes
            self._store.touch_session(hashed, now)
        return Authenticated(session, user)

    def end(self, cookie: str | None) -> None:
        """Log out: delete the session a cookie names."""
        if not cookie:
            return
        try:
            token = self._session_signer.unsign(cookie).decode()
        except BadSignature:
            return
        self._store.delete_session(token_hash(token))

    def purge_expired(self) -> int:
        """Delete every timed-out session."""
        now = self._clock()
        return self._store.delete_expired_sessions(now - self.idle_timeout_s, now - self.max_age_s)

    # -------------------------------------------------------------- login-form CSRF (double submit)

    def new_login_token(self) -> tuple[str, str]:
        """(form token, cookie value) for the login form."""
        token = secrets.token_urlsafe(32)
        return token, self._login_signer.sign(token).decode()

    def login_token_valid(self, form_token: str | None, cookie: str | None) -> bool:
        """Whether the login form's token matches its signed, fresh cookie."""
        if not form_token or not cookie:
            return False
        try:
            expected = self._login_signer.unsign(cookie, max_age=3600).decode()
        except (BadSignature, SignatureExpired):
            return False
        return hmac.compare_digest(expected, form_token)


def csrf_valid(session: WebSession, form_token: str | None) -> bool:
    """Whether a form's token is the session's."""
    return bool(form_token) and hmac.compare_digest(session.csrf_token, form_token or "")


class LoginLimiter:
    """Sliding-window count of failed logins per key (a username, an address).

    In memory, per process: behind several replicas, the limit applies per replica. The number of
    keys kept is bounded, so a flood of made-up usernames cannot exhaust memory.
    """

    def __init__(
        self,
        max_failures: int,
        window_s: float,
        *,
        max_keys: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str) -> deque[float] | None:
        found = self._failures.get(key)
        if found is None:
            return None
        horizon = self._clock() - self.window_s
        while found and found[0] <= horizon:
            found.popleft()
        if not found:
            del self._failures[key]
            return None
        return found

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again; 0 when it may now."""
        found = self._recent(key)
        if found is None or len(found) < self.max_failures:
            return 0.0
        return max(1.0, found[0] + self.window_s - self._clock())

    def failed(self, key: str) -> None:
        """Count one failed attempt of ``key``."""
        found = self._recent(key)
        if found is None:
            found = self._failures[key] = deque()
        found.append(self._clock())
        self._failures.move_to_end(key)
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        """Forget ``key``'s failures."""
        self._failures.pop(key, None)
