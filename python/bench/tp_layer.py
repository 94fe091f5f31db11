"""End-to-end tensor-parallel decoder layers with Llama-70B-like shapes, torch.distributed vs qreduce.

    PYTHONPATH=python python3 python/bench/tp_layer.py [--ranks N] [--layers L] [--time] [--out DIR]

Each rank holds 1/N of every weight (random, scaled to keep activations stable): attention with
column-parallel QKV (hidden 8192, 64 heads, 8 KV heads), causal SDPA, row-parallel output; MLP with
column-parallel gate/up (28672) and SiLU, row-parallel down. After each row-parallel linear comes an
all-reduce, then residual add + RMSNorm.

Accuracy (meaningful on any GPU count): a stack of L layers is run on the same inputs with the
all-reduce done in fp32 (the reference) and with qreduce's codecs (with and without rotation); the
final hidden state is compared (relative L2 error, cosine similarity). The residual stream carries a
few outlier channels like real LLM activations.

Timing (--time; meaningful only with one GPU per rank): prefill (1k-16k tokens) and decode-sized
(1-256 tokens) layer times (CUDA events, median of 10, the slowest rank's) with torch.distributed's all-reduce (NCCL)
and with qreduce, and the fraction of the layer spent in the all-reduce (against the same layer with
the all-reduce left out). Ranks sharing a GPU print the numbers with a warning.
"""
import argparse
import json
import os
import statistics
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

HIDDEN, FFN, HEADS, KV_HEADS = 8192, 28672, 64, 8
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from qreduce.config import ALWAYS_ROTATED, CODECS as ALL_CODECS  # noqa: E402

CODECS = [c for c in ALL_CODECS if c != "fp8_fnuz"]  # fp8_fnuz is fp8 with AMD's other exponent bias
TIMED_CODECS = ("none", "fp8", "int8", "fp4", "int4m")
TIMED_ITERS = 10  # layer calls timed (CUDA events, median) after 3 warm-up calls


def make_layer(world, rank, seed, device, dtype):
    g = torch.Generator(device="cpu").manual_seed(seed)
    hd = HIDDEN // HEADS

    def w(rows, cols, fan_in):
        return (torch.randn(rows, cols, generator=g) / fan_in ** 0.5).to(device, dtype)

    q_out, kv_out = HIDDEN // world, KV_HEADS * hd // world if KV_HEADS >= world else hd
    return {
        "wq": w(q_out, HIDDEN, HIDDEN), "wk": w(kv_out, HIDDEN, HIDDEN), "wv": w(kv_out, HIDDEN, HIDDEN),
        "wo": w(HIDDEN, q_out, HIDDEN), "wg": w(FFN // world, HIDDEN, HIDDEN), "wu": w(FFN // world, HIDDEN, HIDDEN),
        "wd": w(HIDDEN, FFN // world, FFN), "n1": torch.ones(HIDDEN, device=device, dtype=dtype),
        "n2": torch.ones(HIDDEN, device=device, dtype=dtype),
    }


def rmsnorm(x, w, eps=1e-5):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * w.float()).to(x.dtype)


def layer_forward(p, h, allreduce, world):
    """h: (tokens, hidden) residual stream; returns the new residual stream."""
    t = h.shape[0]
    hd = HIDDEN // HEADS
    x = rmsnorm(h, p["n1"])
    # (1, heads, tokens, head_dim): the 4-d layout the fused attention kernels take (a 3-d one falls
    # back to materialising the tokens x tokens scores)
    q = (x @ p["wq"].t()).view(t, -1, hd).transpose(0, 1).unsqueeze(0)
    k = (x @ p["wk"].t()).view(t, -1, hd).transpose(0, 1).unsqueeze(0)
    v = (x @ p["wv"].t()).view(t, -1, hd).transpose(0, 1).unsqueeze(0)
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    a = F.scaled_dot_product_attention(q, k, v, is_causal=True)[0].transpose(0, 1).reshape(t, -1)
    h = h + allreduce(a @ p["wo"].t())
    x = rmsnorm(h, p["n2"])
    m = F.silu(x @ p["wg"].t()) * (x @ p["wu"].t())
    return h + allreduce(m @ p["wd"].t())


def run(rank, world, args, port, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.cuda.set_device(rank % torch.cuda.device_count())
    shared = world > torch.cuda.device_count()
    # CUDA tensors go through NCCL (the baseline the timings compare with), CPU tensors (the fp32
    # reference) through gloo; NCCL refuses ranks that share a GPU, so they use gloo alone.
    dist.init_process_group("gloo" if shared else "cpu:gloo,cuda:nccl", rank=rank, world_size=world,
                            device_id=None if shared else torch.device("cuda", rank))
    device = torch.device("cuda", torch.cuda.current_device())
    from qreduce.torch import Communicator
    comm = Communicator(max_blocks=16 if shared else 0, timeout_ms=120000)
    dtype = torch.bfloat16
    layers = [make_layer(world, rank, 100 + 1000 * rank + i, device, dtype) for i in range(args.layers)]  # own shards

    def ref_allreduce(x):  # the reference: fp32 sum of the partials
        xs = [torch.empty_like(x, dtype=torch.float32, device="cpu") for _ in range(world)]
        dist.all_gather(xs, x.float().cpu())
        return torch.stack(xs).sum(0).to(device, x.dtype)

    out = {"accuracy": [], "timing": []}
    # accuracy: same input on every rank (the residual stream is replicated), outlier channels
    g = torch.Generator(device="cpu").manual_seed(7)
    h0 = torch.randn(args.tokens, HIDDEN, generator=g)
    h0[:, ::512] *= 30.0
    h0 = h0.to(device, dtype)
    with torch.no_grad():
        ref = h0
        for p in layers:
            ref = layer_forward(p, ref, ref_allreduce, world)
        for codec in CODECS:
            for rot in (False, True):
                if rot and codec == "none":
                    continue
                if codec in ALWAYS_ROTATED and not rot:
                    continue
                h = h0
                for p in layers:
                    h = layer_forward(p, h, lambda x: comm.all_reduce(x.contiguous(), codec=codec, algorithm="twoshot", rotate=rot), world)
                d = (h.float() - ref.float())
                rel = (d.norm() / ref.float().norm()).item()
                cos = F.cosine_similarity(h.float().flatten(), ref.float().flatten(), dim=0).item()
                out["accuracy"].append({"codec": codec, "rotate": rot, "layers": args.layers, "tokens": args.tokens,
                                        "rel_l2": rel, "cosine": cos})
        results[rank] = out  # the accuracy study stands even if the timing below fails
        if args.time:
            p = layers[0]
            baseline = "torch.distributed (gloo: ranks share a GPU)" if shared else "torch.distributed (NCCL)"
            for tokens in (1, 16, 64, 256, 1024, 2048, 4096, 8192) + (() if shared else (16384,)):
                x = torch.randn(tokens, HIDDEN, device=device, dtype=dtype)
                variants = [("no all-reduce", lambda y: y), (baseline, lambda y: (dist.all_reduce(y), y)[1])] + \
                           [(f"qreduce:{c}", lambda y, c=c: comm.all_reduce(y, codec=c)) for c in TIMED_CODECS]
                base = None
                for name, ar in variants:
                    for _ in range(3):
                        layer_forward(p, x, ar, world)
                    torch.cuda.synchronize()
                    dist.all_reduce(torch.zeros(1))  # a barrier (gloo): every rank starts its timed calls together
                    ev = [torch.cuda.Event(enable_timing=True) for _ in range(2 * TIMED_ITERS)]
                    for i in range(TIMED_ITERS):
                        ev[2 * i].record()
                        layer_forward(p, x, ar, world)
                        ev[2 * i + 1].record()
                    torch.cuda.synchronize()
                    ms = statistics.median(ev[2 * i].elapsed_time(ev[2 * i + 1]) for i in range(TIMED_ITERS))
                    slowest = torch.tensor([ms])  # the slowest rank's median (a CPU tensor: through gloo)
                    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
                    ms = slowest.item()
                    base = ms if base is None else base
                    # the all-reduce's share of the layer: what the layer costs beyond its local work
                    out["timing"].append({"tokens": tokens, "allreduce": name, "layer_ms": ms,
                                          "allreduce_fraction": max(0.0, 1.0 - base / ms)})
    comm.close()
    results[rank] = out
    dist.barrier()
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ranks", type=int, default=max(2, torch.cuda.device_count()))
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--time", action="store_true")
    ap.add_argument("--out", default="build/tp_layer")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("tp_layer: no GPU visible")
    mgr = mp.Manager()
    results = mgr.dict()
    try:
        mp.spawn(run, args=(args.ranks, args, 29600 + os.getpid() % 1000, results), nprocs=args.ranks, join=True)
    except Exception as e:  # report what finished
        print(f"tp_layer: a rank failed: {str(e).strip().splitlines()[-1]}")
        if 0 not in results:
            sys.exit(1)
    r0 = results[0]
    shared = args.ranks > torch.cuda.device_count()
    print(f"\n{args.ranks} ranks on {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}; "
          f"{args.layers} layers, {args.tokens} tokens, bf16; reference: fp32 all-reduce")
    print(f"{'codec':10} {'rotation':8} {'rel. L2':>10} {'cosine':>10}")
    for a in r0["accuracy"]:
        print(f"{a['codec']:10} {'yes' if a['rotate'] else 'no':8} {a['rel_l2']:10.3e} {a['cosine']:10.6f}")
    if r0["timing"]:
        if shared:
            print("WARNING: ranks share a GPU: the layer times below say nothing about multi-GPU speed")
        ref = {t["tokens"]: t["layer_ms"] for t in r0["timing"] if t["allreduce"].startswith("torch.distributed")}
        print(f"{'tokens':>6}  {'all-reduce':28} {'layer ms':>9}  {'all-reduce share':>16}  {'layer vs torch.distributed':>26}")
        for t in r0["timing"]:
            print(f"{t['tokens']:6d}  {t['allreduce']:28} {t['layer_ms']:9.3f}  {100 * t['allreduce_fraction']:15.1f}%  "
                  f"{ref[t['tokens']] / t['layer_ms']:25.2f}x")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"tp_layer_r{args.ranks}.json")
    with open(path, "w") as f:
        json.dump({"gpu": torch.cuda.get_device_name(0), "gpus": torch.cuda.device_count(), "ranks": args.ranks,
                   "timings_meaningful": not shared, **r0}, f, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
