// qreduce/codec/int4m.hpp: int4m, 4-bit codes with a scale per 16 values, 4.5 bits per value.
//
// A group of 32 values is two halves of 16 (lanes 0-1 and lanes 2-3 of the group). Its 2-byte scale
// is an E8M0 exponent S for the group and one 4-bit multiplier m_h per half:
//
//   scale byte 0: S, 2^(S-127) (0xff: the group held a NaN or an infinity; it decodes to 32 NaNs)
//   scale byte 1: m_0 | m_1 << 4
//   value i:      (q_i + 1/2) * 2^(S-127) * mult(m_h),   mult(0) = 0, mult(m) = (m + 1) / 16
//   payload:      q_i as 4-bit two's complement (-8..7), value i in byte i/2 (even i low nibble)
//
// Sixteen levels, +-1/2 .. +-15/2 steps (no zero level: a uniform grid of 16 levels has a 7% finer
// step than one of 15 with a zero); m = 0 marks a half of zeros, which decodes to exact zeros.
//
// Encoding (every step IEEE f32, the same on every backend):
//   S      = 127 + ceil(log2(group absmax / 7.5)), exactly (from the bits of absmax), clamped to
//            [4, 252]: the smallest half scale, 2^-126, has a finite reciprocal, 7.5 * 2^125 is finite
//   a'     = half absmax * 2^(127-S) (exact above the float range's bottom), in [0, 7.5] (8 at S = 252)
//   m_up   = clamp(ceil(a' * K) - 1, 1, 15), K the float nearest 32/15, the product in f32 (0 for a zero half): the
//            smallest multiplier whose range holds the half;
//   then whichever of m_up and m_up - 1 (>= 1) gives the smaller squared error over the half's 16
//   values (m_up on a tie): one step lower saturates the largest values a little and rounds every
//   other value on a finer grid, which wins about half the time;
//   q_i    = clamp(rne(x_i * inv - 1/2), -8, 7) (the nearest level; a tie to the even q), with
//            sc = 2^(S-127) * mult(m), inv its correctly rounded reciprocal, x_i * inv - 1/2 by one
//            fused multiply-add;
//   error  = sc^2 * sum over the half of d_i^2, d_i = q_i - (x_i * inv - 1/2) (in steps), by fmaf in
//            value order within a lane, then the two lanes' sums added, then the product by sc^2.
// The groups int4m encodes are always Walsh-Hadamard rotated (codec::always_rotated), each half of 16
// on its own (rotation_lanes = 2: one step across lanes, and as accurate as the whole group's rotation
// here, since each half has its own scale): a grid without a zero level rounds the small values
// beside an outlier to half a step of the outlier's scale; the rotation spreads the outlier first.
// Halves of 16 under one shared exponent spend the same 16 bits as one bf16 scale per 32 values and
// follow the data twice as closely; the choice between two multipliers is a one-step search of the
// scale that rounds closer. docs/wire-format.md has the bytes; bench/accuracy.cpp the measurements.
#pragma once
#include <cmath>
#include <cstdint>
#include "codec.hpp"
#include "memory.hpp"
#include "scaled.hpp"
#include "../numeric/minifloat.hpp"

namespace qreduce::codec {

struct int4m {
  static constexpr const char* name = "int4m";
  static constexpr int payload_bytes = 16;
  static constexpr int scale_bytes = 2;
  static constexpr float qmax = 7.5f;
  static constexpr bool always_rotated = true;  // codec.hpp; measured in bench/accuracy.cpp
  static constexpr int rotation_lanes = 2;  // rotation.hpp: each half of 16 on its own, like its scales
  using pack4 = packing<4>;  // the 4-bit payload layout of scaled.hpp: value i in byte i/2
  using lane_payload = pack4::lane_payload;
  // The group's scale bytes, and the scale of the half this lane belongs to (NaN: a non-finite group).
  struct state {
    std::uint16_t bits;
    float scale;
  };

  // ---- shared arithmetic (host reference and device lanes) ----

  // The group exponent S: 2^(S-127) = 2^ceil(log2(absmax / 7.5)), exactly, from the bits of absmax
  // (absmax = 1.f * 2^e: absmax / 7.5 = (1.f / 1.875) * 2^(e-2), whose ceil(log2) is e - 2, plus one
  // when 1.f > 1.875, i.e. when the mantissa field exceeds 0x700000); raised to at least 4 so that every
  // half scale has a finite reciprocal, lowered to at most 252 so that 7.5 * 2^(S-127) is finite.
  static constexpr int min_exponent = 4, max_exponent = 252;

  QR_HOST_DEVICE static QR_FORCEINLINE std::uint32_t group_exponent(std::uint32_t absmax_bits) {
    int s = int(absmax_bits >> 23) - 2 + ((absmax_bits & 0x7fffffu) > 0x700000u ? 1 : 0);
    s = s < min_exponent ? min_exponent : (s > max_exponent ? max_exponent : s);
    return std::uint32_t(s);
  }

  static constexpr float magic = 8388608.0f;  // 2^23: a float in [2^23, 2^24) holds an integer in its low bits

  // The small integer i (0 <= i < 2^23) as a float, by the bits (exact; no conversion instruction).
  QR_HOST_DEVICE static QR_FORCEINLINE float small_float(std::uint32_t i) { return numeric::bits_float(0x4b000000u | i) - magic; }

  // 2^(S-127) and 2^(127-S), S in [4, 252]: normal floats, exact.
  QR_HOST_DEVICE static QR_FORCEINLINE float exponent_value(std::uint32_t s) { return numeric::bits_float(s << 23); }
  QR_HOST_DEVICE static QR_FORCEINLINE float exponent_inverse(std::uint32_t s) { return numeric::bits_float((254u - s) << 23); }

  QR_HOST_DEVICE static QR_FORCEINLINE float half_scale(std::uint32_t s, std::uint32_t m) {
    return m == 0u ? 0.0f : small_float(m + 1u) * 0.0625f * exponent_value(s);
  }

  // The smallest multiplier whose range holds a half of largest magnitude `half_absmax`:
  // ceil(a' * K) - 1 with a' = half_absmax * 2^(127-S), K the float nearest 32/15, products in f32.
  QR_HOST_DEVICE static QR_FORCEINLINE std::uint32_t multiplier_up(std::uint32_t s, float half_absmax) {
    if (half_absmax == 0.0f) return 0u;
    float m = ceilf(half_absmax * exponent_inverse(s) * (32.0f / 15.0f)) - 1.0f;
    m = m < 1.0f ? 1.0f : (m > 15.0f ? 15.0f : m);
    return std::uint32_t(m);
  }

  // 1 / half_scale: 16 / (m + 1) correctly rounded, times 2^(127-S) (exact): the correctly rounded
  // reciprocal of the scale, without a division. 0 for a half of zeros.
  QR_HOST_DEVICE static QR_FORCEINLINE float half_inverse(std::uint32_t s, std::uint32_t m) {
    if (m == 0u) return 0.0f;
#if QR_DEVICE_PASS
    const float r = __frcp_rn(small_float(m + 1u));
#else
    const float r = 1.0f / small_float(m + 1u);
#endif
    return r * 16.0f * exponent_inverse(s);
  }

  struct lane_try {
    float code[8];  // 2^23 + q + 8 for each of the lane's values
    float error;  // sum over the lane's 8 values of (q + 1/2 - x inv)^2: the squared error in steps
  };

  // The lane's 8 values at a half scale of reciprocal inv (half_inverse): q = clamp(rne(x inv - 1/2),
  // -8, 7), formed as 2^23 + 8 + t, t = x inv - 1/2 by one fused multiply-add, rounded once to an
  // integer, then clamped. The error of a value is q - t, in steps. Full-rate float operations only.
  QR_HOST_DEVICE static QR_FORCEINLINE lane_try try_scale(const float (&x)[8], float inv) {
    lane_try r;
    r.error = 0.0f;
    QR_UNROLL
    for (int j = 0; j < 8; ++j) {
      const float t = fmaf(x[j], inv, -0.5f);
      const float c = fminf(fmaxf(t + (magic + 8.0f), magic), magic + 15.0f);
      r.code[j] = c;
      const float d = (c - (magic + 8.0f)) - t;
      r.error = fmaf(d, d, r.error);
    }
    return r;
  }

  // A half's squared error in units of its scale squared, back to absolute units for the comparison.
  QR_HOST_DEVICE static QR_FORCEINLINE float absolute_error(float steps_error, float sc) { return steps_error * (sc * sc); }

  // The 4-bit two's complement codes: q + 8 is the low nibble of each float's bits; bit 3 flipped.
  QR_HOST_DEVICE static QR_FORCEINLINE std::uint32_t pack(const float (&c)[8]) {
#if QR_BACKEND_CUDA && QR_DEVICE_PASS
    // byte gathers (prmt): the low bytes of codes 0, 2, 4, 6 and of 1, 3, 5, 7, then the nibbles
    std::uint32_t b[8];
    QR_UNROLL
    for (int j = 0; j < 8; ++j) b[j] = numeric::float_bits(c[j]);
    const auto gather = [](std::uint32_t p, std::uint32_t q, std::uint32_t u, std::uint32_t v) {  // byte 0 of each
      return numeric::prmt<0x7610u>(numeric::prmt<0x0040u>(p, q), numeric::prmt<0x4000u>(u, v));
    };
    const std::uint32_t even = gather(b[0], b[2], b[4], b[6]), odd = gather(b[1], b[3], b[5], b[7]);
    return ((even & 0x0f0f0f0fu) | ((odd & 0x0f0f0f0fu) << 4)) ^ 0x88888888u;
#else
    std::uint32_t w = 0u;
    QR_UNROLL
    for (int j = 0; j < 8; ++j) w |= (numeric::float_bits(c[j]) & 0xfu) << (4 * j);
    return w ^ 0x88888888u;
#endif
  }

  QR_HOST_DEVICE static QR_FORCEINLINE state make_scale(std::uint32_t s, std::uint32_t m0, std::uint32_t m1, int half) {
    return state{std::uint16_t(s | (m0 << 8) | (m1 << 12)), half_scale(s, half == 0 ? m0 : m1)};
  }

  QR_HOST_DEVICE static QR_FORCEINLINE state nan_state() { return state{0x00ffu, numeric::bits_float(0x7fc00000u)}; }

  // ---- host reference: one group (host-device only so that the codec concepts hold in device passes) ----
  template <class T>
  QR_HOST_DEVICE static void encode_group_reference(const float* v, std::byte* payload, std::byte* scale) {
    float x[lanes_per_group][8];
    std::uint32_t lane_am[lanes_per_group];
    for (int l = 0; l < lanes_per_group; ++l) {
      for (int j = 0; j < 8; ++j) x[l][j] = v[8 * l + j];
      lane_am[l] = absmax_bits8(x[l]);
    }
    const std::uint32_t half_am[2] = {lane_am[0] > lane_am[1] ? lane_am[0] : lane_am[1], lane_am[2] > lane_am[3] ? lane_am[2] : lane_am[3]};
    const std::uint32_t am = half_am[0] > half_am[1] ? half_am[0] : half_am[1];
    std::uint32_t codes[lanes_per_group] = {};
    state st = nan_state();
    if (numeric::is_finite_bits(am)) {
      const std::uint32_t s = group_exponent(am);
      std::uint32_t m[2];
      for (int h = 0; h < 2; ++h) {
        const std::uint32_t up = multiplier_up(s, numeric::bits_float(half_am[h]));
        const float ia = half_inverse(s, up);
        const lane_try a0 = try_scale(x[2 * h], ia), a1 = try_scale(x[2 * h + 1], ia);
        m[h] = up;
        codes[2 * h] = pack(a0.code);
        codes[2 * h + 1] = pack(a1.code);
        if (up >= 2u) {
          const float ib = half_inverse(s, up - 1u);
          const lane_try b0 = try_scale(x[2 * h], ib), b1 = try_scale(x[2 * h + 1], ib);
          if (absolute_error(b0.error + b1.error, half_scale(s, up - 1u)) < absolute_error(a0.error + a1.error, half_scale(s, up))) {
            m[h] = up - 1u;
            codes[2 * h] = pack(b0.code);
            codes[2 * h + 1] = pack(b1.code);
          }
        }
      }
      st = make_scale(s, m[0], m[1], 0);
    }
    for (int l = 0; l < lanes_per_group; ++l) store_lane(payload, l, lane_payload{{codes[l]}});
    store_scale(scale, st);
  }

  // ---- device lanes: lane `lane` (0..3) of a group; exchange(v, mask) is lane (lane ^ mask)'s v ----
  template <class T, class Exchange>
  QR_HOST_DEVICE static QR_FORCEINLINE lane_payload encode_lane_exchange(const float (&x)[8], int lane, state& st, Exchange&& exchange) {
    std::uint32_t half_am = absmax_bits8(x);
    const std::uint32_t a1 = exchange(half_am, 1);
    half_am = a1 > half_am ? a1 : half_am;
    const std::uint32_t a2 = exchange(half_am, 2);
    const std::uint32_t am = a2 > half_am ? a2 : half_am;
    // A group with a NaN or an infinity runs every step below too, on a zero absmax, so that all lanes
    // of the wave take part in every shuffle; its result is replaced at the end.
    const bool finite = numeric::is_finite_bits(am);
    const std::uint32_t s = group_exponent(finite ? am : 0u);
    const std::uint32_t up = multiplier_up(s, finite ? numeric::bits_float(half_am) : 0.0f);
    const std::uint32_t down = up >= 2u ? up - 1u : up;
    const lane_try a = try_scale(x, half_inverse(s, up));
    const lane_try b = try_scale(x, half_inverse(s, down));
    const float ea = a.error + exchange(a.error, 1), eb = b.error + exchange(b.error, 1);  // the same sums on both lanes
    const bool lower = up >= 2u && absolute_error(eb, half_scale(s, down)) < absolute_error(ea, half_scale(s, up));
    const std::uint32_t m = lower ? down : up;
    const std::uint32_t other = exchange(m, 2);
    const int half = lane >> 1;
    float c[8];
    QR_UNROLL
    for (int j = 0; j < 8; ++j) c[j] = lower ? b.code[j] : a.code[j];
    if (!finite) {
      st = nan_state();
      return lane_payload{{0u}};
    }
    st = make_scale(s, half == 0 ? m : other, half == 0 ? other : m, half);
    return lane_payload{{pack(c)}};
  }

  template <class T>
  QR_HOST_DEVICE static QR_FORCEINLINE void decode_lane(const lane_payload& p, const state& st, float (&y)[8]) {
    const float bias = -7.5f * st.scale;
    QR_UNROLL
    for (int j = 0; j < 8; ++j) {
      // value = (q + 8) sc - 7.5 sc (exact), q + 8 = code ^ 8
      y[j] = fmaf(small_float(((p.w[0] >> (4 * j)) & 0xfu) ^ 0x8u), st.scale, bias);
    }
  }

  QR_HOST_DEVICE static QR_FORCEINLINE void store_lane(std::byte* g, int lane, const lane_payload& p) { pack4::store(g, lane, p); }
  QR_HOST_DEVICE static QR_FORCEINLINE lane_payload load_lane(const std::byte* g, int lane) { return pack4::load(g, lane); }
  QR_HOST_DEVICE static QR_FORCEINLINE void store_scale(std::byte* s, const state& st) { mem::store_small<std::uint16_t>(s, st.bits); }
  QR_HOST_DEVICE static QR_FORCEINLINE state load_scale(const std::byte* s, int lane) {
    const std::uint16_t b = mem::load_small<std::uint16_t>(s);
    const std::uint32_t e = b & 0xffu;
    if (e == 0xffu) return nan_state();
    return state{b, half_scale(e, (lane >> 1) == 0 ? (b >> 8) & 0xfu : b >> 12)};
  }
};

}  // namespace qreduce::codec
