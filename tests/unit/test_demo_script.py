"""``deploy/demo.py`` without a broker: where it connects, which ports, what it refuses, its summary."""

from __future__ import annotations

import importlib.util
import socket
import sys
from collections import Counter
from types import ModuleType

import pytest

from shared.cli.style import Style
from tests.readme_commands import ROOT


def _demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("rapport_demo", ROOT / "deploy" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["rapport_demo"] = module
    spec.loader.exec_module(module)
    return module


demo = _demo()


@pytest.mark.parametrize(
    ("environ", "bootstrap"),
    [
        ({}, "127.0.0.1:9092"),
        ({"KAFKA_PORT": "19092"}, "127.0.0.1:19092"),
        ({"KAFKA_PORT": "19092", "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092"}, "k1:9092,k2:9092"),
    ],
)
def test_the_broker_follows_kafka_bootstrap_servers_then_kafka_port(
    environ: dict[str, str], bootstrap: str
) -> None:
    assert demo.default_bootstrap(environ) == bootstrap


def test_every_service_takes_its_web_port_from_its_own_variable() -> None:
    names = [s.name for s in demo.SERVICES]
    assert names[:2] == ["scoring", "monitor"]
    scoring, monitor = demo.SERVICES[:2]
    assert (scoring.web_port({}), monitor.web_port({})) == (6061, 6062)  # as the README says
    env = {"RAPPORT_SCORING_WEB_PORT": "16401", "RAPPORT_MONITOR_WEB_PORT": "16402"}
    assert (scoring.web_port(env), monitor.web_port(env)) == (16401, 16402)
    assert len({s.default_web_port for s in demo.SERVICES}) == len(demo.SERVICES)


def test_a_taken_web_port_is_refused_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("RAPPORT_SCORING_WEB_PORT", str(port))
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # never reached
        assert demo.main([]) == 1
    err = capsys.readouterr().err
    assert f"web port {port}" in err and "set RAPPORT_SCORING_WEB_PORT" in err


def test_the_summary_counts_signals_by_kind_and_checks_every_designed_case() -> None:
    kinds = Counter({"critical_item": 1, "alliance_drop": 2, "alliance_repaired": 1})
    cases = {
        "case-risk": {"critical_item"},
        "case-deteriorating": set(),
        "case-rupture-repaired": {"alliance_drop", "alliance_repaired"},
        "case-rupture-unrepaired": {"alliance_drop", "alliance_repaired"},
    }
    text, ok = demo._summary(Style(False), Counter(), kinds, Counter(), cases, 12.0)
    assert not ok
    assert "  alliance_drop                       2" in text
    lines = {ln.split()[0]: ln for ln in text.splitlines() if ln.startswith("  case-")}
    assert lines["case-risk"].endswith("seen: critical_item")
    assert "NOT SEEN: nothing yet" in lines["case-deteriorating"]
    assert "NOT SEEN" in lines["case-rupture-unrepaired"], "an unrepaired rupture must not repair"
    cases["case-deteriorating"] = {"outcome_reliable_deterioration"}
    cases["case-rupture-unrepaired"] = {"alliance_drop"}
    assert demo._summary(Style(False), Counter(), kinds, Counter(), cases, 12.0)[1] is True
