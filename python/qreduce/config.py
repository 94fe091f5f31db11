"""Names, ids and environment knobs shared by the binding and the vLLM-style communicator.
Pure Python (no torch import), so it is tested anywhere."""
import os
from dataclasses import dataclass
from typing import Mapping, Optional

# The order is qreduce::codec_kind's (include/qreduce/codec/all.hpp).
CODECS = ("none", "fp8", "fp8_fnuz", "int8", "int6", "int4", "fp4", "mxfp4", "int4m")
# Codecs defined on rotated groups (qreduce::codec::always_rotated): rotate=True changes nothing for them.
ALWAYS_ROTATED = ("int8", "int4m")
# qreduce::all_worlds (include/qreduce/options.hpp): the world sizes qreduce runs.
WORLDS = (2, 4, 8)
# qreduce::algorithm_kind (include/qreduce/options.hpp); the fallback is chosen in Python.
ALGORITHMS = ("auto", "oneshot", "twoshot")
# The fused RMSNorm's quantized outputs, name -> id: qreduce::epilogue::norm_output_kind
# (include/qreduce/epilogue/outputs.hpp).
OUTPUT_FORMATS = {"fp8": 1, "mxfp4": 2, "nvfp4": 3}
# Values per scale of the FP4 outputs, by id: their `group` (fp8 has one scale a row).
OUTPUT_SCALE_GROUPS = {OUTPUT_FORMATS["mxfp4"]: 32, OUTPUT_FORMATS["nvfp4"]: 16}


def codec_id(name: str) -> int:
    try:
        return CODECS.index(name)
    except ValueError:
        raise ValueError(f"qreduce: unknown codec {name!r}; one of {', '.join(CODECS)}") from None


def algorithm_id(name: str) -> int:
    try:
        return ALGORITHMS.index(name)
    except ValueError:
        raise ValueError(f"qreduce: unknown algorithm {name!r}; one of {', '.join(ALGORITHMS)}") from None


def _size(env: Mapping[str, str], key: str, default: Optional[int]) -> Optional[int]:
    v = env.get(key)
    if v is None or v == "":
        return default
    try:
        n = int(v)
    except ValueError:
        raise ValueError(f"qreduce: {key}={v!r} is not an integer") from None
    if n < 0:
        raise ValueError(f"qreduce: {key} must be non-negative")
    return n


def _flag(env: Mapping[str, str], key: str) -> bool:
    v = env.get(key, "")
    if v in ("", "0"):
        return False
    if v == "1":
        return True
    raise ValueError(f"qreduce: {key}={v!r}: expected 0 or 1")


@dataclass(frozen=True)
class EnvConfig:
    """The vLLM-style knobs (docs/configuration.md):
    QREDUCE_CODEC           codec of the quantized path (default int8: the most accurate codec that the
                            performance model puts ahead of NCCL; int4m, the most accurate 4-bit one,
                            and the other 4-bit codecs are opt-in, docs/configuration.md); "none"
                            disables quantization
    QREDUCE_MIN_SIZE_BYTES  smallest message qreduce takes (default 0)
    QREDUCE_MAX_SIZE_MB     largest message qreduce takes, in MiB (default 2048; vLLM's cap idea)
    QREDUCE_ROTATE          1: Walsh-Hadamard rotation around every codec (default 0; int8 and int4m
                            always rotate)
    QREDUCE_DISABLE         1: should_use() is always False (default 0)
    """
    codec: str = "int8"
    min_size_bytes: int = 0
    max_size_bytes: int = 2048 << 20
    rotate: bool = False
    disabled: bool = False

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "EnvConfig":
        env = os.environ if env is None else env
        codec = env.get("QREDUCE_CODEC", "int8") or "int8"
        codec_id(codec)  # validates
        mb = _size(env, "QREDUCE_MAX_SIZE_MB", 2048)
        min_bytes = _size(env, "QREDUCE_MIN_SIZE_BYTES", 0)
        if min_bytes > mb << 20:
            raise ValueError(f"qreduce: QREDUCE_MIN_SIZE_BYTES={min_bytes} is above QREDUCE_MAX_SIZE_MB={mb} MiB: "
                             "qreduce would take no message")
        return cls(codec=codec,
                   min_size_bytes=min_bytes,
                   max_size_bytes=mb << 20,
                   rotate=_flag(env, "QREDUCE_ROTATE"),
                   disabled=_flag(env, "QREDUCE_DISABLE"))

    def accepts(self, nbytes: int) -> bool:
        return not self.disabled and self.min_size_bytes <= nbytes <= self.max_size_bytes
