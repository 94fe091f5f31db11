"""GPU test of the PyTorch binding (a machine with an NVIDIA GPU): N processes (default 2) share the visible GPUs,
meet through a gloo group, and check qreduce's ops against torch's sum:
  all_reduce (every codec, fp16/bf16, out of place and in place), all_reduce_rmsnorm, a CUDA graph
  capture with replays, torch.compile, the vLLM-style communicator, the error messages, and
  abort() / check() / dead_peers() with a new communicator after an abort.
Run: PYTHONPATH=python python3 python/tests/gpu_torch.py [N]"""
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

BOUND = {"none": 2e-2, "fp8": 0.08, "fp8_fnuz": 0.08, "int8": 0.03, "int6": 0.08, "int4": 0.3, "fp4": 0.3, "mxfp4": 0.35, "int4m": 0.25}


def run(rank, world, port, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.cuda.set_device(rank % torch.cuda.device_count())
    from qreduce.torch import Communicator
    from qreduce.vllm import QuickReduceCommunicator
    from qreduce.config import CODECS
    comm = Communicator(max_blocks=16, timeout_ms=60000)
    dev = comm.device
    fails = []

    def gather_sum(x):
        xs = [torch.empty_like(x.cpu()) for _ in range(world)]
        dist.all_gather(xs, x.cpu())
        return torch.stack([t.double() for t in xs]).sum(0), xs

    def same_on_all(t):
        bits = t.cpu().contiguous().view(torch.uint8).to(torch.int32)  # gloo gathers no int16 / uint8
        everyone = [torch.empty_like(bits) for _ in range(world)]
        dist.all_gather(everyone, bits)
        return all(torch.equal(b, everyone[0]) for b in everyone)

    def expect(cond, msg):
        if not cond:
            fails.append(f"rank {rank}: {msg}")

    torch.manual_seed(1234 + rank)
    for dtype in (torch.float16, torch.bfloat16):
        for codec in CODECS:
            x = torch.randn(300_001, device=dev, dtype=dtype)
            ref, _ = gather_sum(x)
            y = comm.all_reduce(x, codec=codec, algorithm="twoshot")
            err = ((y.double().cpu() - ref).norm() / ref.norm()).item()
            expect(err <= BOUND[codec], f"{codec}/{dtype}: rel. error {err:.3g} > {BOUND[codec]}")
            expect(same_on_all(y), f"{codec}/{dtype}: ranks differ")
            z = x.clone()
            comm.all_reduce(z, codec=codec, out=z)
            err = ((z.double().cpu() - ref).norm() / ref.norm()).item()
            expect(err <= BOUND[codec], f"{codec}/{dtype} in place: rel. error {err:.3g} > {BOUND[codec]}")
            expect(same_on_all(z), f"{codec}/{dtype} in place: ranks differ")

    # fused residual + RMSNorm
    x = torch.randn(16, 4096, device=dev, dtype=torch.bfloat16)
    residual = torch.randn(16, 4096, device="cpu", dtype=torch.bfloat16)  # the same on every rank
    dist.broadcast(residual, 0)
    residual = residual.to(dev)
    weight = (0.5 + torch.rand(4096, device="cpu")).to(torch.bfloat16)  # the same on every rank
    dist.broadcast(weight, 0)
    weight = weight.to(dev)
    w64 = weight.double().cpu()
    ref_sum, _ = gather_sum(x)
    r_ref = ref_sum + residual.double().cpu()
    y_ref = r_ref / torch.sqrt((r_ref * r_ref).mean(-1, keepdim=True) + 1e-6) * w64
    res_fused = residual.clone()
    y = comm.all_reduce_rmsnorm(x, res_fused, weight, eps=1e-6, codec="fp8")
    err = ((y.double().cpu() - y_ref).norm() / y_ref.norm()).item()
    expect(err < 0.05, f"all_reduce_rmsnorm: rel. error {err:.3g}")
    err = ((res_fused.double().cpu() - r_ref).norm() / r_ref.norm()).item()
    expect(err < 0.05, f"all_reduce_rmsnorm: the residual holds {err:.3g} rel. error against sum + residual")

    # the same with y quantized for the next GEMM: dequantize and compare with the fp64 RMSNorm
    e2m1 = torch.tensor([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], dtype=torch.float64)

    def fp4_values(q):
        q = q.cpu().long()
        return torch.stack((e2m1[q & 15], e2m1[q >> 4]), dim=-1).flatten(-2)

    global_scale = torch.tensor([448.0 * 6 / 8], device=dev, dtype=torch.float32)
    for fmt, bound in (("fp8", 0.05), ("mxfp4", 0.2), ("nvfp4", 0.15)):
        res = residual.clone()
        res_before = res.double().cpu()
        q, sc = comm.all_reduce_rmsnorm_quant(x, res, weight, fmt, eps=1e-6, global_scale=global_scale, codec="fp8")
        r2 = ref_sum + res_before
        y2 = r2 / torch.sqrt((r2 * r2).mean(-1, keepdim=True) + 1e-6) * w64
        err = ((res.double().cpu() - r2).norm() / r2.norm()).item()
        expect(err < 0.05, f"all_reduce_rmsnorm_quant {fmt}: the residual was not updated (rel. error {err:.3g})")
        if fmt == "fp8":
            deq = q.cpu().view(torch.float8_e4m3fn).double() * sc.cpu().double()
        elif fmt == "mxfp4":
            deq = fp4_values(q) * torch.pow(2.0, sc.cpu().double() - 127).repeat_interleave(32, dim=-1)
        else:
            s16 = sc.cpu().view(torch.float8_e4m3fn).double() / global_scale.cpu().double()
            deq = fp4_values(q) * s16.repeat_interleave(16, dim=-1)
        err = ((deq - y2).norm() / y2.norm()).item()
        expect(err < bound, f"all_reduce_rmsnorm_quant {fmt}: rel. error {err:.3g} > {bound}")
        expect(same_on_all(q), f"all_reduce_rmsnorm_quant {fmt}: codes differ between ranks")

    # CUDA graph: capture once, replay with fresh data
    static = torch.randn(8192, device=dev, dtype=torch.float16)
    stream = torch.cuda.Stream(device=dev)
    with torch.cuda.stream(stream):
        comm.all_reduce(static, out=static)  # warm-up outside capture
    torch.cuda.synchronize(dev)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, stream=stream):
        out = comm.all_reduce(static, codec="none")
    for step in range(5):
        static.copy_(torch.full_like(static, float(rank + step)))
        g.replay()
        torch.cuda.synchronize(dev)
        want = float(sum(range(world)) + world * step)
        expect(bool((out == want).all()), f"graph replay {step}: {out[0].item()} != {want}")

    # torch.compile
    f = torch.compile(lambda t: comm.all_reduce(t * 2, codec="int8") + 1, fullgraph=True)
    t = torch.ones(4096, device=dev, dtype=torch.bfloat16)
    r = f(t)
    torch.cuda.synchronize(dev)
    expect(bool((r == 2 * world + 1).all()), f"torch.compile: {r[0].item()}")

    # vLLM-style communicator
    qr = QuickReduceCommunicator(None, dev, comm=comm)
    t = torch.ones(1 << 16, device=dev, dtype=torch.float16)
    expect(qr.should_use(t), "should_use refused a plain fp16 tensor")
    expect(not qr.should_use(t.float()), "should_use took fp32")
    expect(bool((qr.all_reduce(t) == world).all()), "vLLM-style all_reduce")

    # errors
    for bad, what in ((torch.ones(64, device=dev), "fp32"), (torch.ones(64, 2, device=dev, dtype=torch.float16).t(), "non-contiguous"),
                      (torch.ones(64, dtype=torch.float16), "CPU tensor")):
        try:
            comm.all_reduce(bad)
            expect(False, f"{what} accepted")
        except (TypeError, ValueError, RuntimeError):
            pass
    expect(comm.dead_peers() == [], f"dead_peers() of a healthy group: {comm.dead_peers()}")
    comm.check()  # clean: no raise

    # abort() on rank 0 stops every rank: after a call (a rank whose kernels were idle learns of the
    # abort from its next kernel) and a synchronize, check() and the next call raise naming rank 0;
    # a new communicator works
    dist.barrier()
    if rank == 0:
        comm.abort()
    dist.barrier()
    ones = torch.ones(64, device=dev, dtype=torch.bfloat16)
    try:
        comm.all_reduce(ones)  # raises on rank 0; its kernel stops at entry elsewhere
    except RuntimeError:
        pass
    torch.cuda.synchronize(dev)
    for what, fn in (("check()", comm.check), ("a call", lambda: comm.all_reduce(ones))):
        try:
            fn()
            expect(False, f"{what} after rank 0's abort() raised nothing")
        except RuntimeError as e:
            expect("rank 0 aborted" in str(e), f"{what} after abort(): {e}")
    comm.close()
    comm = Communicator(max_blocks=16, timeout_ms=60000)
    t = torch.ones(4096, device=dev, dtype=torch.bfloat16)
    expect(bool((comm.all_reduce(t, codec="int8") == world).all()), "a new communicator after abort()")
    comm.close()
    results[rank] = fails
    dist.destroy_process_group()


if __name__ == "__main__":
    world = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    mgr = mp.Manager()
    results = mgr.dict()
    mp.spawn(run, args=(world, 29500 + os.getpid() % 1000, results), nprocs=world, join=True)
    fails = [f for r in range(world) for f in results.get(r, ["no result"])]
    for f in fails:
        print("FAIL", f)
    print(f"gpu_torch: {world} ranks: {'all checks passed' if not fails else f'{len(fails)} failed'}")
    sys.exit(1 if fails else 0)
