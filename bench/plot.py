#!/usr/bin/python3
"""Draws bench/'s PNGs from one batchjac_bench JSON output.

- ratios.png: for every workload, the call and engine medians as ratios to
  the analytic median of the same workload and thread count (bars; 1 would
  be as fast as the hand-written Jacobian), one panel per thread count.
  "call" is the row batchjac/call (the whole user call), "engine" the row
  batchjac/automatic (the Jacobian alone, into a kept buffer).
- w2_sweep.png: W2 f64's examples/s against batch size, one panel per
  thread count, for the analytic baseline and the batchjac modes run.

Medians: the median aggregate when the run had repetitions, else the median
of the runs. The one command (bench/README.md, "Plots"):

    ./build/release/bench/batchjac_bench \\
        --benchmark_filter='/(analytic|batchjac/automatic|batchjac/call)/t:' \\
        --benchmark_repetitions=5 --benchmark_out=plots.json --benchmark_out_format=json
    /usr/bin/python3 bench/plot.py plots.json --out-dir bench
"""
import argparse
import collections
import json
import os
import re
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# "W2 f64/batchjac/call/t:2", "W2 f64 sweep/b:4096/analytic/t:1" (bench_workloads.cpp's names)
NAME = re.compile(r"^(?P<workload>[^/]+?)(?: sweep/b:(?P<batch>\d+))?/(?P<mode>.+)/t:(?P<threads>\d+)$")
# Rows of the harness that are not workloads.
NOT_WORKLOADS = ("seed", "machine", "W2 f64 options")
STYLE = {
    "analytic": dict(color="black", marker="o", label="analytic (hand-written)"),
    "batchjac/automatic": dict(color="tab:green", marker="s", label="batchjac automatic"),
    "batchjac/forward": dict(color="tab:blue", marker="^", label="batchjac forward"),
    "batchjac/reverse": dict(color="tab:red", marker="v", label="batchjac reverse"),
}
SCALE = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def load(path):
    """{(workload, batch or None, mode, threads): median seconds per iteration}"""
    with open(path) as f:
        benchmarks = json.load(f)["benchmarks"]
    medians, samples = {}, collections.defaultdict(list)
    for entry in benchmarks:
        name = entry["run_name"]
        if name.endswith("/real_time"):
            name = name[: -len("/real_time")]
        match = NAME.match(name)
        if not match or entry.get("error_occurred"):
            continue
        batch = int(match["batch"]) if match["batch"] else None
        key = (match["workload"], batch, match["mode"], int(match["threads"]))
        seconds = entry["real_time"] * SCALE[entry["time_unit"]]
        if entry.get("run_type") == "aggregate":
            if entry.get("aggregate_name") == "median":
                medians[key] = seconds
        else:
            samples[key].append(seconds)
    for key, runs in samples.items():
        medians.setdefault(key, statistics.median(runs))
    return medians


def plot_ratios(medians, output):
    """Bars of call / analytic and engine / analytic per workload, a panel per thread count."""
    threads = sorted({k[3] for k in medians if k[1] is None and k[0] not in NOT_WORKLOADS})
    workloads = []
    for (workload, batch, mode, _t) in medians:
        if batch is None and workload not in NOT_WORKLOADS and mode == "analytic" and workload not in workloads:
            workloads.append(workload)
    if not workloads:
        return False
    # Registration order of the harness, as in its summary table.
    workloads.sort(key=lambda w: (int(re.match(r"W(\d+)", w).group(1)) if re.match(r"W\d+", w) else 99, w))
    fig, axes = plt.subplots(len(threads), 1, figsize=(max(8, 0.9 * len(workloads)), 4 * len(threads)),
                             squeeze=False)
    width = 0.38
    for ax, t in zip(axes[:, 0], threads):
        for i, (row, label, color) in enumerate([("batchjac/call", "call", "tab:orange"),
                                                 ("batchjac/automatic", "engine", "tab:green")]):
            xs, ys = [], []
            for j, w in enumerate(workloads):
                base = medians.get((w, None, "analytic", t))
                value = medians.get((w, None, row, t))
                if base and value:
                    xs.append(j + (i - 0.5) * width)
                    ys.append(value / base)
            bars = ax.bar(xs, ys, width, label=label, color=color)
            ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")  # W10's tens beside ratios near 1
        ax.set_xticks(range(len(workloads)))
        ax.set_xticklabels(workloads, rotation=30, ha="right")
        ax.set_ylabel("median / analytic median (log)")
        ax.set_title(f"batchjac against hand-written Jacobians, {t} thread{'s' if t > 1 else ''} (lower is better)")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    return True


def plot_sweep(medians, output):
    """Examples/s against batch size for the sweep rows, a panel per thread count."""
    series = collections.defaultdict(lambda: collections.defaultdict(dict))
    for (workload, batch, mode, t), seconds in medians.items():
        if batch is not None:
            series[(workload, t)][mode][batch] = batch / seconds
    if not series:
        return False
    panels = sorted(series)
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (workload, t) in zip(axes[0], panels):
        for mode, points in sorted(series[(workload, t)].items()):
            batches = sorted(points)
            ax.plot(batches, [points[b] for b in batches], **STYLE.get(mode, dict(label=mode)))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size b")
        ax.set_ylabel("examples / s (median)")
        ax.set_title(f"{workload} mlp Jacobian, {t} thread{'s' if t > 1 else ''}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="Google Benchmark JSON (--benchmark_out_format=json)")
    parser.add_argument("--out-dir", default=".", help="where ratios.png and w2_sweep.png go")
    args = parser.parse_args()
    medians = load(args.json)
    wrote = []
    for name, plot in (("ratios.png", plot_ratios), ("w2_sweep.png", plot_sweep)):
        path = os.path.join(args.out_dir, name)
        if plot(medians, path):
            wrote.append(path)
        else:
            print(f"{args.json}: no rows for {name}", file=sys.stderr)
    if not wrote:
        sys.exit(1)
    print("wrote " + ", ".join(wrote))


if __name__ == "__main__":
    main()
