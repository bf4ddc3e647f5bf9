"""The notifier's handlers with an in-memory state: what is published, stored and forwarded."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from services.notifier.handlers import Context, client_key, handle_client
from shared.alerting.feedback import AttemptResult, InternalRecord
from shared.alerting.policy import PolicyConfig
from shared.alerting.state import ClientAlerts
from shared.contracts.canary import CANARY_CLINIC_ID, CANARY_CLINICIAN_ID
from shared.contracts.topics import ALERTS, NOTIFIER_CLIENT, SIGNALS
from shared.runtime.kafka import partition_for
from shared.runtime.worker import BatchState, Record
from tests.unit.alerting.factories import NOW, directory, signal

PARTITIONS = 3
CTX = Context(lambda clinic: directory() if clinic == "k1" else None, PolicyConfig(), PARTITIONS)
T = datetime.fromtimestamp(NOW, UTC)


class Store:
    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def put(self, key: str, value: str, record: Record) -> None:
        self.data[key] = value

    def delete(self, key: str, record: Record) -> None:
        self.data.pop(key, None)


def state() -> BatchState[ClientAlerts]:
    return BatchState(Store(), ClientAlerts.model_validate_json, lambda s: s.model_dump_json())


def home(clinic: str, client: str) -> int:
    return partition_for(client_key(clinic, client).encode(), PARTITIONS)


def delivered(key: str, alert_id: str, job_id: str, code: str, partition: int, offset: int) -> Record:
    """The dispatcher's record of a successful first delivery attempt of ``job_id``."""
    result = AttemptResult(
        target="client",
        key=key,
        owner_id=alert_id,
        job_id=job_id,
        attempt=1,
        result="delivered",
        code=code,
        at=NOW,
    )
    return Record(
        None, InternalRecord(record=result).model_dump_json().encode(), NOTIFIER_CLIENT, partition, offset
    )


def test_a_signal_on_its_clients_partition_raises_an_alert_keyed_by_alert_id() -> None:
    sig = signal("critical_item")
    view = state()
    record = Record(b"k1|c-1", sig.model_dump_json().encode(), SIGNALS, home("k1", "c-1"), 7)
    handled = handle_client(record, view, T, CTX)
    assert handled.outcome == "signal"
    (out,) = handled.outputs
    event = json.loads(out.value)
    assert out.topic == ALERTS and out.key == event["data"]["alert_id"].encode()
    assert event["data"]["state"] == "raised"
    stored = view.get("k1|c-1")
    assert stored is not None and stored.partition == home("k1", "c-1")


def test_a_signal_on_another_partition_is_forwarded_to_its_clients_partition() -> None:
    sig = signal("critical_item")
    wrong = (home("k1", "c-1") + 1) % PARTITIONS
    view = state()
    handled = handle_client(Record(b"other", sig.model_dump_json().encode(), SIGNALS, wrong, 1), view, T, CTX)
    assert handled.outcome == "forwarded" and view.get("k1|c-1") is None
    (out,) = handled.outputs
    assert (out.topic, out.partition) == (NOTIFIER_CLIENT, home("k1", "c-1"))
    again = handle_client(Record(out.key, out.value, NOTIFIER_CLIENT, out.partition or 0, 2), view, T, CTX)
    assert [json.loads(o.value)["data"]["state"] for o in again.outputs] == ["raised"]


def test_an_undecodable_signal_is_a_dead_letter_and_not_forwarded() -> None:
    handled = handle_client(Record(b"k", b"{nope", SIGNALS, 0, 1), state(), T, CTX)
    assert [r.reason for r in handled.rejections] == ["undecodable"] and handled.outputs == ()


def test_canary_alerts_go_to_the_null_channel_and_close_on_delivery() -> None:
    sig = signal("critical_item", clinic=CANARY_CLINIC_ID, client="canary-r-0", clinician=CANARY_CLINICIAN_ID)
    view = state()
    part = home(CANARY_CLINIC_ID, "canary-r-0")
    handle_client(Record(None, sig.model_dump_json().encode(), SIGNALS, part, 1), view, T, CTX)
    key = client_key(CANARY_CLINIC_ID, "canary-r-0")
    stored = view.get(key)
    assert stored is not None
    (alert,) = stored.alerts.values()
    (job,) = alert.jobs
    assert job.endpoint_id == "canary-null"
    handled = handle_client(delivered(key, alert.alert_id, job.id, "null", part, 2), view, T, CTX)
    states = [json.loads(o.value)["data"]["state"] for o in handled.outputs]
    assert states == ["delivered", "acknowledged"]
    view.flush()
    after = view.get(key)
    assert after is None or after.open_critical_since() is None, "never an unacknowledged critical alert"


def test_the_first_delivery_reports_the_time_since_the_session_event() -> None:
    sig = signal("critical_item", event_time=T - timedelta(seconds=2.5))
    view = state()
    part = home("k1", "c-1")
    handle_client(Record(None, sig.model_dump_json().encode(), SIGNALS, part, 1), view, T, CTX)
    key = client_key("k1", "c-1")
    stored = view.get(key)
    assert stored is not None
    (alert,) = stored.alerts.values()
    job = alert.jobs[0]

    def latency(offset: int) -> list[tuple[str, float]]:
        record = delivered(key, alert.alert_id, job.id, "200", part, offset)
        return list(handle_client(record, view, T, CTX).facts[0].first_delivery)

    assert latency(2) == [("critical", 2.5)]
    assert latency(3) == [], "only the first delivery of an alert is its latency"
