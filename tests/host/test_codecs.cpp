// Host tests of every codec: golden bytes, error bounds, adversarial groups, non-finite inputs,
// exhaustive fp16 coverage, and the rotation.
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "qreduce/codec/all.hpp"

using namespace qreduce;
using namespace qreduce::codec;

namespace {

template <class C>
struct group_bytes {
  std::byte payload[C::payload_bytes];
  std::byte scale[C::scale_bytes > 0 ? C::scale_bytes : 1];
};

template <class C, class T>
std::vector<float> round_trip_group(const float* v) {
  group_bytes<C> g{};
  encode_group<C, T>(v, g.payload, g.scale);
  std::vector<float> out(group_size);
  decode_group<C, T>(g.payload, g.scale, out.data());
  return out;
}

// Per-element error bound of one group: half the format's spacing at the value, times the scale.
// int4m: its half's squared error is at most that of the multiplier that holds the half, whose every
// value is within half a step: so no value is off by more than sqrt(16 * (sc / 2)^2) = 2 sc (errors
// compared as binary16 sums can let m_up - 1 win with an exact error about 2^-11 above m_up's; 2 sc
// itself needs every value on a midpoint of m_up's grid, where those sums are exact).
template <class C>
double element_bound(float x, float absmax, float half_absmax) {
  if constexpr (std::is_same_v<C, int4m>) {
    const auto s = int4m::group_exponent(std::bit_cast<std::uint32_t>(absmax));
    const double sc = int4m::half_scale(s, int4m::multiplier_up(s, half_absmax));
    const double saturation = std::fabs(double(x)) - 7.5 * sc;  // only near FLT_MAX
    return std::max(2.0 * sc * (1.0 + 1e-6), saturation * (1.0 + 1e-6)) + 1e-45;
  } else if constexpr (C::scale_bytes == 0) {
    return std::fabs(double(x)) * std::ldexp(1.0, -8) + 1e-45;  // one rounding to fp16/bf16
  } else {
    using F = typename C::format;
    const auto st = C::make_state(std::bit_cast<std::uint32_t>(absmax));
    const double s = C::scale_type::to_float(st.scale);
    const double a = std::fabs(double(x)) / s;
    double spacing;
    if constexpr (requires { F::mantissa_bits; }) {
      const int emin = 1 - (F::code_bits == 4 ? 1 : (F::max == 448.0f ? 7 : 8));
      const int e = a > 0 ? std::max(int(std::floor(std::log2(a))), emin) : emin;
      spacing = std::ldexp(1.0, e - F::mantissa_bits);
    } else {
      spacing = 1.0;
    }
    const double saturation = std::fabs(double(x)) - double(F::max) * s;  // only near FLT_MAX
    return std::max(0.5 * spacing * s * (1.0 + 1e-6), saturation * (1.0 + 1e-6)) + 1e-45;
  }
}

template <class C, class T>
void check_group_within_bound(const float* v) {
  float absmax = 0, half[2] = {0, 0};
  for (int i = 0; i < group_size; ++i) half[i / 16] = std::max(half[i / 16], std::fabs(v[i]));
  absmax = std::max(half[0], half[1]);
  const auto out = round_trip_group<C, T>(v);
  for (int i = 0; i < group_size; ++i) {
    REQUIRE_MESSAGE(std::isfinite(out[i]), std::string(C::name) << " produced a non-finite value from " << v[i]);
    const double err = std::fabs(double(out[i]) - double(v[i])), bound = element_bound<C>(v[i], absmax, half[i / 16]);
    REQUIRE_MESSAGE(err <= bound, std::string(C::name)
                                      << ": |" << out[i] << " - " << v[i] << "| = " << err << " > bound " << bound << " (absmax " << absmax << ")");
  }
}

template <class T>
float representable(float x) {
  return numeric::to_float(numeric::from_float<T>(x));
}

}  // namespace

#define ALL_CODECS passthrough, fp8, fp8_fnuz, int8, int6, int4, fp4, mxfp4, int4m

TEST_CASE_TEMPLATE("every codec satisfies the concept and has a 16-byte aligned tile", C, ALL_CODECS) {
  static_assert(codec_type<C>);
  CHECK(tile_bytes<C> % 16 == 0);
  CHECK(bits_per_value<C> <= 16.0);
  // the two-shot lays tiles out on whole 128-byte lines, padding at most a line's worth
  CHECK(slot_tile_bytes<C> % 128 == 0);
  CHECK(slot_tile_bytes<C> >= tile_bytes<C>);
  CHECK(slot_tile_bytes<C> - tile_bytes<C> < 128);
}

TEST_CASE("which codecs encode -0 apart from +0: the float formats and the unquantized one") {
  static_assert(encodes_zero_sign<fp4> && encodes_zero_sign<mxfp4> && encodes_zero_sign<fp8> && encodes_zero_sign<passthrough>);
  static_assert(!encodes_zero_sign<int4> && !encodes_zero_sign<int6> && !encodes_zero_sign<int8> && !encodes_zero_sign<int4m> &&
                !encodes_zero_sign<fp8_fnuz>);
}

// What the two-shot's 2-rank sum relies on (algorithm/two_shot.hpp) where encodes_zero_sign is false:
// no code of such a codec decodes to -0, so own + peer is the rank-order (0 + y0) + y1 bit for bit;
// and where it is true, a -0 travels (so the leading 0 must stay). Groups of zeros of both signs among
// small and large values, and a group of zeros only, through every codec.
TEST_CASE_TEMPLATE("a codec that encodes -0 as +0 never decodes a -0; the others keep it", C, ALL_CODECS) {
  bool any_negative_zero = false;
  for (int pattern = 0; pattern < 4; ++pattern) {
    float v[32], y[32];
    for (int i = 0; i < 32; ++i) {
      const float zero = (i + pattern) % 2 ? -0.0f : 0.0f;
      v[i] = pattern == 3 ? -0.0f : (i % 4 == 0 ? zero : (i % 4 == 1 ? 1e-6f : (i % 4 == 2 ? -3.0f : -1e-7f)));
    }
    std::byte payload[C::payload_bytes], scale[C::scale_bytes > 0 ? C::scale_bytes : 1];
    encode_group<C, bf16>(v, payload, scale);
    decode_group<C, bf16>(payload, scale, y);
    for (int i = 0; i < 32; ++i) {
      const bool negative_zero = y[i] == 0.0f && std::signbit(y[i]);
      any_negative_zero = any_negative_zero || negative_zero;
      if constexpr (!encodes_zero_sign<C>) REQUIRE_MESSAGE(!negative_zero, C::name << " pattern " << pattern << " value " << i);
    }
  }
  if constexpr (encodes_zero_sign<C>) CHECK(any_negative_zero);
}

TEST_CASE("which codecs always rotate: int8 and int4m") {
  static_assert(always_rotated<int8> && always_rotated<int4m>);
  static_assert(!always_rotated<passthrough> && !always_rotated<fp8> && !always_rotated<fp8_fnuz> && !always_rotated<int6> && !always_rotated<int4> &&
                !always_rotated<fp4> && !always_rotated<mxfp4>);
}

TEST_CASE("bits per value") {
  CHECK(bits_per_value<fp4> == doctest::Approx(4.5));
  CHECK(bits_per_value<mxfp4> == doctest::Approx(4.25));
  CHECK(bits_per_value<int4m> == doctest::Approx(4.5));
  CHECK(bits_per_value<int6> == doctest::Approx(6.5));
  CHECK(bits_per_value<int8> == doctest::Approx(8.5));
  CHECK(bits_per_value<passthrough> == doctest::Approx(16.0));
}

TEST_CASE("golden bytes: fp4 group") {
  float v[32] = {6, -6, 3, 1.5f, 0.5f, 0, -0.25f, 5};  // 5 ties to 4, -0.25 ties to -0
  group_bytes<fp4> g{};
  encode_group<fp4, f16>(v, g.payload, g.scale);
  const std::uint8_t want[16] = {0xf7, 0x35, 0x01, 0x68};
  CHECK(std::memcmp(g.payload, want, 16) == 0);
  CHECK(std::to_integer<int>(g.scale[0]) == 0x80);  // bf16 1.0 = 0x3f80, little-endian
  CHECK(std::to_integer<int>(g.scale[1]) == 0x3f);
}

TEST_CASE("golden bytes: mxfp4, int8, int6, int4, fp8 groups") {
  {
    float v[32] = {12, -1};  // 12/6 = 2 -> E8M0 2^1 = 128; codes 6 -> 7, -0.5 -> 0x9
    group_bytes<mxfp4> g{};
    encode_group<mxfp4, bf16>(v, g.payload, g.scale);
    CHECK(std::to_integer<int>(g.payload[0]) == 0x97);
    CHECK(std::to_integer<int>(g.scale[0]) == 128);
  }
  {
    float v[32] = {127, -3, 2.5f, 0};
    group_bytes<int8> g{};
    encode_group<int8, f16>(v, g.payload, g.scale);
    const std::uint8_t want[4] = {0x7f, 0xfd, 0x02, 0x00};
    CHECK(std::memcmp(g.payload, want, 4) == 0);
  }
  {
    float v[32] = {31, -31, 17, -1};  // scale 1; 17 = 0b010001, -1 = 0b111111, -31 = 0b100001
    group_bytes<int6> g{};
    encode_group<int6, f16>(v, g.payload, g.scale);
    // low nibbles: f, 1, 1, f ; high 2-bit parts: 01, 10, 01, 11
    const std::uint8_t lo[2] = {0x1f, 0xf1};
    CHECK(std::memcmp(g.payload, lo, 2) == 0);
    CHECK(std::to_integer<int>(g.payload[16]) == (0x1 | (0x2 << 2) | (0x1 << 4) | (0x3 << 6)));
  }
  {
    float v[32] = {7, -7, 1};
    group_bytes<int4> g{};
    encode_group<int4, f16>(v, g.payload, g.scale);
    CHECK(std::to_integer<int>(g.payload[0]) == 0x97);
    CHECK(std::to_integer<int>(g.payload[1]) == 0x01);
  }
  {
    float v[32] = {448, 1, -2};
    group_bytes<fp8> g{};
    encode_group<fp8, f16>(v, g.payload, g.scale);
    const std::uint8_t want[3] = {0x7e, 0x38, 0xc0};
    CHECK(std::memcmp(g.payload, want, 3) == 0);
  }
  {
    float v[32] = {240, 1, -2};
    group_bytes<fp8_fnuz> g{};
    encode_group<fp8_fnuz, f16>(v, g.payload, g.scale);
    const std::uint8_t want[3] = {0x7f, 0x40, 0xc8};
    CHECK(std::memcmp(g.payload, want, 3) == 0);
  }
}

TEST_CASE("golden bytes: int4m groups, both multipliers, a zero half") {
  {
    // half 0: 7.5 sets S = 127 (2^0) and m_up = 15 (scale 1): 7.5 -> q 7, -7.5 -> q -8, 0.5 -> q 0,
    // 3.2 -> q 3 (3.5), 1.5 -> q 1 (exact; one step lower would cost more); half 1 is zero: m = 0
    float v[32] = {7.5f, -7.5f, 0.5f, 3.2f};
    for (int i = 4; i < 16; ++i) v[i] = 1.5f;
    group_bytes<int4m> g{};
    encode_group<int4m, f16>(v, g.payload, g.scale);
    const std::uint8_t want[16] = {0x87, 0x30, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11};
    CHECK(std::memcmp(g.payload, want, 16) == 0);
    CHECK(std::to_integer<int>(g.scale[0]) == 127);
    CHECK(std::to_integer<int>(g.scale[1]) == 0x0f);
    const auto out = round_trip_group<int4m, f16>(v);
    CHECK(out[1] == -7.5f);
    CHECK(out[3] == 3.5f);
    CHECK(out[4] == 1.5f);
    for (int i = 16; i < 32; ++i) CHECK(out[i] == 0.0f);  // a zero half decodes to exact zeros
  }
  {
    // 7.5 and fifteen 3.28125 = 3.5 * 15/16: one step lower (m 14, scale 15/16) saturates 7.5 to
    // 7.03125 (error^2 0.22) and makes the rest exact; m 15 costs 15 * 0.219^2 = 0.72: m = 14 wins
    float v[32] = {7.5f};
    for (int i = 1; i < 16; ++i) v[i] = 3.28125f;
    for (int i = 16; i < 32; ++i) v[i] = 0.25f * float(i - 24);
    group_bytes<int4m> g{};
    encode_group<int4m, f16>(v, g.payload, g.scale);
    CHECK(std::to_integer<int>(g.payload[0]) == 0x37);
    for (int i = 1; i < 8; ++i) CHECK(std::to_integer<int>(g.payload[i]) == 0x33);
    CHECK((std::to_integer<int>(g.scale[1]) & 0xf) == 14);
    const auto out = round_trip_group<int4m, f16>(v);
    CHECK(out[0] == 7.03125f);
    CHECK(out[1] == 3.28125f);
  }
}

TEST_CASE("int4m: every code of every scale decodes to (q + 1/2) 2^(S-127) (m + 1) / 16 exactly, +0 for m = 0") {
  // decode_lane's level * sc + 0 against the definition, computed in double (exact here): any
  // shorter form must pass this too (one that subtracted 23.5 sc overflowed at the top scales)
  std::uint32_t w[2] = {0x76543210u, 0xfedcba98u};  // codes 0..15 over two lanes' payloads
  for (std::uint32_t s = std::uint32_t(int4m::min_exponent); s <= std::uint32_t(int4m::max_exponent); ++s)
    for (std::uint32_t m0 = 0; m0 < 16; ++m0)
      for (int lane = 0; lane < lanes_per_group; ++lane) {
        const std::uint32_t m1 = 15u - m0, m = lane < 2 ? m0 : m1;
        const std::uint16_t bits = std::uint16_t(s | m0 << 8 | m1 << 12);
        std::byte sb[2];
        std::memcpy(sb, &bits, 2);
        const auto st = int4m::load_scale(sb, lane);
        for (int word = 0; word < 2; ++word) {
          float y[8];
          int4m::decode_lane<bf16>(int4m::lane_payload{{w[word]}, {}}, st, y);
          for (int j = 0; j < 8; ++j) {
            const int code = int(w[word] >> (4 * j)) & 0xf, q = code >= 8 ? code - 16 : code;
            const double want = m == 0 ? 0.0 : (q + 0.5) * std::ldexp(1.0, int(s) - 127) * (m + 1) / 16.0;
            REQUIRE_MESSAGE(double(y[j]) == want, "S " << s << " m " << m << " code " << code);
            REQUIRE(!std::signbit(y[j]) == (m == 0 || q >= 0));  // +0 for a zero half
          }
        }
      }
}

// int4m's values after the inverse rotation are its levels rotated back, then scaled (what the devices
// compute in 16-bit pairs): for every scale, random codes and multipliers, they are the f32 inverse
// rotation of decode_group's values bit for bit wherever that stays finite, and where the top scales
// overflow it, each value is still the exact one rounded once (infinite only beyond the float range).
TEST_CASE("int4m: decoding rotates the levels back, then scales: the f32 inverse rotation's bits wherever it stays finite") {
  std::mt19937 rng(17);
  int compared = 0, overflowed = 0;
  for (std::uint32_t s = std::uint32_t(int4m::min_exponent); s <= 0xffu; s = s == std::uint32_t(int4m::max_exponent) ? 0xffu : s + 1)
    for (int trial = 0; trial < 24; ++trial) {
      group_bytes<int4m> g{};
      for (auto& b : g.payload) b = std::byte(rng() & 0xffu);
      const std::uint16_t bits = std::uint16_t(s | (rng() % 16) << 8 | (rng() % 16) << 12);
      std::memcpy(g.scale, &bits, 2);
      float got[32], want[32], levels[32];
      int4m::decode_rotated_group_reference(g.payload, g.scale, got);
      decode_group<int4m, bf16>(g.payload, g.scale, want);
      rotate_group_inverse<2>(want);
      bool finite = true;
      for (float w : want) finite = finite && std::isfinite(w);
      if (s == 0xffu) {
        for (int i = 0; i < 32; ++i) REQUIRE(std::isnan(got[i]));
        continue;
      }
      if (finite) {
        ++compared;
        for (int i = 0; i < 32; ++i)
          REQUIRE_MESSAGE(std::bit_cast<std::uint32_t>(got[i]) == std::bit_cast<std::uint32_t>(want[i]), "S " << s << " value " << i);
        continue;
      }
      ++overflowed;
      for (int l = 0; l < 4; ++l) {
        const std::uint32_t offset = int4m::offset_codes(int4m::load_lane(g.payload, l));
        for (int j = 0; j < 8; ++j) levels[8 * l + j] = int4m::level(offset, j);
      }
      rotate_group_inverse<2>(levels);  // exact: multiples of 1/2, at most 120 in magnitude
      for (int i = 0; i < 32; ++i) {
        const double exact = double(levels[i]) * int4m::load_scale(g.scale, i / 8).scale;
        REQUIRE(std::bit_cast<std::uint32_t>(got[i]) == std::bit_cast<std::uint32_t>(float(exact) + 0.0f));
      }
    }
  CHECK(compared > 5000);
  CHECK(overflowed > 0);  // the f32 steps overflow at the top scales: there the two differ
}

TEST_CASE("int4m: a half too small for the group's exponent gets multiplier 0 and decodes to zeros") {
  // 3e38 sets S = 252; 1e-30 * 2^(127-252) * K underflows to 0 in f32, so c = 0 and m_1 = 0 (a
  // multiplier of 1 would decode 1e-30 as about 2.7e36)
  float v[32] = {3e38f};
  for (int i = 16; i < 32; ++i) v[i] = (i % 2 ? 1e-30f : -1e-30f);
  group_bytes<int4m> g{};
  encode_group<int4m, bf16>(v, g.payload, g.scale);
  CHECK(std::to_integer<int>(g.scale[0]) == 252);
  CHECK((std::to_integer<int>(g.scale[1]) >> 4) == 0);
  const auto out = round_trip_group<int4m, bf16>(v);
  for (int i = 16; i < 32; ++i) CHECK(out[i] == 0.0f);
  CHECK(out[0] == doctest::Approx(3e38).epsilon(0.05));
}

TEST_CASE("int4m: the group exponent is ceil(log2(absmax / 7.5)), clamped, for every float exponent") {
  for (std::uint32_t b = 0; b < 0x7f800000u; b += 0x1357u) {  // a stride across all finite magnitudes
    const double a = double(std::bit_cast<float>(b));
    int want = a > 0 ? 127 + int(std::ceil(std::log2(a / 7.5))) : 0;
    // log2 in double can land a hair off an exact power of two: decide those by the exact comparison
    const double p = std::ldexp(7.5, want - 127);
    if (a > 0 && a > p) ++want;
    if (a > 0 && a <= p / 2) --want;
    want = std::clamp(want, int4m::min_exponent, int4m::max_exponent);
    REQUIRE_MESSAGE(int(int4m::group_exponent(b)) == want, "absmax " << a);
  }
  for (int k = -120; k <= 125; ++k) {  // at and beside the powers of two times 7.5, where ceil turns over
    const std::uint32_t b = std::bit_cast<std::uint32_t>(std::ldexp(7.5f, k));
    CHECK(int(int4m::group_exponent(b)) == std::clamp(127 + k, int4m::min_exponent, int4m::max_exponent));
    CHECK(int(int4m::group_exponent(b + 1)) == std::clamp(128 + k, int4m::min_exponent, int4m::max_exponent));
    CHECK(int(int4m::group_exponent(b - 1)) == std::clamp(127 + k, int4m::min_exponent, int4m::max_exponent));
  }
  CHECK(int4m::max_exponent == int(scale_e8m0::from_absmax(3.4028234e38f, 7.5f)));  // 7.5 * 2^125 is the largest finite
}

// The scales as defined (scale.hpp): from the IEEE quotient absmax / qmax.
std::uint32_t bf16_scale_of_quotient(float q) {
  std::uint32_t b = std::bit_cast<std::uint32_t>(q);
  if (b & 0xffffu) b += 0x10000u;
  b &= 0xffff0000u;
  return b < 0x00800000u ? 0x00800000u : b;  // the upper clamp acts on both sides alike
}
int e8m0_exponent_of_quotient(float q) {
  const std::uint32_t b = std::bit_cast<std::uint32_t>(q);
  int e = int((b >> 23) & 0xffu) - 127;
  if (e == -127) return (b & 0x7fffffu) ? -126 : -127;
  return (b & 0x7fffffu) ? e + 1 : e;
}

TEST_CASE("scales: the quotient without a division gives the scale of the IEEE quotient for every finite absmax") {
  // Every 61st finite absmax pattern (all of them with QREDUCE_EXHAUSTIVE=1 set: about a minute, run
  // when absmax_quotient changes), and every pattern whose quotient lies within a factor 4 of the
  // smallest normal, where the two may differ.
  const bool all = std::getenv("QREDUCE_EXHAUSTIVE") != nullptr;
  // every qmax a codec divides by: fp4/mxfp4, int4, int6, int8, fp8, fp8_fnuz
  for (const float qmax : {numeric::e2m1::max, 7.0f, 31.0f, 127.0f, numeric::e4m3fn::max, numeric::e4m3fnuz::max}) {
    std::uint64_t checked = 0, subnormal = 0, bf16_differ = 0, e8m0_differ = 0, quotient_differ = 0, normal_differ = 0;
    const auto check = [&](std::uint32_t b) {
      const float a = std::bit_cast<float>(b);
      const float fast = absmax_quotient(a, qmax), ieee = a / qmax;
      ++checked;
      subnormal += ieee < 1.17549435e-38f;
      if (std::bit_cast<std::uint32_t>(fast) == std::bit_cast<std::uint32_t>(ieee)) return;
      ++quotient_differ;
      normal_differ += ieee >= 1.17549435e-38f;  // expected only where the quotient is subnormal
      bf16_differ += bf16_scale_of_quotient(fast) != bf16_scale_of_quotient(ieee);
      e8m0_differ += e8m0_exponent_of_quotient(fast) != e8m0_exponent_of_quotient(ieee);
    };
    for (std::uint32_t b = 0; b <= 0x7f7fffffu; b += all ? 1u : 61u) check(b);
    if (!all) {
      const std::uint32_t lo = std::bit_cast<std::uint32_t>(qmax * 2.93873588e-39f), hi = std::bit_cast<std::uint32_t>(qmax * 4.70197740e-38f);
      for (std::uint32_t b = lo; b <= hi; ++b) check(b);  // quotients in [2^-128, 2^-124]
    }
    INFO("qmax " << qmax << ": " << checked << " absmax checked, " << quotient_differ << " quotients an ulp apart");
    CHECK(normal_differ == 0);
    CHECK(bf16_differ == 0);
    CHECK(e8m0_differ == 0);
    CHECK(subnormal > (std::uint64_t(1) << 23));  // the region where they may differ was covered
  }
  // the scales themselves where their clamps act
  CHECK(scale_bf16::from_absmax(0.0f, 6.0f) == 0x0080u);
  CHECK(scale_bf16::from_absmax(3.4028234e38f, 6.0f) == std::uint16_t(std::bit_cast<std::uint32_t>(3.4028234e38f / 6.0f) >> 16));
  CHECK(scale_e8m0::from_absmax(0.0f, 6.0f) == 0u);
}

// The bound scaled_codec::bounded_products relies on (the device leaves the formats' clamps out): for
// absmax across every float exponent (several mantissas each, FLT_MAX, and the values around each
// scale's upper clamp), the largest product absmax * reciprocal(scale) stays within product_bound.
template <class Scale>
float largest_product(float qmax) {
  float worst = 0.0f;
  auto at = [&](float absmax) {
    if (!std::isfinite(absmax)) return;
    const auto s = Scale::from_absmax(absmax, qmax);
    const float p = absmax * Scale::reciprocal(s);
    worst = p > worst ? p : worst;
  };
  std::mt19937 rng(3);
  for (std::uint32_t e = 0; e < 255; ++e)
    for (std::uint32_t m : {0u, 1u, 0x400000u, 0x7fffffu, std::uint32_t(rng() & 0x7fffffu), std::uint32_t(rng() & 0x7fffffu)})
      at(std::bit_cast<float>(e << 23 | m));
  for (std::uint32_t b = 0x7f7fffffu; b > 0x7f7fffffu - (1u << 18); --b) at(std::bit_cast<float>(b));  // the top binade's end
  const double top = double(Scale::to_float(Scale::from_absmax(3.40282346638528859812e38f, qmax))) * qmax;
  const float cap = top < 3.40282346638528859812e38 ? float(top) : 3.40282346638528859812e38f;
  for (std::uint32_t d = 0; d < (1u << 16); ++d) {  // the absmax values where the upper clamp starts
    at(std::bit_cast<float>(std::bit_cast<std::uint32_t>(cap) + d));
    at(std::bit_cast<float>(std::bit_cast<std::uint32_t>(cap) - d));
  }
  return worst;
}

TEST_CASE("scales: every product of a finite group stays below the bound the codecs drop their clamps on") {
  for (float qmax : {6.0f, 7.0f, 31.0f, 127.0f, 448.0f}) {
    const float bf16_worst = largest_product<scale_bf16>(qmax), e8m0_worst = largest_product<scale_e8m0>(qmax);
    CHECK_MESSAGE(bf16_worst <= scale_bf16::product_bound(qmax), "qmax " << qmax << ": " << bf16_worst);
    CHECK_MESSAGE(e8m0_worst <= scale_e8m0::product_bound(qmax), "qmax " << qmax << ": " << e8m0_worst);
    CHECK(bf16_worst > qmax);  // the upper clamp does push products past qmax: the bound is needed
  }
  static_assert(fp4::bounded_products && int4::bounded_products && int6::bounded_products && int8::bounded_products);
  static_assert(!mxfp4::bounded_products && !fp8::bounded_products);
}

TEST_CASE("scales: the reciprocal of every scale is the IEEE quotient 1 / scale") {
  for (std::uint32_t s = 0x0080u; s <= 0x7e7fu; ++s)  // every bf16 scale from_absmax can make with qmax >= 4
    CHECK(std::bit_cast<std::uint32_t>(scale_bf16::reciprocal(std::uint16_t(s))) ==
          std::bit_cast<std::uint32_t>(1.0f / scale_bf16::to_float(std::uint16_t(s))));
  for (std::uint32_t s = 0; s <= 253u; ++s)
    CHECK(std::bit_cast<std::uint32_t>(scale_e8m0::reciprocal(std::uint8_t(s))) ==
          std::bit_cast<std::uint32_t>(1.0f / scale_e8m0::to_float(std::uint8_t(s))));
}

// Every float within 1 ulp of 1 / n: what an approximate reciprocal (rcp.approx, v_rcp_f32) may return.
static std::vector<float> reciprocal_starts(int n) {
  const float want = 1.0f / float(n);
  std::vector<float> starts;
  for (float y = std::nextafter(std::nextafter(want, 0.0f), 0.0f); y <= std::nextafter(std::nextafter(want, 2.0f), 2.0f);
       y = std::nextafter(y, 2.0f)) {
    const double ulp = double(std::nextafter(y, 2.0f)) - double(y);
    if (std::fabs(double(y) - 1.0 / n) <= ulp) starts.push_back(y);
  }
  return starts;
}

TEST_CASE("reciprocals without a division: one Newton step from any start within 1 ulp gives the IEEE quotient") {
  // The devices' int4m::small_reciprocal: every integer n in [1, 16], from every float within 1 ulp
  // of 1 / n.
  for (int n = 1; n <= 16; ++n) {
    const float want = 1.0f / float(n);
    const std::vector<float> starts = reciprocal_starts(n);
    for (const float y : starts)
      CHECK_MESSAGE(std::bit_cast<std::uint32_t>(numeric::reciprocal_step(float(n), y)) == std::bit_cast<std::uint32_t>(want),
                    "n " << n << " start " << y);
    CHECK(starts.size() >= 2);
  }
  // int4m::down_ratio on the devices: (n + 1) / n rounded to binary16 from a reciprocal without the
  // Newton step, every n it is used for (2 to 15) and 1, from every float within 1 ulp of 1 / n
  for (int n = 1; n <= 15; ++n) {
    const std::uint32_t ratio = numeric::h2_bits(int4m::down_ratio(float(n)));
    const std::vector<float> starts = reciprocal_starts(n);
    for (const float y : starts) CHECK_MESSAGE(numeric::h2_bits(numeric::h2_both((float(n) + 1.0f) * y)) == ratio, "n " << n << " start " << y);
    CHECK(starts.size() >= 2);
  }
  // scale_bf16::reciprocal's divisors: every 7th bf16 scale, from its quotient and both neighbours
  for (std::uint32_t s = 0x0080u; s <= 0x7e7fu; s += 7u) {
    const float x = scale_bf16::to_float(std::uint16_t(s)), want = 1.0f / x;
    for (const float y : {std::nextafter(want, 0.0f), want, std::nextafter(want, 4.0f * want)})
      CHECK(std::bit_cast<std::uint32_t>(numeric::reciprocal_step(x, y)) == std::bit_cast<std::uint32_t>(want));
  }
}

TEST_CASE_TEMPLATE("round-trip error stays inside the bound on Gaussian and heavy-tailed data", C, ALL_CODECS) {
  std::mt19937 rng(42);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::student_t_distribution<float> t(2.0f);
  for (int trial = 0; trial < 2000; ++trial) {
    float v[32];
    const float mag = std::ldexp(1.0f, int(trial % 30) - 20);
    for (float& x : v) x = representable<f16>(std::clamp((trial % 2 ? n(rng) : t(rng)) * mag, -6e4f, 6e4f));
    check_group_within_bound<C, f16>(v);
    for (float& x : v) x = representable<bf16>(x * 1e20f);
    check_group_within_bound<C, bf16>(v);
  }
}

TEST_CASE_TEMPLATE("adversarial groups", C, ALL_CODECS) {
  float v[32];
  SUBCASE("all zero decodes to zeros") {
    for (float& x : v) x = 0.0f;
    const auto out = round_trip_group<C, f16>(v);
    for (float y : out) CHECK(y == 0.0f);
  }
  SUBCASE("all equal") {
    for (float& x : v) x = -3.25f;
    check_group_within_bound<C, f16>(v);
  }
  SUBCASE("one huge outlier") {
    for (int i = 0; i < 32; ++i) v[i] = 0.01f * float(i % 7 - 3);
    v[13] = 60000.0f;
    check_group_within_bound<C, f16>(v);
  }
  SUBCASE("fp16 subnormals") {
    for (int i = 0; i < 32; ++i) v[i] = numeric::to_float(f16{std::uint16_t(i * 31 + (i % 2 ? 0x8000 : 0))});
    check_group_within_bound<C, f16>(v);
  }
  SUBCASE("bf16 extremes: the largest and the smallest magnitudes") {
    for (int i = 0; i < 32; ++i) v[i] = numeric::to_float(bf16{std::uint16_t(i % 2 ? 0x7f7f : 0x8001)});
    check_group_within_bound<C, bf16>(v);
    for (int i = 0; i < 32; ++i) v[i] = numeric::to_float(bf16{std::uint16_t(0x0001 + i)});
    check_group_within_bound<C, bf16>(v);
  }
  SUBCASE("mixed signs around a tie") {
    for (int i = 0; i < 32; ++i) v[i] = (i % 2 ? -1.0f : 1.0f) * (0.5f + float(i) / 64.0f);
    check_group_within_bound<C, f16>(v);
  }
}

TEST_CASE_TEMPLATE("NaN and infinity poison their own group only", C, fp8, fp8_fnuz, int8, int6, int4, fp4, mxfp4, int4m) {
  std::vector<f16> in(4 * 32);
  std::mt19937 rng(3);
  std::normal_distribution<float> n;
  for (auto& x : in) x = numeric::to_f16(n(rng));
  std::vector<std::byte> clean(encoded_bytes<C>(in.size())), dirty(clean.size());
  encode<C, f16>(in.data(), in.size(), clean.data());
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    auto poisoned = in;
    poisoned[32 + 5] = numeric::to_f16(bad);
    encode<C, f16>(poisoned.data(), poisoned.size(), dirty.data());
    std::vector<float> a(in.size()), b(in.size());
    decode<C, f16>(clean.data(), in.size(), a.data());
    decode<C, f16>(dirty.data(), in.size(), b.data());
    for (std::size_t i = 0; i < in.size(); ++i) {
      if (i >= 32 && i < 64) {
        CHECK(std::isnan(b[i]));
      } else {
        REQUIRE(a[i] == b[i]);
      }
    }
  }
}

TEST_CASE("passthrough keeps NaN and infinity values") {
  float v[32] = {NAN, INFINITY, -INFINITY, 1.5f};
  const auto out = round_trip_group<passthrough, f16>(v);
  CHECK(std::isnan(out[0]));
  CHECK(out[1] == INFINITY);
  CHECK(out[2] == -INFINITY);
  CHECK(out[3] == 1.5f);
}

TEST_CASE_TEMPLATE("exhaustive fp16: every pattern, in groups, round-trips within bound", C, ALL_CODECS) {
  // Groups of 32 consecutive patterns (similar magnitudes) and each finite value alone in its group.
  for (std::uint32_t base = 0; base < 65536; base += 32) {
    float v[32];
    bool finite = true;
    for (int i = 0; i < 32; ++i) {
      v[i] = numeric::to_float(f16{std::uint16_t(base + i)});
      finite = finite && std::isfinite(v[i]);
    }
    if (finite) {
      check_group_within_bound<C, f16>(v);
    } else if constexpr (C::scale_bytes > 0) {
      for (float y : round_trip_group<C, f16>(v)) CHECK(std::isnan(y));
    }
  }
  for (std::uint32_t b = 0; b < 65536; ++b) {
    float v[32] = {};
    v[b % 32] = numeric::to_float(f16{std::uint16_t(b)});
    if (std::isfinite(v[b % 32])) check_group_within_bound<C, f16>(v);
  }
}

TEST_CASE("encode of whole buffers pads the last tile with zeros and leaves its bytes defined") {
  std::vector<f16> in(2048 + 37);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = numeric::to_f16(float(i % 11) - 5.0f);
  std::vector<std::byte> a(encoded_bytes<int4>(in.size()), std::byte{0xaa});
  std::vector<std::byte> b(a.size(), std::byte{0x55});
  encode<int4, f16>(in.data(), in.size(), a.data());
  encode<int4, f16>(in.data(), in.size(), b.data());
  CHECK(a == b);  // every byte written, padding included
  std::vector<float> out(in.size());
  decode<int4, f16>(a.data(), in.size(), out.data());
  for (std::size_t i = 0; i < in.size(); ++i) CHECK(std::fabs(out[i] - numeric::to_float(in[i])) <= 0.5f * 5.0f / 7.0f * 1.01f);
}

template <int Lanes>
void check_rotation() {
  std::mt19937 rng(5);
  std::normal_distribution<float> n;
  float x[32], y[32];
  for (float& v : x) v = std::ldexp(std::round(n(rng) * 64.0f), -6);  // few bits: exact sums
  std::memcpy(y, x, sizeof x);
  rotate_group_forward<Lanes>(y);
  // F is a Hadamard transform scaled by 1 / (8 L) within each block of B = 8 L values: every entry
  // +-1 / B (its columns: F of the unit vectors) and F F^T = I / B, exactly
  constexpr int B = 8 * Lanes;
  for (int b0 = 0; b0 < 32; b0 += B) {
    std::vector<std::vector<double>> f(B, std::vector<double>(B));
    for (int k = 0; k < B; ++k) {
      float e[32] = {};
      e[b0 + k] = 1.0f;
      rotate_group_forward<Lanes>(e);
      for (int i = 0; i < 32; ++i) {
        if (i < b0 || i >= b0 + B) CHECK(e[i] == 0.0f);  // blocks stay apart
        else f[std::size_t(i - b0)][std::size_t(k)] = e[i];
      }
    }
    for (int i = 0; i < B; ++i)
      for (int k = 0; k < B; ++k) {
        CHECK(std::fabs(f[std::size_t(i)][std::size_t(k)]) == 1.0 / B);
        double dot = 0;
        for (int c = 0; c < B; ++c) dot += f[std::size_t(i)][std::size_t(c)] * f[std::size_t(k)][std::size_t(c)];
        CHECK(dot == (i == k ? 1.0 / B : 0.0));
      }
    // and it is linear: F x from the matrix (x has few bits: exact sums)
    for (int i = 0; i < B; ++i) {
      double want = 0;
      for (int k = 0; k < B; ++k) want += f[std::size_t(i)][std::size_t(k)] * x[b0 + k];
      CHECK(double(y[b0 + i]) == doctest::Approx(want).epsilon(1e-6));
    }
  }
  rotate_group_inverse<Lanes>(y);
  for (int i = 0; i < 32; ++i) CHECK(y[i] == x[i]);
  // the largest bf16 values rotate to finite values (the scaling comes before the sums)
  for (int i = 0; i < 32; ++i) y[i] = (i % 3 ? 1.0f : -1.0f) * numeric::to_float(bf16{std::uint16_t(0x7f7f)});
  rotate_group_forward<Lanes>(y);
  for (int i = 0; i < 32; ++i) CHECK(std::isfinite(y[i]));
}

TEST_CASE("Hadamard rotation: a Hadamard transform per 16 or 32 values, inverse undoes forward, outliers cost less") {
  check_rotation<4>();
  check_rotation<2>();
  static_assert(rotation_lanes<int4> == 4 && rotation_lanes<fp4> == 4 && rotation_lanes<int4m> == 2);
  std::mt19937 rng(5);
  std::normal_distribution<float> n;

  double e_plain = 0, e_rot = 0;
  for (int trial = 0; trial < 500; ++trial) {
    float v[32];
    for (float& t : v) t = n(rng);
    v[trial % 32] = 8.0f;  // an outlier channel, 8 sigma
    group_bytes<int4> g{};
    float out[32];
    encode_group<int4, f16>(v, g.payload, g.scale);
    decode_group<int4, f16>(g.payload, g.scale, out);
    for (int i = 0; i < 32; ++i) e_plain += double(out[i] - v[i]) * (out[i] - v[i]);
    encode_rotated_group<int4, f16>(v, g.payload, g.scale);
    decode_rotated_group<int4, f16>(g.payload, g.scale, out);
    for (int i = 0; i < 32; ++i) e_rot += double(out[i] - v[i]) * (out[i] - v[i]);
  }
  CHECK(e_rot < 0.5 * e_plain);
}
