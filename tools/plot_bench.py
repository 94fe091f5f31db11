#!/usr/bin/env python3
"""Plots qreduce_bench results: latency vs size per algorithm, and speedup over NCCL vs size.
   plot_bench.py RESULTS.json [OUT_DIR] [--with OTHER.json ...]
   (needs matplotlib; says so and exits 0 without it). --with adds another run's rows in the same
   format, e.g. python/bench/symm_mem.py's PyTorch symmetric-memory baseline; their speedup over
   NCCL is taken against RESULTS.json's NCCL times."""
import json, os, sys

def right_panel(rows):
    """What the right-hand panel shows for one dtype's rows: the speedup over NCCL where NCCL ran
    (same run), else (ranks sharing a GPU: NCCL refuses them) the fraction of the model's limit each
    row reached. Returns (label, {series: [(bytes, value)]}) with only the series that have values."""
    has_nccl = any(r["algorithm"] == "nccl" for r in rows)
    label = "speedup over NCCL" if has_nccl else "fraction of the model's limit (NCCL not run: ranks share a GPU)"
    series = {}
    for r in rows:
        if r["algorithm"] == "nccl":
            continue
        if has_nccl:
            v = r.get("speedup_vs_nccl", 0.0)
        else:
            v = r["limit_us"] / r["median_us"] if r.get("limit_us", 0) > 0 and r["median_us"] > 0 else 0.0
        if v > 0:
            series.setdefault(series_key(r), []).append((r["bytes"], v))
    return label, series


def series_key(r):
    return r["algorithm"] if r["algorithm"] in ("nccl", "oneshot") or r["algorithm"].startswith("torch") else f"{r['algorithm']}/{r['codec']}"


def main():
    argv = sys.argv[1:]
    extra = []
    while "--with" in argv:
        i = argv.index("--with")
        if i + 1 >= len(argv):
            sys.exit(__doc__)
        extra.append(argv[i + 1])
        del argv[i:i + 2]
    if not argv:
        sys.exit(__doc__)
    data = json.load(open(argv[0]))
    out = argv[1] if len(argv) > 1 else os.path.dirname(os.path.abspath(argv[0]))
    os.makedirs(out, exist_ok=True)
    nccl = {(r["dtype"], r["bytes"]): r["median_us"] for r in data["results"] if r["algorithm"] == "nccl"}
    for path in extra:
        other = json.load(open(path))
        if other.get("world") != data.get("world"):
            print(f"plot_bench: {path} ran {other.get('world')} ranks, not {data.get('world')}: left out")
            continue
        for r in other["results"]:
            r = dict(r)
            base = nccl.get((r["dtype"], r["bytes"]))
            r["speedup_vs_nccl"] = base / r["median_us"] if base else 0.0
            data["results"].append(r)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot_bench: matplotlib not installed; no plots")
        return
    title = f"{data['machine']} x{data['gpus']}, {data['world']} ranks, {data['date']}"
    if not data.get("timings_meaningful", True):
        title += " (ranks share a GPU: timings meaningless)"
    stem = os.path.join(out, f"allreduce_w{data['world']}")
    for dtype in sorted({r["dtype"] for r in data["results"]}):
        rows = [r for r in data["results"] if r["dtype"] == dtype]
        series = {}
        for r in rows:
            series.setdefault(series_key(r), []).append((r["bytes"], r["median_us"], r.get("graph_us", 0.0)))
        label, right = right_panel(rows)
        fig, ax = plt.subplots(1, 2, figsize=(14, 5.5))
        style_of = lambda key: "k-" if key == "nccl" else ("--" if key.startswith("auto") else (":" if key.startswith("torch") else "-"))
        for key, pts in sorted(series.items()):
            pts.sort()
            line = ax[0].plot([p[0] for p in pts], [p[1] for p in pts], style_of(key), marker=".", label=key)[0]
            graph = [p for p in pts if p[2] > 0]
            if graph:  # the same calls replayed as a CUDA graph: same color, crosses
                ax[0].plot([p[0] for p in graph], [p[2] for p in graph], "x", color=line.get_color(), ms=4)
        for key, pts in sorted(right.items()):
            pts.sort()
            ax[1].plot([p[0] for p in pts], [p[1] for p in pts], style_of(key), marker=".", label=key)
        ax[0].set(xscale="log", yscale="log", xlabel="message size (bytes)", ylabel="latency (us, median; x: CUDA graph replay)",
                  title=f"{dtype} latency")
        ax[1].axhline(1.0, color="k", lw=0.8)
        ax[1].set(xscale="log", xlabel="message size (bytes)", ylabel=label.split(" (")[0], title=f"{dtype} {label}")
        for a in ax:
            a.grid(True, which="both", alpha=0.3)
        ax[0].legend(fontsize=7, ncol=2)
        fig.suptitle(title)
        fig.tight_layout()
        path = f"{stem}_{dtype}.png"
        fig.savefig(path, dpi=110)
        print(f"plot_bench: wrote {path}")

if __name__ == "__main__":
    main()
