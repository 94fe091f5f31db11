"""The codec list, the world sizes and the fused RMSNorm's output formats are written once, in C++
(include/qreduce/codec/all.hpp, include/qreduce/options.hpp and include/qreduce/epilogue/outputs.hpp);
the Python package and the dispatch-table generator must say the same."""
import os
import re
import sys
import unittest

from tools_under_test import ROOT, load_tool

sys.path.insert(0, os.path.join(ROOT, "python"))


def read(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read()


def cxx_codecs():
    text = read("include/qreduce/codec/all.hpp")
    enum = re.search(r"enum class codec_kind : std::uint8_t \{([^}]*)\}", text).group(1)
    return tuple(name.split("=")[0].strip() for name in enum.split(","))


def cxx_worlds():
    text = read("include/qreduce/options.hpp")
    return tuple(int(w) for w in re.search(r"using all_worlds = world_set<([0-9, ]*)>;", text).group(1).split(","))


def cxx_output_kinds():
    text = read("include/qreduce/epilogue/outputs.hpp")
    enum = re.search(r"enum class norm_output_kind : std::uint8_t \{([^}]*)\}", text).group(1)
    return {name.strip(): i for i, name in enumerate(enum.split(","))}


def cxx_output_groups():
    text = read("include/qreduce/epilogue/outputs.hpp")
    return {name: int(group) for name, group in re.findall(r"struct out_(\w+) \{[^}]*?static constexpr int group = (\d+);", text)}


def cxx_tile_ratios():
    """Encoded bytes per input byte of every codec: (payload + scale) per 32 values over 64 bytes."""
    scaled = read("include/qreduce/codec/scaled.hpp")
    ratios = {"none": 1.0}
    payload = {"int_format<8>": 32, "int_format<6>": 24, "int_format<4>": 16, "e4m3fn": 32, "e4m3fnuz": 32, "e2m1": 16}
    scale = {"scale_bf16": 2, "scale_e8m0": 1}
    for fmt, sc, name in re.findall(r"struct \w+ : scaled_codec<numeric::(\w+(?:<\d>)?), (\w+)> \{\s*static constexpr const char\* name = \"(\w+)\"", scaled):
        ratios[name] = (payload[fmt] + scale[sc]) / 64
    for header in ("int4m",):  # codecs with a header of their own state their sizes there
        text = read("include/qreduce/codec/%s.hpp" % header)
        sizes = [int(re.search(r"static constexpr int %s = (\d+);" % field, text).group(1)) for field in ("payload_bytes", "scale_bytes")]
        ratios[re.search(r'static constexpr const char\* name = "(\w+)"', text).group(1)] = sum(sizes) / 64
    return ratios


class Lists(unittest.TestCase):
    def test_codecs_match_the_cxx_list(self):
        from qreduce import config
        self.assertEqual(cxx_codecs(), ("none", "fp8", "fp8_fnuz", "int8", "int6", "int4", "fp4", "mxfp4", "int4m"))
        self.assertEqual(tuple(config.CODECS), cxx_codecs())
        self.assertEqual(tuple(load_tool("gen_dispatch").CODECS), cxx_codecs())

    def test_always_rotated_codecs_match_the_cxx_trait(self):
        from qreduce import config
        found = []
        for name in os.listdir(os.path.join(ROOT, "include/qreduce/codec")):
            text = read("include/qreduce/codec/" + name)
            found += re.findall(r'static constexpr const char\* name = "(\w+)";[^}]*static constexpr bool always_rotated = true;', text)
        self.assertEqual(sorted(found), sorted(config.ALWAYS_ROTATED))
        self.assertTrue(found)

    def test_worlds_match_the_cxx_list(self):
        from qreduce import config
        self.assertEqual(tuple(config.WORLDS), cxx_worlds())
        self.assertEqual(tuple(load_tool("gen_dispatch").WORLDS), cxx_worlds())

    def test_output_formats_match_the_cxx_kinds(self):
        from qreduce import config
        kinds, groups = cxx_output_kinds(), cxx_output_groups()
        self.assertEqual(list(kinds), ["native", "fp8_per_token", "mxfp4", "nvfp4"])
        self.assertEqual(config.OUTPUT_FORMATS, {"fp8": kinds["fp8_per_token"], "mxfp4": kinds["mxfp4"], "nvfp4": kinds["nvfp4"]})
        self.assertEqual(config.OUTPUT_SCALE_GROUPS, {kinds["mxfp4"]: groups["mxfp4"], kinds["nvfp4"]: groups["nvfp4"]})

    def test_generator_ratios_match_the_wire_format(self):
        ratios = cxx_tile_ratios()
        self.assertEqual(set(ratios), set(cxx_codecs()))
        for codec, r in load_tool("gen_dispatch").RATIO.items():
            self.assertAlmostEqual(r, ratios[codec], msg=codec)


if __name__ == "__main__":
    unittest.main()
