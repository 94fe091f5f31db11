"""tools/gen_dispatch.py --tuning: measured rows per codec from the benchmark's JSON, the fastest
algorithm at each size, and no measured rows for a codec the run did not time."""
import json
import os
import tempfile
import unittest

from tools_under_test import load_tool


def generate(argv):
    """Runs gen_dispatch with these arguments; returns the table it wrote to --out."""
    mod = load_tool("gen_dispatch")
    old, mod.sys.argv = mod.sys.argv, ["gen_dispatch", *argv]
    try:
        mod.main()
    finally:
        mod.sys.argv = old
    with open(argv[argv.index("--out") + 1]) as f:
        return f.read()


def tuning_file(path, world, results, meaningful=True):
    with open(path, "w") as f:
        json.dump({"machine": "test GPU", "date": "2026-11-25", "arch": 90, "world": world,
                   "timings_meaningful": meaningful, "results": results}, f)


def row(alg, codec, size, us):
    return {"algorithm": alg, "codec": codec, "bytes": size, "median_us": us}


class Tuning(unittest.TestCase):
    def generate(self, results, meaningful=True):
        """The 2-rank sm_90 rows of a table generated from one tuning file of these results."""
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "w2.json")
            tuning_file(src, 2, results, meaningful)
            text = generate(["--tuning", src, "--out", os.path.join(d, "table.hpp")])
        return [line.strip() for line in text.splitlines() if line.strip().startswith("{90, 2,")]

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
            files = [os.path.join(d, f"w{world}.json") for world in (2, 4)]
            for world, f in zip((2, 4), files):
                tuning_file(f, world, [row("twoshot", "fp4", 1 << 20, 12.0)])
            text = generate(["--tuning", files[0], "--tuning", files[1], "--out", os.path.join(d, "table.hpp")])
        self.assertIn("{90, 2, codec_kind::fp4,", text)
        self.assertIn("{90, 4, codec_kind::fp4,", text)

    def test_ranks_sharing_a_gpu_tune_nothing(self):
        with self.assertRaises(SystemExit):
            self.generate([row("twoshot", "fp4", 1 << 20, 12.0)], meaningful=False)


if __name__ == "__main__":
    unittest.main()
