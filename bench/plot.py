#!/usr/bin/python3
"""Plots W2's batch-size sweep from batchjac_bench's JSON output.

Examples/s against batch size, one panel per thread count, for the analytic
baseline and batchjac's automatic, forward and reverse modes. Uses the median
aggregate when the run had repetitions, else the median of the runs.

    ./build/release/bench/batchjac_bench --benchmark_filter='W2 f64 sweep' \
        --benchmark_out=w2_sweep.json --benchmark_out_format=json
    /usr/bin/python3 bench/plot.py w2_sweep.json -o w2_sweep.png
"""
import argparse
import collections
import json
import re
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# "W2 f64 sweep/b:4096/batchjac/forward/t:2" (bench_workloads.cpp's names)
NAME = re.compile(r"^(?P<workload>W2 f\d\d) sweep/b:(?P<batch>\d+)/(?P<mode>[^/]+(?:/[^/]+)?)"
                  r"/t:(?P<threads>\d+)$")
STYLE = {
    "analytic": dict(color="black", marker="o", label="analytic (hand-written)"),
    "batchjac/automatic": dict(color="tab:green", marker="s", label="batchjac automatic"),
    "batchjac/forward": dict(color="tab:blue", marker="^", label="batchjac forward"),
    "batchjac/reverse": dict(color="tab:red", marker="v", label="batchjac reverse"),
}


def examples_per_second(entry, batch):
    if "examples/s" in entry:
        return entry["examples/s"]
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[entry["time_unit"]]
    return batch / (entry["real_time"] * scale)


def load(path):
    """{(workload, threads): {mode: {batch: examples/s}}}"""
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
        key = (match["workload"], int(match["threads"]), match["mode"], int(match["batch"]))
        rate = examples_per_second(entry, key[3])
        if entry.get("run_type") == "aggregate":
            if entry.get("aggregate_name") == "median":
                medians[key] = rate
        else:
            samples[key].append(rate)
    series = collections.defaultdict(lambda: collections.defaultdict(dict))
    for key in set(medians) | set(samples):
        workload, threads, mode, batch = key
        rate = medians.get(key) or statistics.median(samples[key])
        series[(workload, threads)][mode][batch] = rate
    return series


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="Google Benchmark JSON (--benchmark_out_format=json)")
    parser.add_argument("-o", "--output", default="w2_sweep.png", help="PNG to write")
    args = parser.parse_args()

    series = load(args.json)
    if not series:
        sys.exit(f"{args.json}: no 'W2 ... sweep' results (run with --benchmark_filter='sweep')")
    panels = sorted(series)
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (workload, threads) in zip(axes[0], panels):
        for mode, points in sorted(series[(workload, threads)].items()):
            batches = sorted(points)
            style = STYLE.get(mode, dict(label=mode))
            ax.plot(batches, [points[b] for b in batches], **style)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size b")
        ax.set_ylabel("examples / s (median)")
        ax.set_title(f"{workload} mlp Jacobian, {threads} thread{'s' if threads > 1 else ''}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
