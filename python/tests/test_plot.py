"""tools/plot_bench.py's right-hand panel: the speedup over NCCL where NCCL ran, else the fraction of
the model's limit, never an empty panel."""
import unittest

from tools_under_test import load_tool


def row(alg, codec, size, us, limit=0.0, speedup=0.0):
    return {"algorithm": alg, "codec": codec, "bytes": size, "median_us": us, "limit_us": limit, "speedup_vs_nccl": speedup}


class RightPanel(unittest.TestCase):
    def test_speedup_where_nccl_ran(self):
        label, series = load_tool("plot_bench").right_panel([row("nccl", "none", 1 << 20, 20.0), row("twoshot", "fp4", 1 << 20, 10.0, 8.0, 2.0)])
        self.assertEqual(label, "speedup over NCCL")
        self.assertEqual(series, {"twoshot/fp4": [(1 << 20, 2.0)]})

    def test_fraction_of_the_limit_without_nccl(self):
        label, series = load_tool("plot_bench").right_panel([row("twoshot", "fp4", 1 << 30, 4000.0, 2000.0), row("oneshot", "none", 4096, 9.0)])
        self.assertIn("model's limit", label)
        self.assertEqual(series, {"twoshot/fp4": [(1 << 30, 0.5)]})  # the one-shot has no modelled limit


if __name__ == "__main__":
    unittest.main()
