"""tools/gen_dispatch.py --tuning: measured rows per codec from the benchmark's JSON, the fastest
algorithm at each size, and no measured rows for a codec the run did not time."""
import importlib.util
import json
import os
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load():
    spec = importlib.util.spec_from_file_location("gen_dispatch", os.path.join(ROOT, "tools", "gen_dispatch.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def row(alg, codec, size, us):
    return {"algorithm": alg, "codec": codec, "bytes": size, "median_us": us}


class Tuning(unittest.TestCase):
    def generate(self, results, meaningful=True):
        with tempfile.TemporaryDirectory() as d:
            src, out = os.path.join(d, "w2.json"), os.path.join(d, "table.hpp")
            with open(src, "w") as f:
                json.dump({"machine": "test GPU", "date": "2026-11-25", "arch": 90, "world": 2,
                           "timings_meaningful": meaningful, "results": results}, f)
            argv = ["gen_dispatch", "--tuning", src, "--out", out]
            mod = load()
            old, mod.sys.argv = mod.sys.argv, argv
            try:
                mod.main()
            finally:
                mod.sys.argv = old
            with open(out) as f:
                return [line.strip() for line in f if line.strip().startswith("{90, 2,")]

    def test_fastest_algorithm_per_size_and_unmeasured_codecs_left_out(self):
        mib = 1 << 20
        rows = self.generate([
            row("oneshot", "none", mib, 10.0), row("twoshot", "fp4", mib, 12.0), row("nccl", "-", mib, 15.0),
            row("twoshot", "fp4", 64 * mib, 100.0), row("nccl", "-", 64 * mib, 250.0),
            row("twoshot", "none", 64 * mib, 260.0),
        ])
        self.assertIn("{90, 2, codec_kind::fp4, 1048576u, algorithm_kind::one_shot},", rows)
        self.assertIn("{90, 2, codec_kind::fp4, SIZE_MAX, algorithm_kind::two_shot},", rows)
        self.assertIn("{90, 2, codec_kind::none, SIZE_MAX, algorithm_kind::fallback},", rows)
        # fp8 was not timed: the one-shot and NCCL rows alone would send it to NCCL above 1 MiB
        self.assertFalse([r for r in rows if "codec_kind::fp8," in r])

    def test_every_tuning_file_kept(self):
        with tempfile.TemporaryDirectory() as d:
            files = []
            for world in (2, 4):
                files.append(os.path.join(d, f"w{world}.json"))
                with open(files[-1], "w") as f:
                    json.dump({"machine": "test GPU", "date": "2026-11-25", "arch": 90, "world": world, "timings_meaningful": True,
                               "results": [row("twoshot", "fp4", 1 << 20, 12.0)]}, f)
            out = os.path.join(d, "table.hpp")
            mod = load()
            old, mod.sys.argv = mod.sys.argv, ["gen_dispatch", "--tuning", files[0], "--tuning", files[1], "--out", out]
            try:
                mod.main()
            finally:
                mod.sys.argv = old
            with open(out) as f:
                text = f.read()
            self.assertIn("{90, 2, codec_kind::fp4,", text)
            self.assertIn("{90, 4, codec_kind::fp4,", text)

    def test_ranks_sharing_a_gpu_tune_nothing(self):
        with self.assertRaises(SystemExit):
            self.generate([row("twoshot", "fp4", 1 << 20, 12.0)], meaningful=False)


if __name__ == "__main__":
    unittest.main()
