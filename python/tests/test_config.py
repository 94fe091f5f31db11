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


class FakeGroup:
    """Ranks as threads: gather(obj) returns every rank's obj once all have called it, as
    torch.distributed.all_gather_object does; a rank that never calls it leaves the others waiting
    (until `timeout`, then they raise)."""

    def __init__(self, world, timeout=5.0):
        import threading
        self.world, self.timeout = world, timeout
        self.cv = threading.Condition()
        self.rounds = {}
        self.calls = [0] * world

    def gather_for(self, rank):
        def gather(obj):
            with self.cv:
                k = self.calls[rank]
                self.calls[rank] += 1
                box = self.rounds.setdefault(k, {})
                box[rank] = obj
                self.cv.notify_all()
                if not self.cv.wait_for(lambda: len(box) == self.world, timeout=self.timeout):
                    raise TimeoutError(f"rank {rank}: all-gather {k} still waits for its peers")
                return [box[r] for r in range(self.world)]
        return gather


def run_ranks(world, body):
    import threading
    out, errors = [None] * world, []

    def run(r):
        try:
            out[r] = body(r)
        except Exception as e:  # noqa: BLE001: reported by the test
            errors.append(e)
    threads = [threading.Thread(target=run, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out, errors


class CollectiveCreationTest(unittest.TestCase):
    """The vLLM-style class is created, or disabled, on every rank together."""

    def make(self, group, rank, factory):
        return QuickReduceCommunicator(None, "cuda:0", EnvConfig.from_env({}), _gather=group.gather_for(rank),
                                       _factory=factory)

    def test_a_rank_without_the_extension_disables_every_rank(self):
        group, created = FakeGroup(4), []

        def factory(rank):
            def prepare(_group, _device):
                if rank == 2:
                    raise ImportError("no module named qreduce._C")
                return lambda: created.append(rank) or FakeComm()
            return prepare
        out, errors = run_ranks(4, lambda r: self.make(group, r, factory(r)))
        self.assertEqual(errors, [])
        self.assertTrue(all(qr.disabled for qr in out))
        self.assertTrue(all(qr.disabled_reason.startswith("rank 2: ImportError") for qr in out))
        self.assertEqual(created, [])  # nobody entered the collective creation

    def test_a_failed_creation_disables_every_rank_and_closes_the_others(self):
        group, closed = FakeGroup(2), []

        class Closing(FakeComm):
            def __init__(self, rank): super().__init__(); self.rank = rank
            def close(self): closed.append(self.rank)

        def factory(rank):
            def create():
                if rank == 0:
                    raise RuntimeError("qreduce: out of memory")
                return Closing(rank)
            return lambda _group, _device: create
        out, errors = run_ranks(2, lambda r: self.make(group, r, factory(r)))
        self.assertEqual(errors, [])
        self.assertTrue(all(qr.disabled and qr.comm is None for qr in out))
        self.assertEqual([qr.disabled_reason for qr in out], ["rank 0: RuntimeError: qreduce: out of memory"] * 2)
        self.assertEqual(closed, [1])

    def test_a_rank_disabled_by_its_environment_disables_every_rank(self):
        group, created = FakeGroup(2), []

        def make(r):
            env = {"QREDUCE_DISABLE": "1"} if r == 1 else {}
            return QuickReduceCommunicator(None, "cuda:0", EnvConfig.from_env(env), _gather=group.gather_for(r),
                                           _factory=lambda _g, _d: (lambda: created.append(r) or FakeComm()))
        out, errors = run_ranks(2, make)
        self.assertEqual(errors, [])
        self.assertEqual([qr.disabled_reason for qr in out], ["rank 1: QREDUCE_DISABLE=1"] * 2)
        self.assertEqual(created, [])

    def test_every_rank_creates(self):
        group = FakeGroup(2)
        out, errors = run_ranks(2, lambda r: self.make(group, r, lambda _g, _d: FakeComm))
        self.assertEqual(errors, [])
        self.assertTrue(all(not qr.disabled and isinstance(qr.comm, FakeComm) for qr in out))
        self.assertEqual(group.calls, [2, 2])  # the two votes


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
