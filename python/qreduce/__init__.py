"""qreduce: quantized all-reduce for tensor parallelism (PyTorch binding).

    import torch.distributed as dist
    from qreduce.torch import Communicator
    comm = Communicator(dist.group.WORLD)          # handles exchanged through the group
    y = comm.all_reduce(x, codec="fp4")             # x: a contiguous fp16/bf16 CUDA tensor

`qreduce.vllm.QuickReduceCommunicator` has the interface of vLLM's QuickReduce communicator.
"""
from .config import CODECS, ALGORITHMS, codec_id, algorithm_id, EnvConfig

__all__ = ["CODECS", "ALGORITHMS", "codec_id", "algorithm_id", "EnvConfig"]
