"""Wiring of the gateway: FastAPI routes, API keys, rate limit, body limits, intake, scores read model.

Routes (OpenAPI at ``/openapi.json``, rendered at ``/docs`` and ``/redoc``):

* ``POST /v1/sessions`` — a ``SessionCompleted`` event (JSON);
* ``POST /fhir/QuestionnaireResponse`` — one FHIR R4 response;
* ``POST /fhir`` — a FHIR transaction ``Bundle`` of responses;
* ``GET /fhir/Observation?subject=…&encounter=…`` — the calling clinic's scores as Observations;
* ``/metrics``, ``/healthz``, ``/readyz``.

Checks run in this order: key (401), rate limit (429), content type (415), size (413), content
(422), clinic (403); then the events are produced and 202 is answered only after the broker
acknowledged every one of them (else 503 with ``Retry-After``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.gateway import handlers
from services.gateway.intake import Conflict, Intake, Prepared, Unavailable
from services.gateway.metrics import GatewayMetrics
from services.gateway.scores import ScoresFollower
from services.gateway.settings import GatewaySettings
from services.gateway.store import GatewayStore
from shared.contracts import topics
from shared.contracts.events import SessionCompleted, utc_now
from shared.fhir import intake as fhir_intake
from shared.fhir.observations import observation, search_bundle
from shared.fhir.problems import FhirRejected, IssueCode, Problem, operation_outcome
from shared.instruments import load_registry
from shared.runtime.apikeys import ApiKeyStore, Principal, connect
from shared.runtime.http import add_health_routes
from shared.runtime.producer import AsyncProducer

log = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
_FHIR_CODES: dict[int, IssueCode] = {
    400: "invalid",
    401: "security",
    403: "forbidden",
    404: "not-supported",
    405: "not-supported",
    413: "too-costly",
    415: "not-supported",
    422: "invalid",
    429: "throttled",
    503: "transient",
}
_NOT_COUNTED = frozenset({"/metrics", "/healthz", "/readyz"})
#: How long a key check is remembered: a revoked key stops working within this time.
KEY_CACHE_S = 1.0


class FhirResponse(JSONResponse):
    """A JSON response with the FHIR media type."""

    media_type = FHIR_JSON


class ApiError(Exception):
    """An answer other than 202, rendered as JSON on ``/v1`` and as ``OperationOutcome`` on ``/fhir``."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        detail: list[dict[str, Any]] | None = None,
        problems: list[Problem] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.message = message
        self.detail = detail or []
        self.problems = problems or []
        self.headers = headers or {}


# ---------------------------------------------------------------------------- OpenAPI models


class ErrorItem(BaseModel):
    """Where a request is wrong: location, pydantic error type and a message without input values."""

    loc: list[str | int]
    type: str
    msg: str


class ErrorBody(BaseModel):
    """Every non-202 answer of the ``/v1`` API."""

    error: str
    message: str
    detail: list[ErrorItem] = []


class ScoringWarning(BaseModel):
    """Something the scoring service will dead-letter in an accepted event (no input values)."""

    instrument: str | None
    reason: str
    detail: str


class Accepted(BaseModel):
    """202: the event is on the broker (acknowledged with ``acks=all``)."""

    status: Literal["accepted"]
    event_id: str
    warnings: list[ScoringWarning]


def _fhir_schema(*types: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["resourceType"],
        "properties": {"resourceType": {"type": "string", "enum": list(types)}},
    }


_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
}
_ERROR_STATUSES = {
    401: "Missing, unknown or revoked API key.",
    403: "The event belongs to another clinic than the key's.",
    413: "The body is larger than the limit (default 1 MiB).",
    415: "Content-Type is neither application/json nor application/fhir+json.",
    422: "The body is invalid (field locations and error types, never input values), or its event id "
    "or Idempotency-Key was already used for different content.",
    429: "Per-key rate limit exceeded.",
    503: "The broker did not acknowledge in time: nothing is accepted; retry after Retry-After.",
}


def _json_responses() -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for status, text in _ERROR_STATUSES.items():
        out[status] = {"model": ErrorBody, "description": text}
        if status in (429, 503):
            out[status]["headers"] = _RETRY_AFTER
    return out


def _fhir_responses(statuses: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for status, text in statuses.items():
        out[status] = {
            "description": text,
            "content": {FHIR_JSON: {"schema": _fhir_schema("OperationOutcome")}},
        }
        if status in (429, 503):
            out[status]["headers"] = _RETRY_AFTER
    return out


def _request_body(schema: dict[str, Any], *media_types: str) -> dict[str, Any]:
    return {
        **_SECURED,
        "requestBody": {"required": True, "content": {m: {"schema": schema} for m in media_types}},
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Same key (per clinic), same answer; the request is produced once.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
            }
        ],
    }


# ---------------------------------------------------------------------------- the app


class Runtime:
    """What the routes use, built at start-up (no I/O at import time); ``app.state.runtime``."""

    keys: ApiKeyStore
    store: GatewayStore
    intake: Intake
    producer: AsyncProducer
    follower: ScoresFollower | None

    def __init__(self, limiter: handlers.RateLimiter, monotonic: Callable[[], float]) -> None:
        self.limiter = limiter
        self.monotonic = monotonic
        self._verified: dict[str, tuple[float, Principal | None]] = {}

    def verify(self, presented: str) -> Principal | None:
        """:meth:`ApiKeyStore.verify`, remembered for :data:`KEY_CACHE_S` (a revocation takes effect
        within that time; an unknown key is looked up again after it too)."""
        now = self.monotonic()
        cached = self._verified.get(presented)
        if cached is not None and now - cached[0] < KEY_CACHE_S:
            return cached[1]
        principal = self.keys.verify(presented)
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[presented] = (now, principal)
        return principal


#: The OpenAPI security scheme of every route (checked by :func:`authorise`, not by a FastAPI
#: dependency: the dependency machinery costs more per request than the check itself).
SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "A clinic's API key (`rapport keys create`).",
}
_SECURED = {"security": [{"apiKey": []}]}


def authorise(request: Request) -> Principal:
    """The caller of a request: an active key (else 401) within its rate limit (else 429)."""
    runtime: Runtime = request.app.state.runtime
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise ApiError(
            401,
            "unauthorized",
            "missing API key: send Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = runtime.verify(presented.strip())
    if principal is None:
        raise ApiError(
            401, "unauthorized", "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
        )
    wait = runtime.limiter.check(principal.key_id, runtime.monotonic())
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            "too many requests for this key",
            headers={"Retry-After": str(max(1, int(wait + 0.999)))},
        )
    return principal


def create_app(
    settings: GatewaySettings,
    registry: CollectorRegistry | None = None,
    producer_factory: Callable[[GatewaySettings], AsyncProducer] | None = None,
    clock: Callable[[], datetime] = utc_now,
    monotonic: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """Build the gateway's FastAPI app; the producer, the SQLite file and the scores follower start
    with the app's lifespan."""
    registry = registry or CollectorRegistry()
    metrics = GatewayMetrics.create(registry)
    instruments = load_registry(extra_dirs=settings.instrument_dirs)
    runtime = Runtime(handlers.RateLimiter(settings.rate_per_s, settings.rate_burst), monotonic)
    session_topic = topics.topic_name(topics.SESSION_COMPLETED, settings.topic_namespace)

    def make_producer(s: GatewaySettings) -> AsyncProducer:
        return AsyncProducer(
            s.bootstrap_servers,
            client_id=s.app_id,
            request_timeout_s=s.request_timeout_s,
            linger_ms=s.linger_ms,
        )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        conn = connect(settings.db_path)
        runtime.keys = ApiKeyStore(conn)
        runtime.store = GatewayStore(conn)
        runtime.store.purge(settings.ledger_days)
        runtime.producer = (producer_factory or make_producer)(settings)
        runtime.intake = Intake(
            producer=runtime.producer,
            store=runtime.store,
            topic=session_topic,
            metrics=metrics,
            ack_timeout_s=settings.ack_timeout_s,
            max_pending=settings.max_pending,
        )
        runtime.follower = None
        if settings.consume_scores:
            runtime.follower = ScoresFollower(
                bootstrap_servers=settings.bootstrap_servers,
                topic=topics.topic_name(topics.SURVEY_SCORED, settings.topic_namespace),
                store=runtime.store,
                metrics=metrics,
                client_id=settings.app_id,
            )
            runtime.follower.start()
        await runtime.producer.start()
        log.info("gateway started", extra={"service": "gateway"})
        try:
            yield
        finally:
            await runtime.intake.close(settings.ack_timeout_s)
            if runtime.follower is not None:
                await runtime.follower.stop()
            await runtime.producer.stop()
            runtime.store.flush()
            conn.close()
            log.info("gateway stopped", extra={"service": "gateway"})

    app = FastAPI(
        title="Rapport gateway",
        version="1",
        description="Session-completed intake over HTTP (Rapport JSON, FHIR R4) and scores back as FHIR R4 "
        "Observations. Every request needs a clinic's API key (`Authorization: Bearer rk_…`). A 202 "
        "means the event is durably on Kafka; a 503 means it is not accepted: retry after Retry-After. "
        "Mapping rules: docs/gateway.md.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.add_middleware(_MetricsMiddleware, metrics=metrics)

    def readiness() -> tuple[bool, dict[str, Any]]:
        producer = getattr(runtime, "producer", None)
        follower = getattr(runtime, "follower", None)
        connected = producer is not None and producer.started
        details = {
            "producer": "connected" if connected else "connecting",
            "scores": "off" if follower is None else ("following" if follower.following else "connecting"),
        }
        return connected, details

    add_health_routes(app, registry, readiness)

    # ------------------------------------------------------------------ errors

    def render_error(request: Request, err: ApiError) -> JSONResponse:
        if request.url.path.startswith("/fhir"):
            problems = err.problems or [Problem(_FHIR_CODES.get(err.status, "invalid"), "", err.message)]
            return FhirResponse(operation_outcome(problems), status_code=err.status, headers=err.headers)
        body = handlers.error_body(err.error, err.message, err.detail)
        return JSONResponse(body, status_code=err.status, headers=err.headers)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        return render_error(request, err)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        text = {404: "no such route", 405: "method not allowed"}.get(err.status_code, "request refused")
        return render_error(
            request, ApiError(err.status_code, "http_error", text, headers=dict(err.headers or {}))
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        return render_error(
            request,
            ApiError(
                422, "invalid", "the request is invalid", detail=handlers.json_error_detail(err.errors())
            ),
        )

    # ------------------------------------------------------------------ checks

    async def read_body(request: Request) -> bytes:
        if handlers.media_type(request.headers.get("content-type")) not in handlers.ACCEPTED_CONTENT_TYPES:
            raise ApiError(415, "unsupported_media_type", "send application/json or application/fhir+json")
        limit = settings.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ApiError(413, "too_large", f"the body is larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "too_large", f"the body is larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def idempotency_key(request: Request) -> str | None:
        value = request.headers.get("idempotency-key")
        if value is None:
            return None
        if not handlers.valid_idempotency_key(value):
            raise ApiError(
                422,
                "invalid",
                "Idempotency-Key must be 1-255 visible ASCII characters",
                detail=[
                    {"loc": ["header", "Idempotency-Key"], "type": "value_error", "msg": "invalid header"}
                ],
            )
        return value

    async def submit(principal: Principal, route: str, prepared: list[Prepared], key: str | None) -> None:
        try:
            await runtime.intake.submit(principal.clinic_id, route, prepared, key)
        except Conflict as exc:
            raise ApiError(
                422, "idempotency_conflict", str(exc), problems=[Problem("conflict", "", str(exc))]
            ) from None
        except Unavailable:
            raise ApiError(
                503,
                "unavailable",
                "the event could not be made durable on Kafka in time: it is not accepted, retry later",
                headers={"Retry-After": str(settings.retry_after_s)},
            ) from None

    # ------------------------------------------------------------------ routes

    @app.post(
        "/v1/sessions",
        status_code=202,
        response_model=Accepted,
        responses=_json_responses(),
        openapi_extra=_request_body(
            {"$ref": "#/components/schemas/SessionCompleted"}, "application/json", FHIR_JSON
        ),
        summary="Submit a completed session (Rapport's SessionCompleted event)",
        tags=["intake"],
    )
    async def post_session(request: Request) -> JSONResponse:
        principal = authorise(request)
        body = await read_body(request)
        key = idempotency_key(request)
        try:
            event = SessionCompleted.model_validate_json(body)
        except ValidationError as exc:
            detail = handlers.json_error_detail(exc.errors(include_input=False, include_url=False))
            raise ApiError(
                422, "invalid", "the body is not a valid SessionCompleted event", detail=detail
            ) from None
        if event.clinic_id != principal.clinic_id:
            raise ApiError(403, "forbidden", "this key may only submit events of its own clinic")
        await submit(principal, "v1/sessions", [Prepared(event)], key)
        return JSONResponse(
            handlers.accepted_body(event, handlers.warnings_of(event, instruments)), status_code=202
        )

    def fhir_statuses(ok: str) -> dict[int | str, dict[str, Any]]:
        return _fhir_responses({**_ERROR_STATUSES, 202: ok})

    @app.post(
        "/fhir/QuestionnaireResponse",
        status_code=202,
        response_class=FhirResponse,
        responses=fhir_statuses(
            "Accepted: the response's event is on the broker (an OperationOutcome with "
            "the event id and scoring warnings)."
        ),
        openapi_extra=_request_body(_fhir_schema("QuestionnaireResponse"), FHIR_JSON, "application/json"),
        summary="Submit one FHIR R4 QuestionnaireResponse",
        tags=["fhir"],
    )
    async def post_questionnaire_response(request: Request) -> FhirResponse:
        principal = authorise(request)
        body = await read_body(request)
        key = idempotency_key(request)
        try:
            doc = fhir_intake.decode_json(body)
            mapped = fhir_intake.session_from_document(
                doc, clinic_id=principal.clinic_id, now=clock(), source=handlers.SOURCE
            )
        except FhirRejected as exc:
            raise ApiError(
                422, "invalid", "invalid QuestionnaireResponse", problems=list(exc.problems)
            ) from None
        await submit(principal, "fhir/QuestionnaireResponse", [_prepared(mapped)], key)
        outcome = handlers.accepted_outcome(mapped.event, handlers.warnings_of(mapped.event, instruments))
        return FhirResponse(outcome, status_code=202)

    @app.post(
        "/fhir",
        status_code=202,
        response_class=FhirResponse,
        responses=fhir_statuses(
            "Accepted: every entry's event is on the broker (a transaction-response Bundle)."
        ),
        openapi_extra=_request_body(_fhir_schema("Bundle"), FHIR_JSON, "application/json"),
        summary="Submit a FHIR R4 transaction Bundle of QuestionnaireResponses (all or nothing)",
        tags=["fhir"],
    )
    async def post_bundle(request: Request) -> FhirResponse:
        principal = authorise(request)
        body = await read_body(request)
        key = idempotency_key(request)
        try:
            doc = fhir_intake.decode_json(body)
            mapped = fhir_intake.sessions_from_bundle(
                doc, clinic_id=principal.clinic_id, now=clock(), source=handlers.SOURCE
            )
        except FhirRejected as exc:
            raise ApiError(
                422, "invalid", "invalid transaction Bundle", problems=list(exc.problems)
            ) from None
        await submit(principal, "fhir/Bundle", [_prepared(m) for m in mapped], key)
        outcomes = [
            handlers.accepted_outcome(m.event, handlers.warnings_of(m.event, instruments)) for m in mapped
        ]
        return FhirResponse(handlers.transaction_response(outcomes), status_code=202)

    @app.get(
        "/fhir/Observation",
        status_code=200,
        response_class=FhirResponse,
        responses={
            200: {
                "description": "A searchset Bundle of the calling clinic's Observations for the subject.",
                "content": {FHIR_JSON: {"schema": _fhir_schema("Bundle")}},
            },
            **_fhir_responses(
                {
                    400: "subject is missing or malformed.",
                    401: _ERROR_STATUSES[401],
                    429: _ERROR_STATUSES[429],
                }
            ),
        },
        openapi_extra={
            **_SECURED,
            "parameters": [
                {
                    "name": "subject",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "Patient/<client id> (or the bare id).",
                },
                {
                    "name": "encounter",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "Encounter/<id>: only that session's scores.",
                },
            ],
        },
        summary="Search the scores of a client (and encounter) as FHIR R4 Observations",
        tags=["fhir"],
    )
    async def search_observations(request: Request) -> FhirResponse:
        principal = authorise(request)
        subject = _search_id(request.query_params.get("subject"), "Patient")
        if subject is None:
            raise ApiError(
                400,
                "invalid",
                "subject=Patient/<id> is required",
                problems=[Problem("invalid", "subject", "subject=Patient/<id> is required")],
            )
        encounter_param = request.query_params.get("encounter")
        encounter = _search_id(encounter_param, "Encounter") if encounter_param is not None else None
        if encounter_param is not None and encounter is None:
            raise ApiError(
                400,
                "invalid",
                "encounter must be Encounter/<id>",
                problems=[Problem("invalid", "encounter", "encounter must be Encounter/<id>")],
            )
        rows = runtime.store.scores_of(principal.clinic_id, subject, encounter, settings.observation_limit)
        resources = [observation(r.scored, encounter=r.encounter, derived_from=r.derived_from) for r in rows]
        base = str(request.base_url).rstrip("/") + "/fhir"
        return FhirResponse(search_bundle(resources, base_url=base, self_url=str(request.url)))

    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        event_schema = SessionCompleted.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(event_schema.pop("$defs", {}))
        components["SessionCompleted"] = event_schema
        schema["components"]["securitySchemes"] = {"apiKey": SECURITY_SCHEME}
        app.openapi_schema = jsonable_encoder(schema)
        return app.openapi_schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
    return app


def _prepared(mapped: fhir_intake.MappedSession) -> Prepared:
    return Prepared(mapped.event, mapped.encounter, mapped.derived_from)


def _search_id(value: str | None, resource_type: str) -> str | None:
    if not value:
        return None
    ident = value.split("/", 1)[1] if value.startswith(f"{resource_type}/") else value
    return ident if fhir_intake.is_pseudonym(ident) else None


class _MetricsMiddleware:
    """Counts every answer by route template and status, and times it (pure ASGI: no body buffering)."""

    def __init__(self, app: Any, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}  # labels() costs more than inc()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_and_watch(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            if route not in _NOT_COUNTED:
                children = self._children.get((route, status))
                if children is None:
                    children = self._children[(route, status)] = (
                        self.metrics.requests.labels(route, str(status)),
                        self.metrics.request_seconds.labels(route),
                    )
                children[0].inc()
                children[1].observe(time.perf_counter() - started)
