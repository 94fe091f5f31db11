"""A communicator with the interface of vLLM's QuickReduce communicator (`should_use`, `all_reduce`),
configured from the environment (qreduce.config.EnvConfig), so that an engine can swap it in:

    qr = QuickReduceCommunicator(group, device)
    if qr.should_use(x):
        x = qr.all_reduce(x)
    else:
        dist.all_reduce(x, group=group)
"""
from typing import Optional

from .config import EnvConfig

_DTYPES = ("torch.float16", "torch.bfloat16")


def _torch_gather(group):
    """An all-gather of one Python object per rank over `group`, or None without torch.distributed
    (then there are no peers to agree with)."""
    try:
        import torch.distributed as dist
    except ImportError:
        return None
    if not dist.is_available() or not dist.is_initialized():
        return None

    def gather(obj):
        out = [None] * dist.get_world_size(group)
        dist.all_gather_object(out, obj, group=group)
        return out
    return gather


def _torch_factory(group, device):
    """What creating a qreduce communicator needs on this rank, checked before any collective (the
    extension imports, the group's size, the device): returns the function that creates it
    (collectively)."""
    from .torch import Communicator
    return Communicator.prepare(group, device)


class QuickReduceCommunicator:
    """Created on every rank of `group` together, and disabled on every rank together: a rank that
    cannot create it (no extension, an unsupported world size, no GPU, a failed allocation) disables
    it on all ranks, whose `disabled_reason` names that rank, instead of leaving them waiting in a
    collective it never joins."""

    def __init__(self, group, device, config: Optional[EnvConfig] = None, comm=None, *, _gather=None, _factory=None):
        self.comm = comm
        error = None
        try:
            self.config = config or EnvConfig.from_env()
        except ValueError as e:  # a malformed variable on this rank: every rank learns it in the vote
            self.config, error = EnvConfig.from_env({"QREDUCE_DISABLE": "1"}), f"ValueError: {e}"
        if error is None and self.config.disabled:
            error = "QREDUCE_DISABLE=1"
        if self.comm is not None:  # given: nothing to create or agree on
            self.disabled, self.disabled_reason = error is not None, error
            return
        gather = _gather if _gather is not None else _torch_gather(group)
        factory = _factory or _torch_factory
        self.disabled_reason = self._create(group, device, gather, factory, error)
        self.disabled = self.disabled_reason is not None

    def _create(self, group, device, gather, factory, error):
        """Two votes over the group: on what each rank can check alone (its configuration, the
        extension, the group's size, the device), then on the creation itself (collective). Returns
        why qreduce is disabled, or None."""
        def vote(error):
            if gather is None:  # no peers to agree with
                return error
            for rank, theirs in enumerate(gather(error)):
                if theirs is not None:
                    return f"rank {rank}: {theirs}"
            return None

        create = None
        if error is None:
            try:
                create = factory(group, device)
            except Exception as e:  # whatever stops this rank stops every rank: the vote below
                error = f"{type(e).__name__}: {e}"
        reason = vote(error)
        if reason is not None:
            return reason
        try:
            self.comm = create()
        except Exception as e:  # whatever stops this rank stops every rank: the vote below
            error = f"{type(e).__name__}: {e}"
        reason = vote(error)
        if reason is not None and self.comm is not None:
            self.comm.close()
            self.comm = None
        return reason

    def should_use(self, tensor) -> bool:
        """True when qreduce takes this tensor: fp16/bf16, contiguous, on the communicator's device,
        16-byte aligned, and a size inside the configured window."""
        if self.disabled or self.comm is None:
            return False
        if str(tensor.dtype) not in _DTYPES or not tensor.is_contiguous():
            return False
        if getattr(tensor, "device", None) != self.comm.device:
            return False
        if tensor.data_ptr() % 16 != 0:
            return False
        return self.config.accepts(tensor.numel() * tensor.element_size())

    def all_reduce(self, tensor, out=None):
        return self.comm.all_reduce(tensor, codec=self.config.codec, rotate=self.config.rotate, out=out)

    def close(self):
        if self.comm is not None:
            self.comm.close()
