"""Build the Rapport Grafana dashboard (deploy/grafana/dashboards/rapport.json) and check it.

    python deploy/grafana/dashboard.py           # write the dashboard JSON
    python deploy/grafana/dashboard.py --check   # committed JSON is current, and every query
                                                 # parses with promtool (Prometheus's own parser)

Queries match metric names by regex (rapport_<service>_...) where every service has the metric, so
a new service's lag, dead letters and latency appear without editing the dashboard.
`make grafana-check` also type-checks the JSON against Grafana's published schema (@grafana/schema).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards" / "rapport.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
LAG = '{__name__=~"rapport_.+_consumer_lag_messages"}'
DEAD = '{__name__=~"rapport_.+_dead_letters_total"}'
PROC = '{__name__=~"rapport_.+_processing_seconds_bucket"}'
PUB = '{__name__=~"rapport_.+_publish_seconds_bucket"}'
RI = "$__rate_interval"


class Layout:
    """Places panels left to right on Grafana's 24-column grid."""

    def __init__(self) -> None:
        self.x = self.y = self.row_h = 0
        self.next_id = 1
        self.panels: list[dict[str, Any]] = []

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def row(self, title: str) -> None:
        """Start a new row."""
        if self.x:
            self.y += self.row_h
        self.x = self.row_h = 0
        self.panels.append(
            {
                "type": "row",
                "id": self._id(),
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def add(self, panel: dict[str, Any], w: int, h: int) -> None:
        """Add ``panel`` with width ``w`` and height ``h``."""
        if self.x + w > 24:
            self.y += self.row_h
            self.x = self.row_h = 0
        panel["id"] = self._id()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)


def _targets(queries: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        {"datasource": DS, "refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend, "range": True}
        for i, (expr, legend) in enumerate(queries)
    ]


def timeseries(
    title: str, description: str, unit: str, queries: list[tuple[str, str]], stack: bool = False
) -> dict[str, Any]:
    """A time-series panel."""
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": _targets(queries),
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 10 if stack else 0,
                    "stacking": {"mode": "normal" if stack else "none", "group": "A"},
                },
            },
            "overrides": [],
        },
        "options": {
            "legend": {
                "showLegend": True,
                "displayMode": "table",
                "placement": "right",
                "calcs": ["lastNotNull"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(
    title: str, description: str, unit: str, expr: str, steps: list[tuple[float | None, str]]
) -> dict[str, Any]:
    """A single-value panel coloured by thresholds."""
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": _targets([(expr, "")]),
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": {
                    "mode": "absolute",
                    "steps": [{"value": value, "color": color} for value, color in steps],
                },
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "value",
            "justifyMode": "auto",
        },
    }


def _quantiles(
    metric: str, by: str, legend: str, qs: tuple[float, ...] = (0.5, 0.99)
) -> list[tuple[str, str]]:
    return [
        (f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}[{RI}])))", f"{legend} p{round(q * 100)}")
        for q in qs
    ]


def build() -> dict[str, Any]:
    """The dashboard."""
    lay = Layout()
    lay.row("Canary: is the pipeline flowing?")
    lay.add(
        stat(
            "Since the last canary success",
            "Seconds since a canary session last came through as a signal (RapportPipelineStalled at 600).",
            "s",
            "time() - max(rapport_canary_last_success_timestamp_seconds)",
            [(None, "green"), (120, "orange"), (600, "red")],
        ),
        6,
        6,
    )
    lay.add(
        timeseries(
            "Canary latency",
            "Sending a canary session to reading its result at each stage.",
            "s",
            _quantiles("rapport_canary_latency_seconds_bucket", "stage", "{{stage}}", (0.5, 0.9)),
        ),
        9,
        6,
    )
    lay.add(
        timeseries(
            "Canary probes",
            "Probes by outcome (succeeded, timed_out, send_failed).",
            "ops",
            [(f"sum by (outcome) (rate(rapport_canary_probes_total[{RI}]))", "{{outcome}}")],
        ),
        9,
        6,
    )
    lay.row("Flow")
    lay.add(
        timeseries(
            "Flow per topic",
            "Records per second read from and written to each topic.",
            "ops",
            [
                (f"sum(rate(rapport_scoring_sessions_total[{RI}]))", "session-completed (read)"),
                (f"sum(rate(rapport_scoring_surveys_scored_total[{RI}]))", "survey-scored (written)"),
                (f"sum(rate(rapport_monitor_scores_total[{RI}]))", "survey-scored (read)"),
                (f"sum(rate(rapport_monitor_signals_total[{RI}]))", "signals (written)"),
                (f"sum(rate({DEAD}[{RI}]))", "dead-letter (written)"),
                (f"sum(rate(rapport_notifier_alerts_total[{RI}]))", "alerts (written)"),
            ],
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Inputs by outcome",
            "What each service made of its input records.",
            "ops",
            [
                (f"sum by (outcome) (rate(rapport_scoring_sessions_total[{RI}]))", "scoring {{outcome}}"),
                (f"sum by (outcome) (rate(rapport_monitor_scores_total[{RI}]))", "monitor {{outcome}}"),
            ],
            stack=True,
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Consumer lag per group and partition",
            "Records not yet read, per service (consumer group), topic and partition.",
            "short",
            [(f"sum by (job, topic, partition) ({LAG})", "{{job}} {{topic}}[{{partition}}]")],
        ),
        24,
        8,
    )
    lay.row("Latency")
    lay.add(
        timeseries(
            "Processing time per record",
            "Handler time per input record, per service.",
            "s",
            _quantiles(PROC, "job", "{{job}}"),
        ),
        8,
        8,
    )
    lay.add(
        timeseries(
            "Publish time per batch",
            "Publishing a batch's outputs and receiving every broker acknowledgement.",
            "s",
            _quantiles(PUB, "job", "{{job}}"),
        ),
        8,
        8,
    )
    lay.add(
        timeseries(
            "Session to signal, session to alert",
            "Scored event to its signal (monitor); session end to alert (notifier; SLO 99% within 60 s).",
            "s",
            _quantiles("rapport_monitor_score_to_signal_seconds_bucket", "job", "score→signal", (0.5, 0.9))
            + _quantiles("rapport_notifier_session_to_alert_seconds_bucket", "job", "session→alert"),
        ),
        8,
        8,
    )
    lay.row("Dead letters and signals")
    lay.add(
        timeseries(
            "Dead letters by reason",
            "Records each stage could not process, by reason code (replay: rapport dead-letters replay).",
            "ops",
            [(f"sum by (job, reason) (rate({DEAD}[{RI}]))", "{{job}} {{reason}}")],
            stack=True,
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Signals by kind",
            "Signals the monitor raised, by kind and severity (canary probes included: critical_item).",
            "ops",
            [
                (
                    f"sum by (kind, severity) (rate(rapport_monitor_signals_total[{RI}]))",
                    "{{kind}} {{severity}}",
                )
            ],
            stack=True,
        ),
        12,
        8,
    )
    lay.row("Alerts to clinicians")
    lay.add(
        timeseries(
            "Deliveries by channel and outcome",
            "Delivery attempts per channel: delivered, failed, retrying, gone, exhausted.",
            "ops",
            [
                (
                    f"sum by (channel, outcome) (rate(rapport_notifier_delivery_attempts_total[{RI}]))",
                    "{{channel}} {{outcome}}",
                )
            ],
        ),
        8,
        8,
    )
    lay.add(
        timeseries(
            "Alerts by kind and outcome",
            "Alerts the notifier decided on, by signal kind, severity and outcome.",
            "ops",
            [
                (
                    f"sum by (kind, severity, outcome) (rate(rapport_notifier_alerts_total[{RI}]))",
                    "{{kind}} {{severity}} {{outcome}}",
                )
            ],
        ),
        8,
        8,
    )
    lay.add(
        stat(
            "Oldest unacknowledged critical alert",
            "Age of the oldest critical alert nobody acknowledged (paged at 900 s).",
            "s",
            "max(rapport_notifier_oldest_unacked_critical_seconds)",
            [(None, "green"), (300, "orange"), (900, "red")],
        ),
        8,
        8,
    )
    lay.row("Workers")
    lay.add(
        timeseries(
            "Up and ready",
            "1 = scraped (up) / partitions assigned and recovered (ready).",
            "short",
            [
                ('up{job=~"scoring|monitor|notifier|gateway|inbox|canary"}', "up {{job}} {{instance}}"),
                ('max by (job, instance) ({__name__=~"rapport_.+_ready"})', "ready {{job}} {{instance}}"),
            ],
        ),
        12,
        8,
    )
    lay.add(
        timeseries(
            "Restarts",
            "Process restarts in the last 15 minutes (RapportWorkerCrashLooping at 2).",
            "short",
            [
                (
                    'changes(process_start_time_seconds{job=~"scoring|monitor|notifier|gateway|inbox|canary"}[15m])',
                    "{{job}} {{instance}}",
                )
            ],
        ),
        12,
        8,
    )
    return {
        "uid": "rapport-overview",
        "title": "Rapport",
        "description": "The Rapport pipeline: canary, flow, lag, latency, dead letters, signals, alerts.",
        "tags": ["rapport"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "utc",
        "links": [],
        "annotations": {"list": []},
        "templating": {
            "list": [
                {
                    "type": "datasource",
                    "name": "datasource",
                    "label": "Data source",
                    "query": "prometheus",
                    "current": {"text": "Prometheus", "value": "prometheus"},
                    "hide": 0,
                }
            ]
        },
        "panels": lay.panels,
    }


def render() -> str:
    """The dashboard as stable JSON text."""
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard."""
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def check_promql(exprs: list[str]) -> str | None:
    """Parse every expression with promtool (as recording rules); the error text, or None."""
    promtool = shutil.which("promtool")
    if promtool is None:
        return "promtool not found: apt-get install prometheus"
    rules = [
        {"record": f"dashboard:query_{i}", "expr": re.sub(r"\$__rate_interval", "5m", e)}
        for i, e in enumerate(exprs)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dashboard-queries.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
        done = subprocess.run(  # noqa: S603 - promtool from PATH, our own file
            [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
        )
    return None if done.returncode == 0 else done.stdout + done.stderr


def main(argv: list[str]) -> int:
    """Write, or ``--check``, the dashboard."""
    text = render()
    if "--check" not in argv:
        OUT.write_text(text)
        print(f"wrote {OUT.relative_to(HERE.parent.parent)}")
        return 0
    if not OUT.is_file() or OUT.read_text() != text:
        print("deploy/grafana/dashboards/rapport.json is out of date: run python deploy/grafana/dashboard.py")
        return 1
    error = check_promql(queries(json.loads(text)))
    if error:
        print(f"a dashboard query does not parse:\n{error}")
        return 1
    print(f"dashboard current; {len(queries(json.loads(text)))} queries parse")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
