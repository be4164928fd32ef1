"""Benchmark: `pvwatch signals` (full OUT.csv with the EBGM fit) against vigipy's GPS on the same report set.

Synthetic report sets with the skew of real spontaneous reporting: 5,000 products and 2,000 events with Zipf-like
popularity, 1 + Poisson(0.6) products and 1 + Poisson(1.9) events per report (about 4.6 rows per report, as the
peers' benchmark in /work/shared/notes/signal-peers.md), each product with its own profile of 30 events (40% of
a report's events come from it: relative reporting ratios vary, as in real data; without it the null pairs are
exactly Poisson and every prior fit degenerates), and 300 injected product-event associations, so most pairs
are rare and a few are real signals. Each tool runs in its own child process, one after the other, so its
wall time and peak memory (ru_maxrss) are its own. Both fitted priors are then scored on the same likelihood
(openEBGM's zero-truncated form over distinct-report counts), so "better or equal likelihood" is one comparison.

    .venv/bin/python bench/bench_signals.py --reports 1000000          # pvwatch and vigipy (pip install .[bench])
    .venv/bin/python bench/bench_signals.py --reports 10000000 --skip-vigipy

Prints the figures and the ratio vigipy time / pvwatch time measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np

PRODUCTS, EVENTS, INJECTED, PROFILE = 5_000, 2_000, 300, 30


def zipf_weights(size: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, size + 1) ** exponent
    return weights / weights.sum()


def generate(path: Path, reports: int, seed: int) -> None:
    """Write the synthetic report set as report_id,product,event rows (one per product x event of a report)."""
    rng = np.random.default_rng(seed)
    k = 1 + rng.poisson(0.6, reports)
    m = 1 + rng.poisson(1.9, reports)
    products = rng.choice(PRODUCTS, size=int(k.sum()), p=zipf_weights(PRODUCTS, 1.1)).astype(np.int32)
    events = rng.choice(EVENTS, size=int(m.sum()), p=zipf_weights(EVENTS, 1.0)).astype(np.int32)
    product_start = np.concatenate([[0], np.cumsum(k)[:-1]])
    event_start = np.concatenate([[0], np.cumsum(m)[:-1]])
    # products have event profiles (a drug's own adverse-reaction spectrum): 40% of a report's events come from
    # its first product's 30 profile events, which makes relative reporting ratios vary as in real data
    profiles = rng.choice(EVENTS, size=(PRODUCTS, PROFILE), p=zipf_weights(EVENTS, 1.0)).astype(np.int32)
    report_of_event = np.repeat(np.arange(reports), m)
    from_profile = rng.random(events.size) < 0.4
    owner = products[product_start][report_of_event[from_profile]]
    events[from_profile] = profiles[owner, rng.integers(0, PROFILE, int(from_profile.sum()))]
    # injected associations: a report with product P gets event E_P (replacing its first event) with prob. 0.3
    signal_products = rng.choice(PRODUCTS, size=INJECTED, replace=False)
    signal_event = dict(zip(signal_products.tolist(), rng.choice(EVENTS, size=INJECTED).tolist(), strict=True))
    first_product = products[product_start]
    lucky = np.isin(first_product, signal_products) & (rng.random(reports) < 0.3)
    events[event_start[lucky]] = np.array([signal_event[p] for p in first_product[lucky].tolist()], dtype=np.int32)
    rows_per_report = k * m
    report = np.repeat(np.arange(reports, dtype=np.int64), rows_per_report)
    offset = np.arange(int(rows_per_report.sum()), dtype=np.int64) - np.repeat(
        np.concatenate([[0], np.cumsum(rows_per_report)[:-1]]), rows_per_report)
    m_of_row = np.repeat(m, rows_per_report)
    rows = {
        "report": report,
        "product": products[np.repeat(product_start, rows_per_report) + offset // m_of_row],
        "event": events[np.repeat(event_start, rows_per_report) + offset % m_of_row],
    }
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.register("rows", rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    con.execute(f"""COPY (SELECT 'R' || report AS report_id, 'P' || product AS product, 'E' || event AS event
                 FROM rows) TO '{path}' (HEADER)""")


def child_pvwatch(csv_path: Path, workdir: Path) -> dict[str, object]:
    from click.testing import CliRunner

    from pvwatch.cli import cli

    started = time.perf_counter()
    result = CliRunner().invoke(cli, ["signals", "--reports", str(csv_path), "--out", str(workdir / "pvwatch.csv"),
                                      "--hyperparameters-out", str(workdir / "pvwatch-hyper.json")],
                                catch_exceptions=False)
    seconds = time.perf_counter() - started
    if result.exit_code != 0:
        raise SystemExit(result.output)
    hyper = json.loads((workdir / "pvwatch-hyper.json").read_text())
    return {"seconds": seconds, "prior": [hyper[k] for k in ("alpha1", "beta1", "alpha2", "beta2", "p")],
            "output": [line for line in result.output.strip().splitlines() if "%|" not in line]}  # no progress bars


def child_vigipy(csv_path: Path, workdir: Path) -> dict[str, object]:
    import pandas as pd
    from vigipy import convert, gps

    started = time.perf_counter()
    rows = pd.read_csv(csv_path).drop_duplicates()
    pairs = rows.groupby(["product", "event"]).size().reset_index(name="count")
    container = convert(pairs, product_label="product", ae_label="event", count_label="count")
    counted = time.perf_counter()
    result = gps(container, min_events=1, decision_metric="signals", decision_thres=2.0)
    fitted = time.perf_counter()
    result.all_signals.to_csv(workdir / "vigipy.csv", index=False)
    finished = time.perf_counter()
    params = result.params or {}
    return {"seconds": finished - started, "count_seconds": counted - started, "gps_seconds": fitted - counted,
            "prior": [float(x) for x in params.get("prior_param", [])],
            "convergence": str(params.get("convergence"))}


def run_child(tool: str, csv_path: Path, workdir: Path) -> dict[str, object]:
    """One tool in its own process; the machine's load average (1 min) before and after goes with its figures."""
    load_before = os.getloadavg()[0]
    completed = subprocess.run([sys.executable, __file__, "--child", tool, "--csv", str(csv_path),
                                "--workdir", str(workdir)], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"{tool} failed:\n{completed.stderr[-3000:]}")
    result = dict(json.loads(completed.stdout.strip().splitlines()[-1]))
    result["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return result


def likelihoods(csv_path: Path, priors: dict[str, list[float]]) -> dict[str, float]:
    """Both priors on one objective: openEBGM's zero-truncated likelihood over distinct-report counts."""
    from pvwatch.domain.signals.ebgm_fit import WeightedPoints, negative_log_likelihood
    from pvwatch.store.signals import count_pairs, load_reports_csv

    con = duckdb.connect()
    count_pairs(con, load_reports_csv(con, csv_path))
    keys = con.execute("SELECT a, expected, count(*) AS w FROM signal_pairs GROUP BY ALL").fetchnumpy()
    points = WeightedPoints(keys["a"].astype(float), keys["expected"].astype(float), keys["w"].astype(float))
    return {tool: negative_log_likelihood(tuple(prior), points) for tool, prior in priors.items()  # type: ignore[arg-type]
            if len(prior) == 5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--workdir", type=Path, default=Path("var/bench-signals"))
    parser.add_argument("--skip-vigipy", action="store_true")
    parser.add_argument("--child", choices=["pvwatch", "vigipy"])
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args()
    if args.child:
        result = child_pvwatch(args.csv, args.workdir) if args.child == "pvwatch" else child_vigipy(args.csv,
                                                                                                    args.workdir)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        result["peak_rss_mb"] = usage.ru_maxrss / 1024
        result["cpu_seconds"] = usage.ru_utime + usage.ru_stime  # the machine is shared: CPU time is steadier
        print(json.dumps(result))
        return
    workdir = args.workdir / f"{args.reports}-{args.seed}"
    csv_path = workdir / "reports.csv"
    if not csv_path.exists():
        started = time.perf_counter()
        generate(csv_path, args.reports, args.seed)
        print(f"generated {csv_path} in {time.perf_counter() - started:.1f} s")
    rows = duckdb.connect().execute(f"SELECT count(*) FROM read_csv('{csv_path}')").fetchone()
    print(f"{args.reports:,} reports, {rows[0] if rows else 0:,} rows")
    results = {"pvwatch": run_child("pvwatch", csv_path, workdir)}
    print("pvwatch:", json.dumps(results["pvwatch"]))
    if not args.skip_vigipy:
        results["vigipy"] = run_child("vigipy", csv_path, workdir)
        print("vigipy: ", json.dumps(results["vigipy"]))
    neg_ll = likelihoods(csv_path, {tool: list(r["prior"]) for tool, r in results.items()})  # type: ignore[call-overload]
    for tool, value in neg_ll.items():
        print(f"{tool:8s} prior scored on openEBGM's likelihood (distinct reports): negative log-likelihood "
              f"{value:,.3f}")
    if "vigipy" in results:
        ours, theirs = results["pvwatch"], results["vigipy"]
        ratio = float(theirs["seconds"]) / float(ours["seconds"])  # type: ignore[arg-type]
        cpu_ratio = float(theirs["cpu_seconds"]) / float(ours["cpu_seconds"])  # type: ignore[arg-type]
        print(f"speed-up: {ratio:.1f}x wall (vigipy {theirs['seconds']:.1f} s, pvwatch {ours['seconds']:.1f} s), "
              f"{cpu_ratio:.1f}x CPU (vigipy {theirs['cpu_seconds']:.1f} s, pvwatch {ours['cpu_seconds']:.1f} s); "
              f"peak RSS vigipy {theirs['peak_rss_mb']:.0f} MB, pvwatch {ours['peak_rss_mb']:.0f} MB; "
              f"load average (1 min) before/after pvwatch {ours['load_average']}, vigipy {theirs['load_average']}")


if __name__ == "__main__":
    main()
