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


class QuickReduceCommunicator:
    def __init__(self, group, device, config: Optional[EnvConfig] = None, comm=None):
        self.config = config or EnvConfig.from_env()
        self.disabled = self.config.disabled
        self.comm = comm
        if self.comm is None and not self.disabled:
            try:
                from .torch import Communicator
                self.comm = Communicator(group, device)
            except (ImportError, ValueError, RuntimeError):
                # no extension, an unsupported world size, or no GPU: stay out of the way
                self.disabled = True

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
