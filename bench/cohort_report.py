"""Cohort calibration: the default rule set over the simulator's cohort. ``python -m bench.cohort_report``.

1. Generates a cohort with :func:`shared.history.synthetic.generate_history_lines` (default config mix of
   clinic types, ``--clients`` clients, fixed ``--seed``) and describes its alliance distributions
   (SRS mean, share of sessions below the cutoff 36, at/near the ceiling, deep ≤ 26; WAI-SR mean).
2. Reads it through the same path as ``rapport backtest`` (``shared.pipeline.offline.read_history``:
   validate, score with the instrument registry) and runs the default rule book with
   ``shared.rules.backtest.run_backtest``: per rule, signals and share of clients; overall share
   flagged (moderate or higher, critical items and info not counted); critical-item share.
3. Per client (the same ``evaluate_episode`` the backtest calls), compares the findings with the
   simulator's ground truth (:func:`shared.history.synthetic.client_archetypes`): sensitivity for designed
   deterioration, unrepaired and repaired ruptures, risk endorsements; false flags among improvers
   with a steady alliance.

Prints a table and writes ``bench-results/cohort.json``. Exit code 0 always: this reports, it does not
gate (``tests/unit/rules/test_cohort_calibration.py`` gates a smaller cohort).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.history.synthetic import (
    ClientTruth,
    HistoryLine,
    SimulationConfig,
    client_archetypes,
    generate_history_lines,
)
from shared.instruments import default_registry
from shared.pipeline.offline import read_history
from shared.rules.backtest import FLAG_SEVERITIES, History, run_backtest
from shared.rules.config import RuleBook, default_rulebook, rulebook_from_mapping
from shared.rules.engine import Finding, evaluate_episode

REPO = Path(__file__).resolve().parent.parent

START = datetime(2024, 1, 1, tzinfo=UTC)
ALLIANCE_FLAGS = frozenset({"alliance_drop", "alliance_decline", "alliance_below_cutoff"})
OUTCOME_FLAGS = frozenset({"outcome_reliable_deterioration", "outcome_not_on_track"})
#: Rules that can flag (severity moderate or higher); critical items are counted apart and never disabled.
FLAGGING_RULES = (
    "alliance_below_cutoff",
    "alliance_drop",
    "alliance_decline",
    "outcome_reliable_deterioration",
    "outcome_not_on_track",
    "dropout_risk",
)
SRS_CUTOFF = 36.0


def cohort_config(clients: int) -> SimulationConfig:
    """The default config (clinic mix, archetype shares, 6-16 sessions) scaled to about ``clients``."""
    per_clinician = 25
    clinics = 8
    clinicians = max(1, round(clients / (clinics * per_clinician)))
    return SimulationConfig(
        clinics=clinics, clinicians_per_clinic=clinicians, clients_per_clinician=per_clinician
    )


def alliance_distribution(lines: list[HistoryLine]) -> dict[str, Any]:
    """SRS and WAI-SR session totals of the cohort: means and the shares that matter for the rules."""
    srs: list[float] = []
    srs_by_client: dict[str, list[float]] = defaultdict(list)
    wai: list[float] = []
    for line in lines:
        for s in line["surveys"]:
            if s["instrument"] == "SRS":
                x = round(sum(s["answers"].values()), 1)
                srs.append(x)
                srs_by_client[line["client"]].append(x)
            elif s["instrument"] == "WAI-SR":
                wai.append(float(sum(s["answers"].values())))
    medians = [statistics.median(v) for v in srs_by_client.values()]
    n = len(srs)
    return {
        "srs_sessions": n,
        "srs_mean": round(statistics.fmean(srs), 2),
        "srs_sd": round(statistics.pstdev(srs), 2),
        "srs_median": round(statistics.median(srs), 1),
        "srs_below_36_share": round(sum(x < SRS_CUTOFF for x in srs) / n, 4),
        "srs_at_or_below_26_share": round(sum(x <= 26.0 for x in srs) / n, 4),
        "srs_at_least_39_share": round(sum(x >= 39.0 for x in srs) / n, 4),
        "srs_at_40_share": round(sum(x >= 39.95 for x in srs) / n, 4),
        "srs_clients_median_at_least_39_share": round(sum(m >= 39.0 for m in medians) / len(medians), 4),
        "srs_clients_median_at_least_38_share": round(sum(m >= 38.0 for m in medians) / len(medians), 4),
        "srs_clients_ever_below_36_share": round(
            sum(min(v) < SRS_CUTOFF for v in srs_by_client.values()) / len(srs_by_client), 4
        ),
        "wai_sr_sessions": len(wai),
        "wai_sr_mean": round(statistics.fmean(wai), 2) if wai else None,
        "wai_sr_sd": round(statistics.pstdev(wai), 2) if wai else None,
    }


def client_findings(history: History, book: RuleBook) -> tuple[dict[str, list[Finding]], set[str]]:
    """Every finding per client (the same ``evaluate_episode`` call ``run_backtest`` makes), and the
    clients with an outcome measure that has a reliable change under the rule set.

    Without a reliable change (K10: none in its spec nor in the default rule set) the deterioration
    and not-on-track rules cannot fire, and the dropout rule sees improvement only once the score
    leaves the clinical range.
    """
    out: dict[str, list[Finding]] = defaultdict(list)
    judged: set[str] = set()
    for clinic, client, _episode, tracks in history.episodes():
        rules = book.for_clinic(clinic)
        out[client].extend(evaluate_episode(tracks, rules))
        if any(
            t.domain == "outcome" and rules.params_for(name, t.scale).reliable_change is not None
            for name, t in tracks.items()
        ):
            judged.add(client)
    return out, judged


def _flagged(fs: list[Finding], kinds: frozenset[str] | None = None) -> bool:
    return any(
        f.severity in FLAG_SEVERITIES and f.kind != "critical_item" and (kinds is None or f.kind in kinds)
        for f in fs
    )


def without_each_rule(history: History, book: RuleBook) -> dict[str, float]:
    """Share flagged with each flagging rule disabled in turn (the rest of the default unchanged).

    The marginal contribution of a rule is the overall share minus this. Disabling ``alliance_drop``
    also removes open drops from the dropout rule's alliance concern, as it would live.
    """
    base = book.base.model_dump()
    out: dict[str, float] = {}
    for kind in FLAGGING_RULES:
        variant = rulebook_from_mapping(
            {"version": f"{base['version']}-no-{kind}", "rules": {kind: {"enabled": False}}}, onto=base
        )
        out[kind] = run_backtest(history, variant).to_dict()["flagged_share"]
    return out


def _share(hits: int, n: int) -> dict[str, Any]:
    return {"n": n, "hits": hits, "share": round(hits / n, 4) if n else None}


def sensitivity(
    truth: list[ClientTruth], findings: dict[str, list[Finding]], judged: set[str]
) -> dict[str, Any]:
    """The rules' findings against the designed ground truth.

    ``judged``: clients with an outcome measure that has a reliable change (see :func:`client_findings`);
    the outcome sensitivity and the false-flag rate are also given for them alone.
    """
    det: Counter[bool] = Counter()
    det_hit: Counter[bool] = Counter()
    steady: Counter[bool] = Counter()
    steady_flag: Counter[bool] = Counter()
    unrep = unrep_hit = unrep_mod = rep = rep_hit = rep_dropped = rep_dropped_hit = 0
    risk_total = risk_hit = 0
    ruptures: Counter[str] = Counter()
    drops: Counter[str] = Counter()
    flagged_by: Counter[tuple[str, str]] = Counter()
    clients_by: Counter[tuple[str, str]] = Counter()
    for t in truth:
        fs = findings.get(t.client_id, [])
        flagged = _flagged(fs)
        rc = t.client_id in judged
        for key in ((t.outcome, "outcome"), (t.rupture, "rupture")):
            clients_by[key] += 1
            flagged_by[key] += flagged
        if t.outcome == "deteriorating":
            det[rc] += 1
            det_hit[rc] += any(f.kind in OUTCOME_FLAGS for f in fs)
        r = t.rupture_session
        dropped = r is not None and any(f.kind == "alliance_drop" and r <= f.session <= r + 1 for f in fs)
        if r is not None:
            ruptures[t.alliance_instrument] += 1
            drops[t.alliance_instrument] += dropped
        if t.rupture == "unrepaired" and r is not None:
            unrep += 1
            after = [f for f in fs if f.session >= r]
            unrep_hit += any(f.kind in ALLIANCE_FLAGS for f in after)
            unrep_mod += any(
                (f.kind in ALLIANCE_FLAGS and f.severity in FLAG_SEVERITIES) or f.kind == "dropout_risk"
                for f in after
            )
        elif t.rupture == "repaired" and r is not None:
            rep += 1
            repaired = any(f.kind == "alliance_repaired" and f.session > r for f in fs)
            rep_hit += repaired
            rep_dropped += dropped
            rep_dropped_hit += dropped and repaired
        if t.outcome == "improving" and t.rupture == "none":
            steady[rc] += 1
            steady_flag[rc] += flagged
        crit = {(f.instrument, f.session) for f in fs if f.kind == "critical_item"}
        for instrument, session, _value in t.risk_endorsements:
            risk_total += 1
            risk_hit += (instrument, session) in crit
    return {
        "deteriorating_flagged_outcome": _share(det_hit.total(), det.total()),
        "deteriorating_flagged_outcome_with_rc": _share(det_hit[True], det[True]),
        "deteriorating_flagged_outcome_without_rc": _share(det_hit[False], det[False]),
        "unrepaired_rupture_alliance_signal": _share(unrep_hit, unrep),
        "unrepaired_rupture_moderate_alliance_or_dropout": _share(unrep_mod, unrep),
        "repaired_rupture_alliance_repaired": _share(rep_hit, rep),
        "repaired_rupture_alliance_repaired_given_drop": _share(rep_dropped_hit, rep_dropped),
        "rupture_drop_detected_by_instrument": {
            name: _share(drops[name], ruptures[name]) for name in sorted(ruptures)
        },
        "risk_endorsements_with_critical_item": _share(risk_hit, risk_total),
        "false_flags_improving_no_rupture": _share(steady_flag.total(), steady.total()),
        "false_flags_improving_no_rupture_with_rc": _share(steady_flag[True], steady[True]),
        "false_flags_improving_no_rupture_without_rc": _share(steady_flag[False], steady[False]),
        "flagged_share_by_truth": {
            f"{kind}={value}": round(flagged_by[value, kind] / n, 4)
            for (value, kind), n in sorted(clients_by.items(), key=lambda kv: (kv[0][1], kv[0][0]))
        },
    }


def run(clients: int, seed: int) -> dict[str, Any]:
    """Generate, score, run the rules, compare with the ground truth: the whole report as a dict."""
    config = cohort_config(clients)
    started = time.perf_counter()
    lines = list(generate_history_lines(config, seed, START))
    truth = client_archetypes(config, seed)
    raw = b"".join(json.dumps(x, separators=(",", ":")).encode() + b"\n" for x in lines)
    history, stats = read_history(io.BytesIO(raw), "jsonl", default_registry())
    if stats.bad_lines or stats.unscorable_surveys:
        raise SystemExit(f"the simulator produced unscorable data: {stats.to_dict()}")
    book = default_rulebook()
    report = run_backtest(history, book)
    findings, judged = client_findings(history, book)
    by_type: dict[str, list[bool]] = defaultdict(list)
    outcome_only = alliance_any = 0
    for t in truth:
        fs = findings.get(t.client_id, [])
        by_type[t.clinic_type].append(_flagged(fs))
        outcome_only += _flagged(fs, OUTCOME_FLAGS)
        alliance_any += _flagged(fs, ALLIANCE_FLAGS | {"dropout_risk"})
    mix = Counter(t.outcome for t in truth)
    ruptures = Counter(t.rupture for t in truth)
    levels = Counter(t.alliance_level for t in truth)
    n = len(truth)
    return {
        "python": platform.python_version(),
        "seed": seed,
        "clients": n,
        "sessions": len(lines),
        "seconds": round(time.perf_counter() - started, 2),
        "archetypes": {
            "outcome": {k: round(v / n, 4) for k, v in sorted(mix.items())},
            "rupture": {k: round(v / n, 4) for k, v in sorted(ruptures.items())},
            "alliance_level": {k: round(v / n, 4) for k, v in sorted(levels.items())},
        },
        "alliance": alliance_distribution(lines),
        "backtest": report.to_dict(),
        "flagged_share_by_clinic_type": {k: round(sum(v) / len(v), 4) for k, v in sorted(by_type.items())},
        "flagged_share_by_outcome_rules": round(outcome_only / n, 4),
        "flagged_share_by_alliance_or_dropout_rules": round(alliance_any / n, 4),
        "flagged_share_without_rule": without_each_rule(history, book),
        "sensitivity": sensitivity(truth, findings, judged),
    }


def pct(x: float) -> str:
    """A share as a percentage, 5 characters wide."""
    return f"{100 * x:5.1f}%"


def render(result: dict[str, Any]) -> str:
    """The human-readable report."""
    a, bt, sens = result["alliance"], result["backtest"], result["sensitivity"]
    out = [
        f"cohort: {result['clients']:,} clients, {result['sessions']:,} sessions, seed {result['seed']} "
        f"({result['seconds']:.1f} s); rule set {bt['ruleset_version']}",
        f"archetypes: outcome {result['archetypes']['outcome']}; rupture {result['archetypes']['rupture']}; "
        f"alliance {result['archetypes']['alliance_level']}",
        f"SRS: mean {a['srs_mean']} (SD {a['srs_sd']}, median {a['srs_median']}); sessions < 36 "
        f"{pct(a['srs_below_36_share'])}, <= 26 {pct(a['srs_at_or_below_26_share'])}, >= 39 "
        f"{pct(a['srs_at_least_39_share'])}, = 40 {pct(a['srs_at_40_share'])}",
        f"SRS clients: median >= 39 {pct(a['srs_clients_median_at_least_39_share'])}, median >= 38 "
        f"{pct(a['srs_clients_median_at_least_38_share'])}, ever < 36 "
        f"{pct(a['srs_clients_ever_below_36_share'])}",
        f"WAI-SR: mean {a['wai_sr_mean']} (SD {a['wai_sr_sd']})",
        "",
        f"{'rule':32} {'severity':9} {'signals':>9} {'clients':>8} {'share':>7}",
        "-" * 69,
    ]
    for r in bt["rules"]:
        out.append(
            f"{r['rule']:32} {r['severity']:9} {r['signals']:>9,} {r['clients']:>8,} {pct(r['share']):>7}"
        )
    out += [
        "-" * 69,
        f"{'flagged (>= moderate, excl. critical items)':52} {bt['flagged_clients']:>8,} "
        f"{pct(bt['flagged_share']):>7}",
        f"{'critical items (clients)':52} {bt['critical_item']['clients']:>8,} "
        f"{pct(bt['critical_item']['share']):>7}",
        "flagged by clinic type: "
        + ", ".join(f"{k} {pct(v).strip()}" for k, v in result["flagged_share_by_clinic_type"].items()),
        f"flagged by outcome rules (deterioration, not on track): "
        f"{pct(result['flagged_share_by_outcome_rules']).strip()}; by alliance or dropout rules: "
        f"{pct(result['flagged_share_by_alliance_or_dropout_rules']).strip()}",
        "flagged with one rule disabled: "
        + ", ".join(f"{k} {pct(v).strip()}" for k, v in result["flagged_share_without_rule"].items()),
        "",
        "sensitivity against the ground truth:",
    ]
    labels = {
        "deteriorating_flagged_outcome": "deteriorating → deterioration or not-on-track",
        "deteriorating_flagged_outcome_with_rc": "  … outcome measure with a reliable change",
        "deteriorating_flagged_outcome_without_rc": "  … without one (K10)",
        "unrepaired_rupture_alliance_signal": "unrepaired rupture → alliance signal (any severity)",
        "unrepaired_rupture_moderate_alliance_or_dropout": "unrepaired rupture → moderate alliance/dropout",
        "repaired_rupture_alliance_repaired": "repaired rupture → alliance_repaired",
        "repaired_rupture_alliance_repaired_given_drop": "  … of those whose drop was detected",
        "risk_endorsements_with_critical_item": "risk endorsement → critical_item",
        "false_flags_improving_no_rupture": "false flags: improving, no rupture",
        "false_flags_improving_no_rupture_with_rc": "  … outcome measure with a reliable change",
        "false_flags_improving_no_rupture_without_rc": "  … without one (K10)",
    }
    for key, label in labels.items():
        s = sens[key]
        out.append(f"  {label:52} {s['hits']:>6,}/{s['n']:<6,} {pct(s['share'] or 0.0)}")
    out.append(
        "  designed rupture → alliance_drop at the rupture (or next) session: "
        + ", ".join(
            f"{k} {v['hits']}/{v['n']} {pct(v['share'] or 0.0).strip()}"
            for k, v in sens["rupture_drop_detected_by_instrument"].items()
        )
    )
    out.append(
        "  flagged share by designed truth: "
        + ", ".join(f"{k} {pct(v).strip()}" for k, v in sens["flagged_share_by_truth"].items())
    )
    return "\n".join(out)


def main() -> int:
    """Generate, evaluate, report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--clients", type=int, default=5_000, help="Cohort size (rounded to 200s).")
    ap.add_argument("--seed", type=int, default=2025)
    ap.add_argument("--out", type=Path, default=REPO / "bench-results" / "cohort.json")
    args = ap.parse_args()
    result = run(args.clients, args.seed)
    print(render(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
