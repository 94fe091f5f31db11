"""Pure-Python tests of the binding's configuration and the vLLM-style dispatch (no torch, no GPU)."""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from qreduce.config import CODECS, EnvConfig, algorithm_id, codec_id  # noqa: E402
from qreduce.vllm import QuickReduceCommunicator  # noqa: E402


class FakeTensor:
    def __init__(self, numel, dtype="torch.bfloat16", device="cuda:0", contiguous=True, ptr=4096, esize=2):
        self._n, self.dtype, self.device, self._c, self._p, self._e = numel, dtype, device, contiguous, ptr, esize

    def numel(self): return self._n
    def element_size(self): return self._e
    def is_contiguous(self): return self._c
    def data_ptr(self): return self._p


class FakeComm:
    device = "cuda:0"

    def __init__(self): self.calls = []
    def all_reduce(self, t, codec, rotate, out): self.calls.append((codec, rotate)); return t
    def close(self): pass


class ConfigTest(unittest.TestCase):
    def test_codec_ids_follow_the_cpp_enum(self):
        self.assertEqual(CODECS[codec_id("fp4")], "fp4")
        self.assertEqual(codec_id("none"), 0)
        self.assertEqual(codec_id("mxfp4"), 7)
        with self.assertRaises(ValueError):
            codec_id("fp3")
        self.assertEqual(algorithm_id("twoshot"), 2)
        with self.assertRaises(ValueError):
            algorithm_id("ring")

    def test_env(self):
        c = EnvConfig.from_env({"QREDUCE_CODEC": "int4", "QREDUCE_MIN_SIZE_BYTES": "1024", "QREDUCE_MAX_SIZE_MB": "64",
                                "QREDUCE_ROTATE": "1"})
        self.assertEqual((c.codec, c.min_size_bytes, c.max_size_bytes, c.rotate), ("int4", 1024, 64 << 20, True))
        self.assertTrue(c.accepts(1024) and c.accepts(64 << 20))
        self.assertFalse(c.accepts(1023) or c.accepts((64 << 20) + 1))
        with self.assertRaises(ValueError):
            EnvConfig.from_env({"QREDUCE_CODEC": "fp5"})
        with self.assertRaises(ValueError):
            EnvConfig.from_env({"QREDUCE_MAX_SIZE_MB": "lots"})
        self.assertEqual(EnvConfig.from_env({}).codec, "int8")
        self.assertFalse(EnvConfig.from_env({"QREDUCE_DISABLE": "1"}).accepts(4096))
        for bad in ({"QREDUCE_ROTATE": "yes"}, {"QREDUCE_DISABLE": "true"}):
            with self.assertRaisesRegex(ValueError, "expected 0 or 1"):
                EnvConfig.from_env(bad)
        with self.assertRaisesRegex(ValueError, "would take no message"):
            EnvConfig.from_env({"QREDUCE_MIN_SIZE_BYTES": str(2 << 20), "QREDUCE_MAX_SIZE_MB": "1"})


class QuickReduceTest(unittest.TestCase):
    def make(self, **env):
        return QuickReduceCommunicator(None, "cuda:0", EnvConfig.from_env(env), comm=FakeComm())

    def test_should_use(self):
        qr = self.make(QREDUCE_MAX_SIZE_MB="1")
        self.assertTrue(qr.should_use(FakeTensor(4096)))
        self.assertFalse(qr.should_use(FakeTensor(4096, dtype="torch.float32", esize=4)))
        self.assertFalse(qr.should_use(FakeTensor(4096, contiguous=False)))
        self.assertFalse(qr.should_use(FakeTensor(4096, device="cuda:1")))
        self.assertFalse(qr.should_use(FakeTensor(4096, ptr=4098)))
        self.assertFalse(qr.should_use(FakeTensor(1 << 20)))  # 2 MiB > 1 MiB

    def test_all_reduce_uses_the_configured_codec(self):
        qr = self.make(QREDUCE_CODEC="int6", QREDUCE_ROTATE="1")
        qr.all_reduce(FakeTensor(4096))
        self.assertEqual(qr.comm.calls, [("int6", True)])

    def test_disabled(self):
        self.assertFalse(self.make(QREDUCE_DISABLE="1").should_use(FakeTensor(4096)))


if __name__ == "__main__":
    unittest.main()
