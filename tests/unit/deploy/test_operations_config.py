"""The operations files agree with each other: every alert has a runbook section and promtool tests
firing and not firing; every deployable service is scraped, composed and rendered; manifests are
secure and current."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
RULES = yaml.safe_load((ROOT / "deploy/prometheus/rules/rapport.yml").read_text())
TESTS = yaml.safe_load((ROOT / "deploy/prometheus/tests/rapport.test.yml").read_text())
CATALOGUE = yaml.safe_load((ROOT / "deploy/k8s/services.yaml").read_text())
ALERTS = [r for g in RULES["groups"] for r in g["rules"] if "alert" in r]


def _module(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_alert_has_a_severity_and_a_runbook_section() -> None:
    headings = {
        line[4:].strip().lower()
        for line in (ROOT / "docs/operations.md").read_text().splitlines()
        if line.startswith("### ")
    }
    assert len(ALERTS) >= 18
    for rule in ALERTS:
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"page", "ticket"}, name
        assert rule["annotations"]["runbook_url"] == f"docs/operations.md#{name.lower()}", name
        assert name.lower() in headings, f"docs/operations.md has no runbook section for {name}"
        assert rule["annotations"].get("summary"), name


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in TESTS["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {r["alert"] for r in ALERTS}
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested staying quiet"


def test_every_deployable_service_is_scraped_composed_and_rendered() -> None:
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {
        j["job_name"]: j["static_configs"][0]["targets"][0] for j in prometheus["scrape_configs"]
    }
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name, svc in CATALOGUE["services"].items():
        assert jobs.get(name) == f"{name}:{svc['port']}", name
        assert name in compose, name
        assert (ROOT / "deploy/k8s" / f"{name}.yaml").is_file(), name
    # The alert rules' job lists name every deployable service.
    crash = next(r for r in ALERTS if r["alert"] == "RapportWorkerCrashLooping")
    for name in CATALOGUE["services"]:
        assert re.search(rf"\b{name}\b", crash["expr"]), name


def _objects(name: str) -> dict[str, Any]:
    docs = yaml.safe_load_all((ROOT / "deploy/k8s" / f"{name}.yaml").read_text())
    return {d["kind"]: d for d in docs}


def test_manifests_are_current_and_secure() -> None:
    render = _module("deploy/k8s/render.py")
    assert render.main(["render.py", "--check"]) == 0, "run make k8s-manifests"
    for name, svc in CATALOGUE["services"].items():
        objects = _objects(name)
        pod = objects["Deployment"]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["resources"]["limits"] and container["resources"]["requests"]
        assert bool(pod.get("volumes")) == ("data_volume" in svc), name
        assert {"ConfigMap", "Service", "PodDisruptionBudget"} <= set(objects)
        if "consumes" in svc:
            scaled = objects["ScaledObject"]["spec"]
            assert scaled["maxReplicaCount"] == CATALOGUE["partitions"]
            trigger = scaled["triggers"][0]
            assert trigger["type"] == "kafka"
            assert trigger["metadata"]["topic"] == svc["consumes"]
            assert trigger["metadata"]["consumerGroup"] == objects["ConfigMap"]["data"][
                f"{svc['env_prefix']}APP_ID"
            ]
        else:
            assert "ScaledObject" not in objects


def test_dashboard_is_current() -> None:
    dashboard = _module("deploy/grafana/dashboard.py")
    assert (ROOT / "deploy/grafana/dashboards/rapport.json").read_text() == dashboard.render()
