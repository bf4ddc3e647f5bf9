"""Benchmark: ``rapport backtest`` over a 1,000,000-session history. ``python -m bench.bench_backtest``.

1. Generates a synthetic clinic history (JSON Lines, one session a line, time-ordered so clients are
   interleaved, ~0.2 % redelivered lines) in /tmp: every session has an SRS and one outcome measure
   (PHQ-9 for half the clients, ORS for the other half). The population is the one the default rule
   set was calibrated on (see ``shared/rules/default_ruleset.yaml``):

   * SRS: client level 40 − Exp(mean 2.5) (a ceiling: most clients rate 38–40), +0.15 per session,
     session noise SD 0.8; 10 % of clients have a rupture (a 3–12 point dip at one session; 30 % of
     them stay half-way down), 4 % a gradual 4–8 point decline over 4–6 sessions;
   * outcomes, IAPT-shaped: 60 % respond (35–80 % of their room to improve, log-shaped over the
     episode), 25 % improve slowly (0–30 %), 9 % stay flat, 6 % deteriorate by 4–10 points;
     PHQ-9 intake N(15, 5), noise SD 2; ORS intake N(19, 7), noise SD 2.5;
   * PHQ-9 item 9 endorsed with probability 2 % + 25 % × (total − 10)/17 above 10; 1 % of PHQ-9
     surveys miss one item (prorated), 0.3 % miss item 9 (risk unknown);
   * episodes of 3–13 sessions (uniform).

2. Times, in this process run: a baseline — reading the file and ``json.loads`` of every line — and
   ``rapport backtest FILE --no-progress --json`` as a subprocess (the whole command, start-up
   included). Reports sessions/s for both and the backtest's cost relative to the baseline, prints the
   backtest's flag rates, and writes ``bench-results/backtest.json``. Target: 1,000,000 sessions in
   ≤ 60 s on one core. Exit code 0 always: this reports, it does not gate.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

TARGET_SECONDS = 60.0
REPO = Path(__file__).resolve().parent.parent


def _clip(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def client_series(rng: random.Random, n: int) -> tuple[list[float], str, list[float]]:
    """(SRS totals, outcome instrument, outcome totals) for one synthetic client of ``n`` sessions."""
    level = 40 - rng.expovariate(1 / 2.5)
    rupture = rng.random() < 0.10
    r_at, dip, persist = rng.randint(3, max(3, n)), rng.uniform(3, 12), rng.random() < 0.3
    gradual = not rupture and rng.random() < 0.04
    g_at, g_len, g_fall = rng.randint(2, max(2, n - 3)), rng.randint(4, 6), rng.uniform(4, 8)
    srs = []
    for t in range(1, n + 1):
        mu = min(40.0, level + 0.15 * (t - 1))
        if gradual and t > g_at:
            mu -= g_fall * min(1.0, (t - g_at) / g_len)
        if rupture and t == r_at:
            mu -= dip
        elif rupture and persist and t > r_at:
            mu -= dip / 2
        srs.append(round(_clip(rng.gauss(mu, 0.8), 0, 40), 1))
    u = rng.random()
    frac = rng.uniform(0.35, 0.8) if u < 0.60 else rng.uniform(0.0, 0.3) if u < 0.85 else 0.0
    deteriorates = u >= 0.94
    worse = rng.uniform(4, 10)
    horizon = math.log(max(n, 2))
    out: list[float] = []
    if rng.random() < 0.5:
        y0 = _clip(rng.gauss(15, 5), 0, 27)
        for t in range(1, n + 1):
            f = math.log(t) / horizon
            mu = y0 - frac * y0 * f + (worse * f if deteriorates else 0)
            out.append(float(round(_clip(rng.gauss(mu, 2.0), 0, 27))))
        return srs, "PHQ-9", out
    y0 = _clip(rng.gauss(19, 7), 0, 40)
    for t in range(1, n + 1):
        f = math.log(t) / horizon
        mu = y0 + frac * (40 - y0) * f - (worse * f if deteriorates else 0)
        out.append(round(_clip(rng.gauss(mu, 2.5), 0, 40), 1))
    return srs, "ORS", out


def visual_items(rng: random.Random, total: float) -> dict[str, float]:
    """Four 0–10 one-decimal items summing to ``total`` (SRS, ORS)."""
    tenths = round(total * 10)
    q, r = divmod(tenths, 4)
    items = [q + (1 if i < r else 0) for i in range(4)]
    for _ in range(2):
        i, j, d = rng.randrange(4), rng.randrange(4), rng.randint(0, 3)
        if i != j and items[i] - d >= 0 and items[j] + d <= 100:
            items[i] -= d
            items[j] += d
    return {str(k + 1): v / 10 for k, v in enumerate(items)}


def phq9_items(rng: random.Random, total: int) -> dict[str, int | None]:
    """Nine 0–3 items summing to ``total``, item 9 endorsed more often at higher totals."""
    p9 = 0.02 + 0.25 * max(0, total - 10) / 17
    item9 = 1 if total > 0 and rng.random() < p9 else 0
    item9 = max(item9, total - 24)
    rest = total - item9
    items = [0] * 8
    order = list(range(8))
    rng.shuffle(order)
    k = 0
    while rest > 0:
        i = order[k % 8]
        if items[i] < 3:
            items[i] += 1
            rest -= 1
        k += 1
    answers: dict[str, int | None] = {str(i + 1): v for i, v in enumerate(items)}
    answers["9"] = item9
    u = rng.random()
    if u < 0.003:
        del answers["9"]
    elif u < 0.013:
        del answers[str(rng.randint(1, 8))]
    return answers


def generate(path: Path, sessions: int, seed: int = 2025) -> dict[str, int]:
    """Write a time-ordered history of exactly ``sessions`` distinct sessions to ``path``."""
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    clients: list[tuple[str, str, list[float], str, list[float]]] = []
    total = 0
    k = 0
    while total < sessions:
        n = min(rng.randint(3, 13), sessions - total)
        srs, outcome, values = client_series(rng, n)
        clinic = f"clinic-{k % 20:02d}"
        clients.append((clinic, f"c{k:07d}", srs, outcome, values))
        total += n
        k += 1
    t0 = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
    lines = dupes = 0
    with path.open("w", encoding="utf-8") as fh:
        for week in range(13):
            when = (t0 + timedelta(weeks=week)).isoformat()
            for clinic, client, srs, outcome, values in clients:
                if week >= len(srs):
                    continue
                answers = (
                    phq9_items(rng, int(values[week]))
                    if outcome == "PHQ-9"
                    else visual_items(rng, values[week])
                )
                line = json.dumps(
                    {
                        "clinic": clinic,
                        "client": client,
                        "clinician": f"t{int(client[1:]) % 200:03d}",
                        "episode": "e1",
                        "session": week + 1,
                        "time": when,
                        "surveys": [
                            {"instrument": "SRS", "answers": visual_items(rng, srs[week])},
                            {"instrument": outcome, "answers": answers},
                        ],
                    },
                    separators=(",", ":"),
                )
                fh.write(line + "\n")
                lines += 1
                if rng.random() < 0.002:
                    fh.write(line + "\n")
                    lines += 1
                    dupes += 1
    return {"clients": len(clients), "sessions": total, "lines": lines, "redelivered_lines": dupes}


def baseline(path: Path) -> float:
    """Seconds to read the file and ``json.loads`` every line."""
    started = time.perf_counter()
    loads = json.loads
    with path.open("rb") as fh:
        for raw in fh:
            loads(raw)
    return time.perf_counter() - started


def run_backtest(path: Path, extra: list[str]) -> tuple[float, dict[str, object]]:
    """Seconds of ``rapport backtest`` as a subprocess, and its JSON report."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    entry = "import sys; from shared.cli import main; sys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", entry, "backtest", str(path), "--no-progress", "--json", *extra]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, check=False)  # noqa: S603
    elapsed = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"backtest failed with exit code {proc.returncode}")
    report: dict[str, object] = json.loads(proc.stdout)
    return elapsed, report


def main() -> int:
    """Generate, time, report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--sessions", type=int, default=1_000_000)
    ap.add_argument("--file", type=Path, default=Path("/tmp/rapport-bench-history.jsonl"))  # noqa: S108
    ap.add_argument("--regenerate", action="store_true", help="Rewrite the history even if it exists.")
    ap.add_argument("--out", type=Path, default=REPO / "bench-results" / "backtest.json")
    args = ap.parse_args()

    meta_path = args.file.with_suffix(".meta.json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() and not args.regenerate else None
    if meta is None or meta.get("sessions") != args.sessions or not args.file.exists():
        started = time.perf_counter()
        meta = {
            **generate(args.file, args.sessions),
            "generate_seconds": round(time.perf_counter() - started, 2),
        }
        meta_path.write_text(json.dumps(meta))
    size = args.file.stat().st_size

    base_s = baseline(args.file)
    bt_s, report = run_backtest(args.file, [])
    sessions = int(meta["sessions"])
    a = report["A"]
    assert isinstance(a, dict)  # noqa: S101 - the report's shape
    result = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "history": {**meta, "bytes": size},
        "baseline_read_json_seconds": round(base_s, 3),
        "baseline_sessions_per_second": round(sessions / base_s),
        "backtest_seconds": round(bt_s, 3),
        "backtest_sessions_per_second": round(sessions / bt_s),
        "backtest_vs_baseline": round(bt_s / base_s, 2),
        "target_seconds": TARGET_SECONDS,
        "meets_target": bt_s <= TARGET_SECONDS,
        "flagged_share": a["flagged_share"],
        "critical_item_share": a["critical_item"]["share"],
        "rules": a["rules"],
    }
    print(f"history: {sessions:,} sessions, {meta['clients']:,} clients, {size / 1e6:.0f} MB ({args.file})")
    print(f"baseline (read + json.loads): {base_s:6.1f} s  {sessions / base_s:>10,.0f} sessions/s")
    print(
        f"rapport backtest:             {bt_s:6.1f} s  {sessions / bt_s:>10,.0f} sessions/s  "
        f"({bt_s / base_s:.1f}x baseline; target <= {TARGET_SECONDS:.0f} s: "
        f"{'met' if bt_s <= TARGET_SECONDS else 'MISSED'})"
    )
    print(
        f"flagged (>= moderate, excl. critical items): {100 * float(a['flagged_share']):.1f}% of clients; "
        f"critical items: {100 * float(a['critical_item']['share']):.1f}%"
    )
    for r in a["rules"]:
        print(
            f"  {r['rule']:32} {r['severity']:9} {r['signals']:>9,} signals  "
            f"{100 * r['share']:5.1f}% of clients"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
