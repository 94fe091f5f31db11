"""PyTorch symmetric-memory all-reduce, the unquantized custom all-reduce baseline beside qreduce_bench.

    python3 python/bench/symm_mem.py [--ranks N] [--sizes 4K,1M,...] [--max-size 1G] [--dtype bf16]
                                     [--iters 50] [--warmup 10] [--out build/bench]

One process per GPU (spawned here; --ranks N may ask for fewer, never more: PyTorch refuses ranks
that share a GPU, and the script then says so and exits 0). For
each size: torch.ops.symm_mem.one_shot_all_reduce (out of place) and two_shot_all_reduce_ (in place)
on a symmetric buffer, timed with CUDA events after warm-up (median, p10, p90 of the slowest rank),
algbw/busbw with nccl-tests' conventions, and each algorithm's result checked against the fp64 sum
of the ranks' inputs (random normal data, never zeros). Writes symm_mem_w{N}.csv and .json in the
format of qreduce_bench's JSON (algorithms "torch_one_shot" / "torch_two_shot"), which
tools/plot_bench.py draws beside qreduce's: plot_bench.py allreduce_wN.json OUT --with symm_mem_wN.json
NVLink multicast (multimem) is not used: leave TORCH_SYMM_MEM_DISABLE_MULTICAST=1 where it is set.
"""
import argparse
import json
import os
import socket
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def parse_size(s):
    s = s.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(float(s[:-1]) * mult[s[-1]]) if s[-1] in mult else int(s)


def rank_input(rank, n, dtype, device, seed):
    g = torch.Generator(device="cpu").manual_seed(seed * 1000 + rank)
    return torch.randn(n, generator=g).to(device=device, dtype=dtype)


def expected_sum(world, n, dtype, seed):
    acc = torch.zeros(n, dtype=torch.float64)
    for r in range(world):
        g = torch.Generator(device="cpu").manual_seed(seed * 1000 + r)
        acc += torch.randn(n, generator=g).to(dtype).double()
    return acc


def time_op(fn, iters, warmup):
    for _ in range(warmup):
        fn()
    start = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    stop = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
    for i in range(iters):
        start[i].record()
        fn()
        stop[i].record()
    torch.cuda.synchronize()
    ms = sorted(a.elapsed_time(b) for a, b in zip(start, stop))
    pick = lambda q: ms[min(len(ms) - 1, int(q * (len(ms) - 1) + 0.5))] * 1e3
    return pick(0.1), pick(0.5), pick(0.9)


def worker(rank, world, args, port, ngpu, results):
    import torch.distributed._symmetric_memory as symm_mem

    device = torch.device("cuda", rank % ngpu)
    torch.cuda.set_device(device)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    group = dist.group.WORLD
    dtype = DTYPES[args.dtype]
    elem = torch.finfo(dtype).bits // 8
    sizes = [s for s in args.sizes if s % elem == 0]
    max_n = max(sizes) // elem
    buf = symm_mem.empty(max_n, dtype=dtype, device=device)
    symm_mem.rendezvous(buf, group.group_name)
    rows = []
    for si, size in enumerate(sizes):
        n = size // elem
        x = rank_input(rank, n, dtype, device, si)
        want = expected_sum(world, n, dtype, si) if rank == 0 else None
        for name in ("torch_one_shot", "torch_two_shot"):
            view = buf[:n]
            if name == "torch_one_shot":
                view.copy_(x)
                dist.barrier()
                got = torch.ops.symm_mem.one_shot_all_reduce(view, "sum", group.group_name)
                fn = lambda: torch.ops.symm_mem.one_shot_all_reduce(view, "sum", group.group_name)
            else:
                view.copy_(x)
                dist.barrier()
                torch.ops.symm_mem.two_shot_all_reduce_(view, "sum", group.group_name)
                got = view.clone()
                # in place: each timed call sums the previous sums (world^k grows; 60 calls stay finite)
                fn = lambda: torch.ops.symm_mem.two_shot_all_reduce_(view, "sum", group.group_name)
            torch.cuda.synchronize()
            err = None
            if rank == 0:
                d = got.double().cpu() - want
                err = float(d.norm() / want.norm())
            dist.barrier()
            p10, p50, p90 = time_op(fn, args.iters, args.warmup)
            slowest = [None] * world
            dist.all_gather_object(slowest, (p10, p50, p90))
            p10, p50, p90 = max(s[0] for s in slowest), max(s[1] for s in slowest), max(s[2] for s in slowest)
            if rank == 0:
                algbw = size / (p50 * 1e-6) / 1e9
                row = {"dtype": args.dtype, "bytes": size, "algorithm": name, "ran": name, "codec": "none",
                       "median_us": p50, "p10_us": p10, "p90_us": p90, "algbw_GBps": algbw,
                       "busbw_GBps": algbw * 2 * (world - 1) / world, "rel_l2": err}
                rows.append(row)
                print(f"\r  {name:15s} {size:>11d} B  {p50:9.1f} us  busbw {row['busbw_GBps']:7.1f} GB/s  rel.L2 {err:.2e}",
                      flush=True)
    if rank == 0:
        results.put(rows)
    dist.barrier()
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, default=0)
    ap.add_argument("--sizes", type=str, default="")
    ap.add_argument("--max-size", type=str, default="1G")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--out", type=str, default="build/bench")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("symm_mem: no GPU visible; nothing to measure")
        return 0
    ngpu = torch.cuda.device_count()
    world = args.ranks or ngpu
    if world < 2:
        print("symm_mem: one GPU and no --ranks: an all-reduce needs 2 ranks or more")
        return 0
    if world > ngpu:
        # CUDASymmetricMemoryAllocator::rendezvous refuses allocations of several ranks on one device
        print(f"symm_mem: {world} ranks on {ngpu} GPU(s): PyTorch's symmetric memory refuses ranks that share a GPU; "
              "nothing to measure (run it with one GPU per rank)")
        return 0
    if args.sizes:
        args.sizes = [parse_size(s) for s in args.sizes.split(",")]
    else:
        top = parse_size(args.max_size)
        args.sizes = [1 << p for p in range(12, 41) if (1 << p) <= top]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    procs = [ctx.Process(target=worker, args=(r, world, args, port, ngpu, results)) for r in range(world)]
    t0 = time.time()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    if any(p.exitcode != 0 for p in procs) or results.empty():
        print("symm_mem: a rank failed (see above)", file=sys.stderr)
        return 1
    rows = results.get()
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, f"symm_mem_w{world}")
    doc = {"machine": torch.cuda.get_device_name(0), "gpus": min(world, ngpu), "world": world, "date": time.strftime("%Y-%m-%d"),
           "torch": torch.__version__, "timings_meaningful": world <= ngpu, "results": rows}
    with open(base + ".json", "w") as f:
        json.dump(doc, f, indent=1)
    with open(base + ".csv", "w") as f:
        keys = list(rows[0].keys())
        f.write(",".join(keys) + "\n")
        for r in rows:
            f.write(",".join(str(r[k]) for k in keys) + "\n")
    print(f"symm_mem: {len(rows)} configurations in {time.time() - t0:.0f} s; wrote {base}.json and .csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
