// Host tests of the RMSNorm epilogue's quantized outputs (epilogue/outputs.hpp): layouts, scales,
// golden bytes, error bounds, and non-finite rows and groups. The GPU test compares the device's
// bytes with these references.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>
#include "qreduce/epilogue/outputs.hpp"

using namespace qreduce;
using namespace qreduce::epilogue;

namespace {

std::vector<float> gaussian(std::size_t n, std::uint32_t seed, float sigma = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// Largest |y - dequantized| over the row, relative to the row's (or group's) scale step.
template <class Out>
double max_abs_error(const Out& o, const std::vector<float>& y, std::size_t hidden) {
  double e = 0;
  for (std::size_t k = 0; k < hidden; ++k) e = std::max(e, std::fabs(double(o.dequantize(0, hidden, k)) - double(y[k])));
  return e;
}

}  // namespace

TEST_CASE("fp8 per token: scale is absmax / 448, codes round to nearest even, bytes are fixed") {
  const std::size_t hidden = 16;
  std::vector<float> y = {448.0f * 0.5f, -1.0f, 0.0f, 3.0f, 100.0f, -224.0f, 0.001f, 7.0f, 1.0f, 2.0f, 4.0f, 8.0f, 16.0f, 32.0f, 64.0f, 13.0f};
  std::vector<std::uint8_t> q(hidden);
  float scale = 0;
  out_fp8_per_token o{q.data(), &scale};
  o.reference(y.data(), hidden, 0);
  CHECK(scale == 224.0f / 448.0f);  // absmax 224 -> 0.5
  // y / 0.5 in E4M3: 448 -> 0x7e, -2 -> 0xc0, 6 -> 0x4c, 200 -> tie 192|208 -> 192 (0x74), 0.002 -> the
  // smallest subnormal (0x01), 26 -> 0x5d
  const std::uint8_t want[16] = {0x7e, 0xc0, 0x00, 0x4c, 0x74, 0xfe, 0x01, 0x56, 0x40, 0x48, 0x50, 0x58, 0x60, 0x68, 0x70, 0x5d};
  for (std::size_t k = 0; k < hidden; ++k) CHECK_MESSAGE(q[k] == want[k], "value " << k << " code " << int(q[k]));
  for (std::size_t k = 0; k < hidden; ++k) {
    const float d = o.dequantize(0, hidden, k);
    CHECK(std::fabs(d - y[k]) <= std::fabs(y[k]) / 16.0f + scale / 512.0f);
  }
}

TEST_CASE("fp8 per token: zero rows get the smallest scale and zero codes; non-finite rows are NaN") {
  const std::size_t hidden = 32;
  std::vector<float> y(hidden, 0.0f);
  std::vector<std::uint8_t> q(2 * hidden, 0xaa);
  float scale[2] = {};
  out_fp8_per_token o{q.data(), scale};
  o.reference(y.data(), hidden, 0);
  CHECK(scale[0] == 1.0f / (448.0f * 512.0f));
  for (std::size_t k = 0; k < hidden; ++k) CHECK(q[k] == 0);
  y[5] = std::numeric_limits<float>::infinity();
  o.reference(y.data(), hidden, 1);
  CHECK(std::isnan(scale[1]));
  for (std::size_t k = 0; k < hidden; ++k) CHECK(q[hidden + k] == 0x7f);
  CHECK(std::isnan(o.dequantize(1, hidden, 0)));
  CHECK(o.dequantize(0, hidden, 0) == 0.0f);  // row 0 untouched
}

TEST_CASE("mxfp4 output: E8M0 scale per 32 values, nibbles low first, the codec's rule") {
  const std::size_t hidden = 64;
  std::vector<float> y(hidden);
  for (std::size_t k = 0; k < hidden; ++k) y[k] = float(int(k % 13) - 6) * (k < 32 ? 0.25f : 8.0f);
  std::vector<std::uint8_t> q(hidden / 2), s(hidden / 32);
  out_mxfp4 o{q.data(), s.data()};
  o.reference(y.data(), hidden, 0);
  // group 0: absmax 1.5 -> 2^ceil(log2(1.5/6)) = 2^-2 -> 125; group 1: absmax 48 -> 2^3 -> 130
  CHECK(s[0] == 125);
  CHECK(s[1] == 130);
  // y[0] = -1.5 / 0.25 = -6 -> 0xf; y[1] = -1.25 / 0.25 = -5 -> tie 4|6 -> 4 (0xe)
  CHECK((q[0] & 0xf) == 0xf);
  CHECK((q[0] >> 4) == 0xe);
  for (std::size_t k = 0; k < hidden; ++k) {
    const float step = k < 32 ? 0.25f : 8.0f;  // the scale; E2M1's widest gap is 2 scales
    CHECK(std::fabs(o.dequantize(0, hidden, k) - y[k]) <= step);
  }
}

TEST_CASE("nvfp4 output: E4M3 scale per 16 values under the global scale") {
  const std::size_t hidden = 64;
  auto y = gaussian(hidden, 11, 3.0f);
  y[20] = 0.0f;
  for (std::size_t k = 32; k < 48; ++k) y[k] = 0.0f;  // a zero group
  float amax = 0;
  for (float v : y) amax = std::max(amax, std::fabs(v));
  const float global = 448.0f * 6.0f / amax;
  std::vector<std::uint8_t> q(hidden / 2), s(hidden / 16);
  out_nvfp4 o{q.data(), s.data(), &global};
  o.reference(y.data(), hidden, 0);
  CHECK(s[2] == 0);
  for (std::size_t k = 32; k < 48; ++k) CHECK(o.dequantize(0, hidden, k) == 0.0f);
  for (std::size_t g = 0; g < hidden / 16; ++g) {
    float gmax = 0;
    for (std::size_t k = 16 * g; k < 16 * g + 16; ++k) gmax = std::max(gmax, std::fabs(y[k]));
    const float sf = numeric::e4m3fn::decode_soft(s[g]);
    // the stored scale is the E4M3 rounding of gmax / 6 * G: within E4M3's half step
    CHECK(std::fabs(sf - gmax / 6.0f * global) <= gmax / 6.0f * global / 16.0f + 1e-6f);
    for (std::size_t k = 16 * g; k < 16 * g + 16; ++k)
      CHECK(std::fabs(o.dequantize(0, hidden, k) - y[k]) <= gmax / 6.0f * 1.07f);  // one E2M1 step at most
  }
}

TEST_CASE("fp4 outputs: a group with NaN or infinity is NaN, its neighbours are not") {
  const std::size_t hidden = 64;
  auto y = gaussian(hidden, 5);
  y[3] = std::numeric_limits<float>::quiet_NaN();
  y[40] = -std::numeric_limits<float>::infinity();
  {
    std::vector<std::uint8_t> q(hidden / 2), s(hidden / 32);
    out_mxfp4 o{q.data(), s.data()};
    o.reference(y.data(), hidden, 0);
    CHECK(s[0] == 0xff);
    CHECK(s[1] == 0xff);
    CHECK(std::isnan(o.dequantize(0, hidden, 0)));
  }
  {
    const float global = 1.0f;
    std::vector<std::uint8_t> q(hidden / 2), s(hidden / 16);
    out_nvfp4 o{q.data(), s.data(), &global};
    o.reference(y.data(), hidden, 0);
    CHECK(s[0] == 0x7f);
    CHECK(s[2] == 0x7f);
    CHECK(std::isnan(o.dequantize(0, hidden, 0)));
    CHECK(std::isnan(o.dequantize(0, hidden, 47)));
    CHECK(!std::isnan(o.dequantize(0, hidden, 16)));
    CHECK(!std::isnan(o.dequantize(0, hidden, 48)));
  }
}

TEST_CASE("quantized outputs on Gaussian rows stay inside their formats' error") {
  const std::size_t hidden = 4096;
  const auto y = gaussian(hidden, 3, 2.0f);
  double rms = 0;
  for (float v : y) rms += double(v) * v;
  rms = std::sqrt(rms / double(hidden));
  std::vector<std::uint8_t> q(hidden), s(hidden / 16);
  float scale = 0;
  out_fp8_per_token f8{q.data(), &scale};
  f8.reference(y.data(), hidden, 0);
  CHECK(max_abs_error(f8, y, hidden) <= 0.0625 * 4.5 * rms);  // half an E4M3 step at the row's largest values
  out_mxfp4 mx{q.data(), s.data()};
  mx.reference(y.data(), hidden, 0);
  CHECK(max_abs_error(mx, y, hidden) <= 2.0 * 4.5 * rms / 6.0 * 2.0);
  const float global = 448.0f * 6.0f / 10.0f;
  out_nvfp4 nv{q.data(), s.data(), &global};
  nv.reference(y.data(), hidden, 0);
  CHECK(max_abs_error(nv, y, hidden) <= 4.5 * rms / 6.0 * 1.07);
}

TEST_CASE("any_output::visit passes the output it holds, as its own type; row_absmax() is that output's") {
  std::uint8_t q[16] = {}, s[4] = {};
  float fs = 0, global = 1.0f;
  bf16 y[8] = {};
  const auto name = [](const any_output<bf16>& a) {
    return std::string(a.visit([](const auto& o) { return std::remove_cvref_t<decltype(o)>::name; }));
  };
  const auto native = any_output<bf16>::of(out_native<bf16>{y});
  const auto fp8 = any_output<bf16>::of(out_fp8_per_token{q, &fs});
  const auto mx = any_output<bf16>::of(out_mxfp4{q, s});
  const auto nv = any_output<bf16>::of(out_nvfp4{q, s, &global});
  CHECK(name(native) == "native");
  CHECK(name(fp8) == "fp8_per_token");
  CHECK(name(mx) == "mxfp4");
  CHECK(name(nv) == "nvfp4");
  CHECK(!native.row_absmax());
  CHECK(fp8.row_absmax());
  CHECK(!mx.row_absmax());
  CHECK(!nv.row_absmax());
  nv.visit([&](const auto& o) {
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(o)>, out_nvfp4>) CHECK((o.q == q && o.scale == s && o.global_scale == &global));
    else FAIL("not the nvfp4 output");
  });
  CHECK(is_any_output<any_output<bf16>>);
  CHECK(!is_any_output<out_nvfp4>);
}

TEST_CASE("every output lists its buffers for the communicator's checks") {
  std::uint8_t q[16] = {}, s[4] = {};
  float fs = 0, global = 1.0f;
  const auto names = [](const auto& o) {
    std::string n;
    for (const output_buffer& b : o.buffers()) n += std::string(n.empty() ? "" : ", ") + b.name + " " + std::to_string(b.align);
    return n;
  };
  CHECK(names(out_native<bf16>{nullptr}) == "y 16");
  CHECK(names(out_fp8_per_token{q, &fs}) == "the fp8 output 16, the fp8 scales 4");
  CHECK(names(out_mxfp4{q, s}) == "the mxfp4 output 16, the mxfp4 scales 1");
  CHECK(names(out_nvfp4{q, s, &global}) == "the nvfp4 output 16, the nvfp4 scales 1, the nvfp4 global scale 4");
  CHECK(out_nvfp4{q, s, &global}.buffers()[2].ptr == &global);
  static_assert(norm_output<out_native<bf16>> && norm_output<out_fp8_per_token> && norm_output<out_mxfp4> && norm_output<out_nvfp4>);
  static_assert(std::is_same_v<out_native<f16>::value_type, f16>);
}
