"""The PyTorch binding: a communicator over a torch.distributed process group, and the ops.

The ops are torch custom ops (torch.ops.qreduce.*) with fake implementations, so they can be
captured in CUDA graphs and traced by torch.compile."""
import pickle
from typing import Optional

import torch
import torch.distributed as dist

from . import _C  # noqa: F401  (registers torch.ops.qreduce)
from .config import OUTPUT_FORMATS, OUTPUT_SCALE_GROUPS, WORLDS, algorithm_id, codec_id


@torch.library.register_fake("qreduce::all_reduce")
def _all_reduce_fake(input, comm, codec, algorithm, rotate):
    return torch.empty_like(input)


@torch.library.register_fake("qreduce::all_reduce_out")
def _all_reduce_out_fake(input, out, comm, codec, algorithm, rotate):
    return None


@torch.library.register_fake("qreduce::all_reduce_rmsnorm")
def _all_reduce_rmsnorm_fake(x, residual, weight, eps, comm, codec, algorithm, rotate):
    return torch.empty_like(x)


@torch.library.register_fake("qreduce::all_reduce_rmsnorm_quant")
def _all_reduce_rmsnorm_quant_fake(x, residual, weight, eps, out_format, global_scale, comm, codec, algorithm, rotate):
    hidden = x.shape[-1]
    if out_format == OUTPUT_FORMATS["fp8"]:
        return x.new_empty(x.shape, dtype=torch.uint8), x.new_empty((*x.shape[:-1], 1), dtype=torch.float32)
    group = OUTPUT_SCALE_GROUPS[out_format]
    return (x.new_empty((*x.shape[:-1], hidden // 2), dtype=torch.uint8),
            x.new_empty((*x.shape[:-1], hidden // group), dtype=torch.uint8))


class Communicator:
    """A qreduce communicator for the ranks of `group` (2, 4 or 8), one GPU (or GPU share) each.

    The group only carries the creation-time all-gathers (any backend: gloo works, and is what ranks
    sharing one GPU must use since NCCL refuses them)."""

    def __init__(self, group: Optional[dist.ProcessGroup] = None, device: Optional[torch.device] = None,
                 max_blocks: int = 0, timeout_ms: int = 0):
        self._setup(group, device)
        self._connect(max_blocks, timeout_ms)

    @classmethod
    def prepare(cls, group: Optional[dist.ProcessGroup] = None, device: Optional[torch.device] = None,
                max_blocks: int = 0, timeout_ms: int = 0):
        """Checks what this rank can check alone (the group's size, the device; raises ValueError) and
        returns the function that creates the communicator, which every rank of the group must call
        together. Creation then fails on every rank alike, naming the rank that failed; a rank that
        fails here has not joined any collective, so its peers must learn it from it (the vLLM-style
        class votes on it) before they call the function."""
        self = cls.__new__(cls)
        self._setup(group, device)

        def create():
            self._connect(max_blocks, timeout_ms)
            return self
        return create

    def _setup(self, group, device):
        self.id = 0
        self.group = group or dist.group.WORLD
        self.rank = dist.get_rank(self.group)
        self.world = dist.get_world_size(self.group)
        if self.world not in WORLDS:
            raise ValueError(f"qreduce: the group has {self.world} ranks; qreduce runs {', '.join(map(str, WORLDS))}")
        self.device = torch.device(device) if device is not None else torch.device("cuda", torch.cuda.current_device())
        if self.device.type != "cuda":
            raise ValueError(f"qreduce: {self.device} is not a CUDA device")
        if self.device.index is None:  # "cuda": the current device, as torch means it
            self.device = torch.device("cuda", torch.cuda.current_device())
        if not 0 <= self.device.index < torch.cuda.device_count():
            raise ValueError(f"qreduce: {self.device} does not exist here ({torch.cuda.device_count()} CUDA devices)")

    def _connect(self, max_blocks, timeout_ms):
        def allgather(blob: bytes) -> bytes:
            out = [None] * self.world
            dist.all_gather_object(out, blob, group=self.group)
            return b"".join(out)

        self.id = _C.create(self.rank, self.world, self.device.index, allgather, max_blocks, timeout_ms)
        self.max_oneshot_bytes = _C.max_oneshot_bytes(self.id)

    def check(self):
        """Raises RuntimeError if a kernel of this communicator gave up (a peer did not arrive, the
        ranks' calls differ, a rank called abort()), naming the rank at fault. Reads host memory only:
        synchronize the stream first to learn about the last call. After it raises, close() and
        create a new communicator on every rank."""
        if not self.id:
            raise RuntimeError("qreduce: the communicator was closed")
        _C.check(self.id)

    def abort(self):
        """Stops this communicator's kernels on every rank, now (a watchdog that found a dead peer,
        or a shutdown that cannot wait): every rank's check() and next call then raise, naming this
        rank. Safe while calls are in flight; to go on, close() and create a new one on every rank."""
        if not self.id:
            raise RuntimeError("qreduce: the communicator was closed")
        _C.abort(self.id)

    def dead_peers(self) -> list:
        """The ranks whose processes have exited, as this host can tell (peers in this pid namespace
        of this boot), for a watchdog that then calls abort()."""
        if not self.id:
            raise RuntimeError("qreduce: the communicator was closed")
        return list(_C.dead_peers(self.id))

    def close(self):
        """Collective, like creation: every rank of the group calls it. It waits until every rank's
        calls have ended before freeing (a peer's kernel that gives up still writes this rank's
        workspace, to stop it)."""
        if self.id:
            torch.cuda.synchronize(self.device)
            dist.all_gather_object([None] * self.world, None, group=self.group)
            _C.destroy(self.id)
            self.id = 0

    def __del__(self):
        # Not collective (garbage collection runs on each rank at its own time): frees without waiting
        # for the peers; call close() on every rank first.
        try:
            if self.id:
                torch.cuda.synchronize(self.device)
                _C.destroy(self.id)
                self.id = 0
        except Exception:
            pass

    def _check(self, t: torch.Tensor, name: str):
        if not self.id:
            raise RuntimeError("qreduce: the communicator was closed")
        if t.device != self.device:
            raise ValueError(f"qreduce: {name} is on {t.device}, the communicator on {self.device}")
        if t.dtype not in (torch.float16, torch.bfloat16):
            raise TypeError(f"qreduce: {name} must be float16 or bfloat16, not {t.dtype}")
        if not t.is_contiguous():
            raise ValueError(f"qreduce: {name} must be contiguous")

    def all_reduce(self, x: torch.Tensor, codec: str = "none", algorithm: str = "auto", rotate: bool = False,
                   out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Sum of x over the ranks (a new tensor, or `out`, which may be x)."""
        self._check(x, "x")
        if out is None:
            return torch.ops.qreduce.all_reduce(x, self.id, codec_id(codec), algorithm_id(algorithm), rotate)
        self._check(out, "out")
        torch.ops.qreduce.all_reduce_out(x, out, self.id, codec_id(codec), algorithm_id(algorithm), rotate)
        return out

    def all_reduce_rmsnorm(self, x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6,
                           codec: str = "none", algorithm: str = "auto", rotate: bool = False) -> torch.Tensor:
        """residual += all_reduce(x) (in place); returns rmsnorm(residual) * weight."""
        for t, n in ((x, "x"), (residual, "residual"), (weight, "weight")):
            self._check(t, n)
        return torch.ops.qreduce.all_reduce_rmsnorm(x, residual, weight, eps, self.id, codec_id(codec),
                                                    algorithm_id(algorithm), rotate)

    def all_reduce_rmsnorm_quant(self, x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, out_format: str = "fp8",
                                 eps: float = 1e-6, global_scale: Optional[torch.Tensor] = None, codec: str = "none",
                                 algorithm: str = "auto", rotate: bool = False):
        """residual += all_reduce(x) (in place); returns rmsnorm(residual) * weight quantized for the next
        GEMM, as (codes, scales) uint8 tensors (float32 scales for fp8), layouts in epilogue/outputs.hpp:
          "fp8"    E4M3 codes (..., hidden), one float32 scale per row (..., 1)
          "mxfp4"  E2M1 codes two per byte (..., hidden/2), E8M0 scales (..., hidden/32)
          "nvfp4"  E2M1 codes (..., hidden/2), E4M3 scales (..., hidden/16) under global_scale (a
                   1-element float32 tensor, e.g. 448 * 6 / amax)"""
        for t, n in ((x, "x"), (residual, "residual"), (weight, "weight")):
            self._check(t, n)
        if out_format not in OUTPUT_FORMATS:
            raise ValueError(f"qreduce: out_format must be one of {sorted(OUTPUT_FORMATS)}, not {out_format!r}")
        return torch.ops.qreduce.all_reduce_rmsnorm_quant(x, residual, weight, eps, OUTPUT_FORMATS[out_format], global_scale,
                                                          self.id, codec_id(codec), algorithm_id(algorithm), rotate)
