// Host tests of the scalar formats: fp16/bf16 conversions and the 4/8-bit element formats.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "qreduce/numeric/float16.hpp"
#include "qreduce/numeric/half2.hpp"
#include "qreduce/numeric/minifloat.hpp"

using namespace qreduce;
using namespace qreduce::numeric;

TEST_CASE("f16 -> f32 -> f16 is the identity on all 65536 patterns (NaN canonical)") {
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const f16 h{std::uint16_t(b)};
    const float f = to_float(h);
    const f16 back = to_f16(f);
    if (std::isnan(f)) {
      CHECK(back.bits == 0x7fffu);
    } else {
      REQUIRE_MESSAGE(back.bits == b, "pattern " << b);
    }
  }
}

#if defined(__FLT16_MAX__)
TEST_CASE("f32 -> f16 rounds like the compiler's _Float16 on random and boundary floats") {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<std::uint32_t> bits;
  auto check = [](float f) {
    if (std::isnan(f)) return;
    const _Float16 ref = static_cast<_Float16>(f);
    std::uint16_t rb;
    std::memcpy(&rb, &ref, 2);
    REQUIRE_MESSAGE(to_f16(f).bits == rb, "value " << f);
  };
  for (int i = 0; i < 2000000; ++i) check(std::bit_cast<float>(bits(rng)));
  // every f16 value and the midpoints around it
  for (std::uint32_t b = 0; b < 0x7c00; ++b) {
    const float f = to_float(f16{std::uint16_t(b)});
    const float up = std::nextafter(to_float(f16{std::uint16_t(b + 1)}), 0.0f);
    const float mid = 0.5f * (f + to_float(f16{std::uint16_t(b + 1)}));
    for (float v : {f, -f, mid, -mid, up, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f)}) check(v);
  }
}
#endif

TEST_CASE("binary16 emulation (half2.hpp): one rounding of the exact value, a tie decided by the error's sign") {
  // f16_round of a float equals the float-to-f16 conversion, on a stride of all floats and at every
  // binary16 midpoint and its neighbours
  for (std::uint32_t b = 0; b < 0x7f800000u; b += 4093u) {
    const float f = std::bit_cast<float>(b);
    REQUIRE(f16_round(f) == to_float(to_f16(f)));
    REQUIRE(f16_round(-f) == to_float(to_f16(-f)));
  }
  int ties = 0;
  for (std::uint32_t h = 0; h < 0x7bffu; ++h) {  // consecutive finite positive binary16 values
    const double lo = to_float(f16{std::uint16_t(h)}), hi = to_float(f16{std::uint16_t(h + 1)}), mid = 0.5 * (lo + hi);
    const double even = (h & 1u) ? hi : lo;
    CHECK(f16_round(mid) == float(even));
    CHECK(f16_round(mid, 1e-300) == float(hi));  // a positive error past the midpoint rounds up
    CHECK(f16_round(mid, -1e-300) == float(lo));
    CHECK(f16_round(-mid, -1e-300) == float(-hi));
    ++ties;
  }
  CHECK(ties == 0x7bff);
  CHECK(f16_round(65520.0) == INFINITY);  // the midpoint above the largest finite ties to infinity
  CHECK(f16_round(65520.0, -1e-300) == 65504.0f);
  // f16_fma: a * b + c whose double sum is inexact (2^-48 below 56's ulp): 56 + tiny rounds to 56;
  // and exact cases against the float product
  CHECK(f16_fma(0x1p-24f, 0x1p-24f, 56.0f) == 56.0f);
  CHECK(f16_fma(3.0f, 0.5f, 1024.0f) == 1026.0f);  // 1025.5 ties to the even 1026
  CHECK(f16_fma(-3.0f, 0.5f, 1030.0f) == 1028.0f);  // 1028.5 ties to the even 1028
}

TEST_CASE("f32 -> bf16 rounds to nearest even and keeps infinities") {
  CHECK(to_bf16(1.0f).bits == 0x3f80);
  CHECK(to_bf16(std::bit_cast<float>(0x3f808000u)).bits == 0x3f80);  // tie, even stays
  CHECK(to_bf16(std::bit_cast<float>(0x3f818000u)).bits == 0x3f82);  // tie, odd rounds up
  CHECK(to_bf16(std::bit_cast<float>(0x3f808001u)).bits == 0x3f81);
  CHECK(to_bf16(std::bit_cast<float>(0x7f7fffffu)).bits == 0x7f80);  // FLT_MAX rounds to inf
  CHECK(to_bf16(-INFINITY).bits == 0xff80);
  CHECK(to_bf16(NAN).bits == 0x7fff);
  CHECK(to_bf16(-NAN).bits == 0x7fff);
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const float f = to_float(bf16{std::uint16_t(b)});
    if (!std::isnan(f)) REQUIRE(to_bf16(f).bits == b);
  }
}

// Oracle: the nearest representable magnitude, ties to the even code, saturating at the max.
template <class F>
std::uint32_t oracle_code(float s) {
  const std::uint32_t sign = std::signbit(s) ? F::sign_bit : 0u;
  const double a = std::fabs(double(s));
  if (a >= F::max) return sign | F::encode_soft(F::max);
  std::uint32_t best = 0;
  double best_d = 1e300;
  for (std::uint32_t c = 0; c < F::sign_bit; ++c) {
    const double v = F::decode_soft(c);
    if (std::isnan(v) || v > F::max) continue;
    const double d = std::fabs(v - a);
    if (d < best_d || (d == best_d && (c & 1u) == 0u)) {
      best = c;
      best_d = d;
    }
  }
  return sign | best;
}

template <class F>
void check_format_against_oracle(bool has_neg_zero) {
  std::vector<float> probes;
  for (std::uint32_t c = 0; c < F::sign_bit; ++c) {
    const float v = F::decode_soft(c);
    if (v > F::max) continue;
    probes.push_back(v);
    const float next = c + 1 < F::sign_bit ? F::decode_soft(c + 1) : 2 * F::max;
    const float mid = 0.5f * (v + next);
    probes.push_back(mid);
    probes.push_back(std::nextafter(mid, 0.0f));
    probes.push_back(std::nextafter(mid, 1e30f));
  }
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(0.0f, 1.2f * F::max);
  for (int i = 0; i < 20000; ++i) probes.push_back(u(rng));
  probes.push_back(1e30f);
  probes.push_back(1e-30f);
  for (float p : probes) {
    for (float s : {p, -p}) {
      std::uint32_t want = oracle_code<F>(s);
      if (!has_neg_zero && (want & ~F::sign_bit) == 0u) want = 0u;
      REQUIRE_MESSAGE(F::encode_soft(s) == want, std::string(F::name) << " value " << s);
    }
  }
}

TEST_CASE("e2m1's float-only rounding (minimum of three sums) equals the generic minifloat rounding on every float in [2^-4, 16)") {
  using generic = minifloat_format<2, 1, 1, 0x7u, true>;
  std::uint64_t bad = 0;
  for (std::uint32_t b = 0x3d800000u; b < 0x41800000u; ++b) {  // exhaustive over the grid's binades
    const float s = std::bit_cast<float>(b);
    bad += e2m1::encode_soft(s) != generic::encode_soft(s);
    bad += e2m1::encode_soft(-s) != generic::encode_soft(-s);
  }
  for (std::uint32_t b = 0; b < 0x7f800000u; b += 4093u) {  // and a sample of every other finite float
    const float s = std::bit_cast<float>(b);
    bad += e2m1::encode_soft(s) != generic::encode_soft(s);
  }
  CHECK(bad == 0);
}

TEST_CASE("e2m1's rounding without its clamp (Bounded) is the clamped one on every float below 7 in magnitude") {
  std::uint64_t bad = 0, checked = 0;
  for (std::uint32_t b = 0; b < std::bit_cast<std::uint32_t>(e2m1::unclamped_limit); b += (b < 0x3d800000u ? 4093u : 1u)) {
    const float s = std::bit_cast<float>(b);
    bad += e2m1::encode_soft<true>(s) != e2m1::encode_soft(s);
    bad += e2m1::encode_soft<true>(-s) != e2m1::encode_soft(-s);
    ++checked;
  }
  CHECK(checked > 30000000u);
  CHECK(bad == 0);
  // and it is a bound, not a margin: at 7 the unclamped rounding leaves the format
  CHECK(e2m1::encode_soft<true>(7.0f) != e2m1::encode_soft(7.0f));
}

TEST_CASE("e2m1 rounding matches the nearest-even oracle and saturates at 6") {
  check_format_against_oracle<e2m1>(true);
  const float values[] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
  for (std::uint32_t c = 0; c < 8; ++c) CHECK(e2m1::decode_soft(c) == values[c]);
  CHECK(e2m1::encode_soft(0.25f) == 0u);  // tie to even
  CHECK(e2m1::encode_soft(0.75f) == 2u);
  CHECK(e2m1::encode_soft(5.0f) == 6u);  // tie between 4 and 6 goes to 4
  CHECK(e2m1::encode_soft(100.0f) == 7u);
  CHECK(e2m1::encode_soft(-100.0f) == 0xfu);
}

TEST_CASE("e4m3fn rounding matches the oracle; 448 is the max; subnormals are exact") {
  check_format_against_oracle<e4m3fn>(true);
  CHECK(e4m3fn::max == 448.0f);
  CHECK(e4m3fn::encode_soft(1.0f) == 0x38u);
  CHECK(e4m3fn::encode_soft(448.0f) == 0x7eu);
  CHECK(e4m3fn::encode_soft(1e9f) == 0x7eu);
  CHECK(e4m3fn::encode_soft(-2.0f) == 0xc0u);
  CHECK(e4m3fn::decode_soft(0x01u) == std::ldexp(1.0f, -9));
}

TEST_CASE("e4m3fnuz rounding matches the oracle; 240 is the max; no negative zero") {
  check_format_against_oracle<e4m3fnuz>(false);
  CHECK(e4m3fnuz::max == 240.0f);
  CHECK(e4m3fnuz::encode_soft(1.0f) == 0x40u);
  CHECK(e4m3fnuz::encode_soft(-1e-20f) == 0x00u);
  CHECK(e4m3fnuz::decode_soft(0x01u) == std::ldexp(1.0f, -10));
}

TEST_CASE("integer formats round to nearest even and saturate symmetrically") {
  using i4 = int_format<4>;
  CHECK(i4::encode_soft(2.5f) == 2u);
  CHECK(i4::encode_soft(3.5f) == 4u);
  CHECK(i4::encode_soft(-2.5f) == 0xeu);
  CHECK(i4::encode_soft(9.0f) == 7u);
  CHECK(i4::encode_soft(-9.0f) == 0x9u);  // -7, never -8
  for (std::uint32_t c = 0; c < 16; ++c)
    if (c != 8) CHECK(i4::encode_soft(i4::decode_soft(c)) == c);
  using i6 = int_format<6>;
  CHECK(i6::max == 31.0f);
  CHECK(i6::decode_soft(i6::encode_soft(-31.2f)) == -31.0f);
  using i8 = int_format<8>;
  CHECK(i8::decode_soft(i8::encode_soft(126.5f)) == 126.0f);
  CHECK(i8::decode_soft(i8::encode_soft(-1000.0f)) == -127.0f);
}
