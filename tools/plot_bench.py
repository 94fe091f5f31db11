#!/usr/bin/env python3
"""Plots qreduce_bench results: latency vs size per algorithm, and speedup over NCCL vs size.
   plot_bench.py RESULTS.json [OUT_DIR] [--with OTHER.json ...]
   (needs matplotlib; says so and exits 0 without it). --with adds another run's rows in the same
   format, e.g. python/bench/symm_mem.py's PyTorch symmetric-memory baseline; their speedup over
   NCCL is taken against RESULTS.json's NCCL times."""
import json, os, sys

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
            key = r["algorithm"] if r["algorithm"] in ("nccl", "oneshot") or r["algorithm"].startswith("torch") else f"{r['algorithm']}/{r['codec']}"
            series.setdefault(key, []).append((r["bytes"], r["median_us"], r["speedup_vs_nccl"]))
        fig, ax = plt.subplots(1, 2, figsize=(14, 5.5))
        for key, pts in sorted(series.items()):
            pts.sort()
            style = "k-" if key == "nccl" else ("--" if key.startswith("auto") else (":" if key.startswith("torch") else "-"))
            ax[0].plot([p[0] for p in pts], [p[1] for p in pts], style, marker=".", label=key)
            if key != "nccl" and any(p[2] > 0 for p in pts):
                ax[1].plot([p[0] for p in pts], [p[2] for p in pts], style, marker=".", label=key)
        ax[0].set(xscale="log", yscale="log", xlabel="message size (bytes)", ylabel="latency (us, median)", title=f"{dtype} latency")
        ax[1].axhline(1.0, color="k", lw=0.8)
        ax[1].set(xscale="log", xlabel="message size (bytes)", ylabel="speedup over NCCL", title=f"{dtype} speedup over NCCL")
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
