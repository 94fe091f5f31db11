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
// step than one of 15 with a zero); m = 0 marks a half of zeros (or of values too small for the
// group's exponent to scale: below about 2^-149 of its largest), which decodes to exact zeros.
//
// Encoding (every step IEEE f32 or, in the search, IEEE binary16; the same on every backend):
//   S      = 127 + ceil(log2(group absmax / 7.5)), exactly (from the bits of absmax), clamped to
//            [4, 252]: the smallest half scale, 2^-126, has a finite reciprocal, 7.5 * 2^125 is finite
//   a'     = half absmax * 2^(127-S) (exact above the float range's bottom), in [0, 7.5] (8 at S = 252)
//   m_up   = clamp(ceil(a' * K) - 1, 1, 15), K the float nearest 32/15, the product in f32: the
//            smallest multiplier whose range holds the half; 0 when a' * K is 0 (a zero half, or one
//            whose product underflows: zeros are then its nearest values);
//   then whichever of m_up and m_up - 1 (>= 1) gives the smaller squared error over the half's 16
//   values (m_up on a tie): one step lower saturates the largest values a little and rounds every
//   other value on a finer grid, which wins about half the time. The search (`search` below) runs in
//   binary16, a pair of values an instruction: q_i = clamp(rne(x_i * inv - 1/2), -8, 7), the nearest
//   level (a tie to the even q), with x_i * inv - 1/2 one f32 fused multiply-add rounded to binary16
//   (inv the correctly rounded reciprocal of m_up's scale; the scale one step down reached by one
//   binary16 multiply-add); the squared errors summed in binary16 and compared in f32 in units of a
//   sixteenth of 2^(S-127), squared.
// The groups int4m encodes are always Walsh-Hadamard rotated (codec::always_rotated), each half of 16
// on its own (rotation_lanes = 2: one step across lanes, and as accurate as the whole group's rotation
// here, since each half has its own scale): a grid without a zero level rounds the small values
// beside an outlier to half a step of the outlier's scale; the rotation spreads the outlier first.
// Decoding rotates back the levels, not the values: value i of a half is sc * (R^-1 (q + 1/2))_i,
// the inverse rotation (codec/rotation.hpp) of the half's 16 levels, exact, times the half's scale,
// rounded once (`decode_rotated_group_reference`; the devices rotate the levels in packed 16-bit
// arithmetic, below). Whenever the f32 inverse rotation of the decoded values does not overflow, it
// gives the same bits: each of its steps is exact (multiples of sc / 2 of at most 12 bits).
// Halves of 16 under one shared exponent spend the same 16 bits as one bf16 scale per 32 values and
// follow the data twice as closely; the choice between two multipliers is a one-step search of the
// scale that rounds closer. docs/wire-format.md has the bytes; bench/accuracy.cpp the measurements.
#pragma once
#include <cmath>
#include <cstdint>
#include "codec.hpp"
#include "memory.hpp"
#include "rotation.hpp"
#include "scaled.hpp"
#include "../numeric/half2.hpp"
#include "../numeric/minifloat.hpp"

namespace qreduce::codec {

struct int4m {
  static constexpr const char* name = "int4m";
  static constexpr int payload_bytes = 16;
  static constexpr int scale_bytes = 2;
  static constexpr float qmax = 7.5f;
  static constexpr bool always_rotated = true;  // codec.hpp; measured in bench/accuracy.cpp
  static constexpr int rotation_lanes = 2;  // rotation.hpp: each half of 16 on its own, like its scales
  static constexpr bool encodes_zero_sign = false;  // codec.hpp: +0 and -0 search and round alike
  static constexpr bool state_is_stored = true;  // device/tile.hpp as_stored: encode's state is load_scale's
  using pack4 = packing<4>;  // the 4-bit payload layout of scaled.hpp: value i in byte i/2
  // A lane's payload as the codec holds it: its 8 codes as stored (`w`, the 4-bit layout) and, on the
  // devices, the same codes as the 16-bit level pairs its decode rotates back (`levels`): placed from
  // the codes by load_lane, taken from the search by the encode, so that the two-shot decodes its own
  // sums without unpacking them (for a non-finite group, whatever the search chose: its NaN scale
  // decodes every level to NaN). Only `w` is stored.
  struct lane_payload {
    std::uint32_t w[1];
    std::uint32_t levels[4];
  };
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
    // + 0xfffff carries into the exponent field exactly when the mantissa field exceeds 0x700000
    int s = int((absmax_bits + 0xfffffu) >> 23) - 2;
    s = s < min_exponent ? min_exponent : (s > max_exponent ? max_exponent : s);
    return std::uint32_t(s);
  }

  // 2^(S-127) and 2^(127-S), S in [4, 252]: normal floats, exact.
  QR_HOST_DEVICE static QR_FORCEINLINE float exponent_value(std::uint32_t s) { return numeric::bits_float(s << 23); }
  QR_HOST_DEVICE static QR_FORCEINLINE float exponent_inverse(std::uint32_t s) { return numeric::bits_float((254u - s) << 23); }

  // mult(m) = (m + 1) / 16, 0 for m = 0, without a branch: the float 2^19 + j / 16 (its ulp is 1/16)
  // less 2^19 is j / 16 exactly, j = m + min(m, 1).
  QR_HOST_DEVICE static QR_FORCEINLINE float multiplier(std::uint32_t m) {
#if QR_DEVICE_PASS && QR_BACKEND_CUDA
    // one min.u32 and one three-input addition (written in C++, the compiler makes it a compare, a
    // select of m or m + 1, and an or: four instructions)
    std::uint32_t z;
    asm("min.u32 %0, %1, 1;" : "=r"(z) : "r"(m));
#else
    const std::uint32_t z = m < 1u ? m : 1u;
#endif
    return numeric::bits_float(0x49000000u + m + z) - 524288.0f;
  }
  // (m + 1) / 16 * 2^(S-127), 0 for m = 0.
  QR_HOST_DEVICE static QR_FORCEINLINE float half_scale(std::uint32_t s, std::uint32_t m) { return multiplier(m) * exponent_value(s); }

  // The smallest multiplier whose range holds a half of largest magnitude `half_absmax`:
  // ceil(a' * K) - 1 with a' = half_absmax * 2^(127-S), K the float nearest 32/15, products in f32.
  // With c = ceil(a' * K) (0 for a zero half, and for one whose product underflows, about 2^-149
  // below the group's largest value), m = min(max(c - 1, min(c, 1)), 15): 0 for c = 0, else c - 1
  // raised to 1 and capped at 15; without a branch, so that the compiler can
  // interleave independent groups. As a float (exact), and as the integer.
  QR_HOST_DEVICE static QR_FORCEINLINE float multiplier_up_float(std::uint32_t s, float half_absmax) {
    const float c = ceilf(half_absmax * exponent_inverse(s) * (32.0f / 15.0f));
    return fminf(fmaxf(c - 1.0f, fminf(c, 1.0f)), 15.0f);
  }
  QR_HOST_DEVICE static QR_FORCEINLINE std::uint32_t multiplier_up(std::uint32_t s, float half_absmax) {
    return std::uint32_t(multiplier_up_float(s, half_absmax));
  }

  // 1 / n within 1 ulp for an integer n in [1, 16] (on the host, the quotient itself): where only
  // a coarser rounding of a product with it is kept (the search's ratio below).
  QR_HOST_DEVICE static QR_FORCEINLINE float approx_reciprocal(float n) {
#if QR_DEVICE_PASS && QR_BACKEND_CUDA
    float y;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(n));
    return y;
#elif QR_DEVICE_PASS && QR_BACKEND_HIP
    return __builtin_amdgcn_rcpf(n);
#else
    return 1.0f / n;
#endif
  }

  // 1 / n, correctly rounded, for an integer n in [1, 16]. On a device without a division: the
  // approximate reciprocal (at most 1 ulp off: rcp.approx, v_rcp_f32) and one Newton step
  // (numeric::reciprocal_step), while 1 / n (exact, or a binary expansion of period at most 12 for
  // n <= 16) never lies within 2^-35 of a rounding midpoint: the division's rounding, without its
  // branch to a slow path (tests/host checks every n from every start within 1 ulp; tests/gpu
  // compares the bytes).
  QR_HOST_DEVICE static QR_FORCEINLINE float small_reciprocal(float n) {
#if QR_DEVICE_PASS
    return numeric::reciprocal_step(n, approx_reciprocal(n));
#else
    return 1.0f / n;
#endif
  }

  // 16 / (m + 1) correctly rounded, times 2^(127-S) (exact): the correctly rounded reciprocal of the
  // scale of multiplier m >= 1, without a division (for m = 0, a finite value: that half decodes to
  // zeros whatever its codes). 16 * 2^(127-S) = 2^(131-S) is one power of two built from S's bits
  // (one multiply of the reciprocal, which is in [1/16, 1]: the product is a normal float, exact).
  QR_HOST_DEVICE static QR_FORCEINLINE float half_inverse(std::uint32_t s, float m) {
    return small_reciprocal(m + 1.0f) * numeric::bits_float((258u - s) << 23);
  }

  // ---- the search, in binary16 arithmetic (numeric/half2.hpp: packed pairs on the devices) ----
  //
  // t = x inv_up - 1/2 (one f32 fused multiply-add) rounded to binary16; then each step one binary16
  // operation, rounded to nearest even (the binary16 ulp in [1024, 2048) is 1: r - 1040 is an integer):
  //   m_up:      r  = min(t + 1040, 1047)                    t >= -8.5 (-8 - tiny below S = 252): no lower
  //                                                          clamp (1031.5 ties to 1032); the upper one
  //                                                          acts only at S = 252
  //   m_up - 1:  t' = fma(t, ratio, offset), r' = clamp(t' + 1040, 1032, 1047), with
  //              ratio = binary16(f32(m_up + 1) * (1 / m_up)), offset = fma(ratio, 1/2, -1/2) (exact):
  //              t' is x inv_down - 1/2 to binary16 precision (inv_down / inv_up = (m_up + 1) / m_up)
  //   code:      q = r - 1040 (the nearest level; a tie to the even q), its 4-bit two's complement the
  //              low nibble of r's binary16 bits (r = 1024 + 16 + q)
  //   error:     d = (r - 1040) - t, summed as e = fma(d, d, e) in value order over the lane's even
  //              values and its odd values apart (the halves of its pairs), then even + odd
  // Pairs of values go through one packed instruction a step: half the float instructions of the same
  // search in f32.
  struct lane_search {
    numeric::half2 up[4], down[4];  // r and r' of the pairs (2p, 2p + 1)
    numeric::half2 errors;  // the lane's squared errors in steps: (m_up, m_up - 1)
  };

  // The search's ratio for a half of multiplier n = m_up as a float (n <= 1: a finite value, unused),
  // and its offset. The ratio is (n + 1) / n rounded to binary16, from a reciprocal within 1 ulp: 1 + 1/n
  // lies at least 1 / (15 * 2^11) from every binary16 rounding midpoint of [1, 2] (odd multiples of
  // 2^-11; 1/n is never one, n <= 15), the f32 product within about 2^-21 of it (tests/host checks
  // every n from every start).
  QR_HOST_DEVICE static QR_FORCEINLINE numeric::half2 down_ratio(float n) { return numeric::h2_both((n + 1.0f) * approx_reciprocal(fmaxf(n, 1.0f))); }
  QR_HOST_DEVICE static QR_FORCEINLINE numeric::half2 down_offset(numeric::half2 ratio) {
    return numeric::h2_fma(ratio, numeric::h2_constant<0.5f>(), numeric::h2_constant<-0.5f>());
  }

  QR_HOST_DEVICE static QR_FORCEINLINE lane_search search(const float (&x)[8], float inv_up, numeric::half2 ratio, numeric::half2 offset) {
    using namespace numeric;
    const half2 k1040 = h2_constant<1040.0f>(), k1032 = h2_constant<1032.0f>(), k1047 = h2_constant<1047.0f>();
    lane_search r;
    half2 eu = h2_constant<0.0f>(), ed = eu;
    QR_UNROLL
    for (int p = 0; p < 4; ++p) {
      const half2 t = h2_round(fmaf(x[2 * p], inv_up, -0.5f), fmaf(x[2 * p + 1], inv_up, -0.5f));
      r.up[p] = h2_min(h2_add(t, k1040), k1047);
      const half2 du = h2_sub(h2_sub(r.up[p], k1040), t);
      eu = h2_fma(du, du, eu);
      const half2 t2 = h2_fma(t, ratio, offset);
      r.down[p] = h2_min(h2_max(h2_add(t2, k1040), k1032), k1047);
      const half2 dd = h2_sub(h2_sub(r.down[p], k1040), t2);
      ed = h2_fma(dd, dd, ed);
    }
    r.errors = h2_add(h2_lows(eu, ed), h2_highs(eu, ed));
    return r;
  }

  // Whether m_up - 1 wins, from a half's errors in steps (m_up, m_up - 1) (the sum of its two lanes'
  // in binary16) and n = m_up as a float: E' n^2 < E (n + 1)^2 in f32, the errors in units of 1/16
  // of 2^(S-127) squared; m_up on a tie, and always for n < 2.
  QR_HOST_DEVICE static QR_FORCEINLINE bool lower_wins(float n, numeric::half2 errors) {
    float e_up, e_down;
    numeric::h2_floats(errors, e_up, e_down);
    const float n1 = n + 1.0f;
    return (n >= 2.0f) & (e_down * (n * n) < e_up * (n1 * n1));
  }

  // The 4-bit two's complement codes of the pairs' r (binary16 1040 + q: q's nibble is the low
  // nibble of each half's bits), value j at bits [4j, 4j + 4).
  QR_HOST_DEVICE static QR_FORCEINLINE std::uint32_t pack(const numeric::half2 (&r)[4]) {
#if QR_BACKEND_CUDA && QR_DEVICE_PASS
    // byte gathers (prmt): the halves' low bytes (16 + q, bit 4 set for q >= 0), values 0-3 and 4-7,
    // then two low nibbles a byte (one bit select each), then the even bytes
    const std::uint32_t lo = numeric::prmt<0x6420u>(r[0].bits, r[1].bits), hi = numeric::prmt<0x6420u>(r[2].bits, r[3].bits);
    // (b & 0x0f0f0f0f) | ((b >> 4) & 0xf0f0f0f0): a bit select under one mask, one lop3
    const auto nibbles = [](std::uint32_t b) {
      std::uint32_t n;
      asm("lop3.b32 %0, %1, %2, 0x0f0f0f0f, 0xe4;" : "=r"(n) : "r"(b), "r"(b >> 4));
      return n;
    };
    return numeric::prmt<0x6420u>(nibbles(lo), nibbles(hi));
#else
    std::uint32_t w = 0u;
    QR_UNROLL
    for (int p = 0; p < 4; ++p) {
      const std::uint32_t b = numeric::h2_bits(r[p]);
      w |= ((b & 0xfu) | ((b >> 12) & 0xf0u)) << (8 * p);
    }
    return w;
#endif
  }

  // The group's scale bytes, and the scale of half 0 (the host reference's state; a device lane forms
  // its own half's).
  QR_HOST_DEVICE static QR_FORCEINLINE state make_scale(std::uint32_t s, std::uint32_t m0, std::uint32_t m1) {
    return state{std::uint16_t(s | (m0 << 8) | (m1 << 12)), half_scale(s, m0)};
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
        const float n = multiplier_up_float(s, numeric::bits_float(half_am[h]));
        const numeric::half2 ratio = down_ratio(n), offset = down_offset(ratio);
        const float inv = half_inverse(s, n);
        const lane_search a = search(x[2 * h], inv, ratio, offset), b = search(x[2 * h + 1], inv, ratio, offset);
        const bool lower = lower_wins(n, numeric::h2_add(a.errors, b.errors));
        m[h] = std::uint32_t(n) - std::uint32_t(lower);
        codes[2 * h] = pack(lower ? a.down : a.up);
        codes[2 * h + 1] = pack(lower ? b.down : b.up);
      }
      st = make_scale(s, m[0], m[1]);
    }
    for (int l = 0; l < lanes_per_group; ++l) store_lane(payload, l, lane_payload{{codes[l]}, {}});
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
    const float n = multiplier_up_float(s, finite ? numeric::bits_float(half_am) : 0.0f);
    const std::uint32_t up = std::uint32_t(n);
    const numeric::half2 ratio = down_ratio(n);
    const lane_search r = search(x, half_inverse(s, n), ratio, down_offset(ratio));
    // the half's errors, the same sums on both of its lanes (binary16 addition commutes)
    const bool lower = lower_wins(n, numeric::h2_add(r.errors, numeric::h2_from_bits(exchange(numeric::h2_bits(r.errors), 1))));
    const std::uint32_t m = up - std::uint32_t(lower);
    // scale byte 1: this half's multiplier in its nibble, the other half's from a lane of it
    const std::uint32_t mine = m << (8 + 4 * (lane >> 1));
    const std::uint32_t bits = s | mine | exchange(mine, 2);
    st = finite ? state{std::uint16_t(bits), half_scale(s, m)} : nan_state();
    numeric::half2 chosen[4];
    QR_UNROLL
    for (int p = 0; p < 4; ++p) chosen[p] = numeric::h2_select(lower, r.down[p], r.up[p]);  // element-wise: registers only
    lane_payload out{{pack(chosen) & (0u - std::uint32_t(finite))}, {}};  // a mask, not a select: no branch around pack
#if QR_DEVICE_PASS
    QR_UNROLL
    for (int k = 0; k < 4; ++k) out.levels[k] = level_pair(numeric::h2_bits(chosen[k]));  // r's low nibbles are the codes
#endif
    return out;
  }

  // ---- decoding ----

  // The payload word with every code's top bit flipped: each nibble q + 8, in [0, 16).
  QR_HOST_DEVICE static QR_FORCEINLINE std::uint32_t offset_codes(const lane_payload& p) { return p.w[0] ^ 0x88888888u; }

  // Value j's level q + 1/2 as a float, exactly, from offset_codes: the float 2^22 + (q + 8) + 1/2
  // (its ulp is 1/2: the low bits 2 (q + 8) + 1) less 2^22 + 8. Two integer operations, one addition.
  QR_HOST_DEVICE static QR_FORCEINLINE float level(std::uint32_t offset, int j) {
    const std::uint32_t shifted = j == 0 ? offset << 1 : offset >> (4 * j - 1);
#if QR_DEVICE_PASS && QR_BACKEND_CUDA
    // (shifted & 0x1e) | 0x4a800001 as one lop3 (written as an and and an or, two instructions: a
    // lop3 takes one immediate, and the compiler does not keep the other in a register)
    std::uint32_t b;
    asm("lop3.b32 %0, %1, 0x1e, 0x4a800001, 0xea;" : "=r"(b) : "r"(shifted));
#else
    const std::uint32_t b = (shifted & 0x1eu) | 0x4a800001u;
#endif
    return numeric::bits_float(b) - 4194312.0f;
  }

  // The values in the rotated basis: level * sc, exact; + 0 so that a zero scale gives +0 whatever
  // the level's sign (a half of zeros decodes to +0). tests/host checks every code of every scale.
  template <class T>
  QR_HOST_DEVICE static QR_FORCEINLINE void decode_lane(const lane_payload& p, const state& st, float (&y)[8]) {
    const std::uint32_t offset = offset_codes(p);
    QR_UNROLL
    for (int j = 0; j < 8; ++j) y[j] = fmaf(level(offset, j), st.scale, 0.0f);
  }

  // acc_j + decode_lane's value j as one fused multiply-add (the product is exact): the two-shot's
  // reduce step, where the sum only goes on to encode_lane. The one difference from decode_lane and
  // an addition is a zero sum's sign where the scale is 0 (level * 0 may be -0), which int4m's encode
  // does not see (encodes_zero_sign = false).
  template <class T>
  QR_HOST_DEVICE static QR_FORCEINLINE void accumulate_lane(const lane_payload& p, const state& st, float (&acc)[8]) {
    const std::uint32_t offset = offset_codes(p);
    QR_UNROLL
    for (int j = 0; j < 8; ++j) acc[j] = fmaf(level(offset, j), st.scale, acc[j]);
  }

  // Host reference of a group's values rotated back: the levels q + 1/2 through the inverse rotation
  // (exact: multiples of 1/2 of magnitude at most 16 * 7.5 at every step), then times each half's
  // scale, + 0 (a zero scale gives +0), rounded once.
  static void decode_rotated_group_reference(const std::byte* payload, const std::byte* scale, float* values) {
    float v[group_size];
    for (int l = 0; l < lanes_per_group; ++l) {
      const std::uint32_t offset = offset_codes(load_lane(payload, l));
      for (int j = 0; j < 8; ++j) v[8 * l + j] = level(offset, j);
    }
    rotate_group_inverse<rotation_lanes>(v);
    for (int l = 0; l < lanes_per_group; ++l) {
      const float sc = load_scale(scale, l).scale;
      for (int j = 0; j < 8; ++j) values[8 * l + j] = v[8 * l + j] * sc + 0.0f;
    }
  }

#if QR_DEVICE_PASS
  // The devices rotate a lane's levels back two at a time: word p of `w` holds values 2p and 2p + 1.
  // NVIDIA sm_90 and later in bfloat16 pairs (a bf16 output then takes them with one fma.rn.bf16x2 a
  // pair), elsewhere in binary16 pairs; both hold every level sum exactly (at most 8 significant bits).
  // Placed: the offset code k = q + 8 under the pattern B | k, which reads B + q, B the pattern's value
  // with k = 8 (bf16 0x4308 = 136: the ulp is 1 on [128, 256); binary16 0x6408 = 1032: 1 on [1024, 2048)).
#if QR_BACKEND_CUDA && __CUDA_ARCH__ >= 900
  static constexpr std::uint32_t level_pattern = 0x43084308u, twice_pattern = 0x43884388u;  // 136, 272
  static constexpr std::uint32_t plus_minus_one = 0xbf803f80u;  // (1, -1)
  QR_DEVICE static QR_FORCEINLINE std::uint32_t pair_add(std::uint32_t a, std::uint32_t b) {
    std::uint32_t r;
    asm("add.rn.bf16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
    return r;
  }
  QR_DEVICE static QR_FORCEINLINE std::uint32_t pair_sub(std::uint32_t a, std::uint32_t b) {
    std::uint32_t r;
    asm("sub.rn.bf16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
    return r;
  }
  QR_DEVICE static QR_FORCEINLINE std::uint32_t pair_fma(std::uint32_t a, std::uint32_t b, std::uint32_t c) {
    std::uint32_t r;
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
  }
  QR_DEVICE static QR_FORCEINLINE void pair_floats(std::uint32_t a, float& lo, float& hi) {
    lo = numeric::bits_float(a << 16);
    hi = numeric::bits_float(a & 0xffff0000u);
  }
#else
  static constexpr std::uint32_t level_pattern = 0x64086408u, twice_pattern = 0x68086808u;  // 1032, 2064
  static constexpr std::uint32_t plus_minus_one = 0xbc003c00u;  // (1, -1)
  QR_DEVICE static QR_FORCEINLINE std::uint32_t pair_add(std::uint32_t a, std::uint32_t b) {
    return numeric::h2_bits(numeric::h2_add(numeric::h2_from_bits(a), numeric::h2_from_bits(b)));
  }
  QR_DEVICE static QR_FORCEINLINE std::uint32_t pair_sub(std::uint32_t a, std::uint32_t b) {
    return numeric::h2_bits(numeric::h2_sub(numeric::h2_from_bits(a), numeric::h2_from_bits(b)));
  }
  QR_DEVICE static QR_FORCEINLINE std::uint32_t pair_fma(std::uint32_t a, std::uint32_t b, std::uint32_t c) {
    return numeric::h2_bits(numeric::h2_fma(numeric::h2_from_bits(a), numeric::h2_from_bits(b), numeric::h2_from_bits(c)));
  }
  QR_DEVICE static QR_FORCEINLINE void pair_floats(std::uint32_t a, float& lo, float& hi) { numeric::h2_floats(numeric::h2_from_bits(a), lo, hi); }
#endif

  // Two codes at bits 0-3 and 16-19 of x (other bits aside) as a level pair: under the pattern they
  // read B + q. One lop3 on NVIDIA ((x & 0x000f000f) ^ pattern, written as an and and a xor of two
  // constants, two instructions).
  QR_DEVICE static QR_FORCEINLINE std::uint32_t level_pair(std::uint32_t x) {
#if QR_BACKEND_CUDA
    std::uint32_t r;
    asm("lop3.b32 %0, %1, 0x000f000f, %2, 0x6a;" : "=r"(r) : "r"(x), "n"(level_pattern));
    return r;
#else
    return (x & 0x000f000fu) ^ level_pattern;
#endif
  }

  // The level pairs of a payload's codes: byte k * 0x1001 puts its two codes at bits 0 and 16 (the
  // byte by one prmt on NVIDIA).
  QR_DEVICE static QR_FORCEINLINE void place_levels(lane_payload& p) {
#if QR_BACKEND_CUDA
    p.levels[0] = level_pair(numeric::prmt<0x4440u>(p.w[0], 0u) * 0x1001u);
    p.levels[1] = level_pair(numeric::prmt<0x4441u>(p.w[0], 0u) * 0x1001u);
    p.levels[2] = level_pair(numeric::prmt<0x4442u>(p.w[0], 0u) * 0x1001u);
    p.levels[3] = level_pair(numeric::prmt<0x4443u>(p.w[0], 0u) * 0x1001u);
#else
    QR_UNROLL
    for (int k = 0; k < 4; ++k) p.levels[k] = level_pair(((p.w[0] >> (8 * k)) & 0xffu) * 0x1001u);
#endif
  }

  // A lane's levels q (without the 1/2s) rotated back, as rotate_inverse<2> (device/tile.hpp) rotates
  // values: the step across the lane pair (sums kept, differences sent), then the 8-point butterflies.
  // The 1/2s' share is the inverse rotation of a constant 1/2: (4, 0, 0, 0, 4, 0, 0, 0) on every lane,
  // which the callers add with the scale.
  template <class Exchange>
  QR_DEVICE static QR_FORCEINLINE void rotate_levels_back(const lane_payload& p, Exchange&& exchange, std::uint32_t (&w)[4]) {
    QR_UNROLL
    for (int k = 0; k < 4; ++k) w[k] = p.levels[k];
    // sums x_j + x_{j+4} = (B + q_j - 2B) + (B + q_{j+4}); differences (B + q_j) - (B + q_{j+4})
    const std::uint32_t d0 = pair_sub(w[0], w[2]), d1 = pair_sub(w[1], w[3]);
    w[0] = pair_add(pair_sub(w[0], twice_pattern), w[2]);
    w[1] = pair_add(pair_sub(w[1], twice_pattern), w[3]);
    w[2] = exchange(d0, 1);
    w[3] = exchange(d1, 1);
    // span 1 inside a pair: (a, b) -> (a * 1 + b, b * -1 + a)
    QR_UNROLL
    for (int k = 0; k < 4; ++k) w[k] = pair_fma(w[k], plus_minus_one, (w[k] >> 16) | (w[k] << 16));
    // spans 2 and 4 across pairs
    QR_UNROLL
    for (int h = 1; h < 4; h <<= 1) {
      QR_UNROLL
      for (int k = 0; k < 4; ++k) {
        if ((k & h) == 0) {
          const std::uint32_t a = w[k], b = w[k + h];
          w[k] = pair_add(a, b);
          w[k + h] = pair_sub(a, b);
        }
      }
    }
  }

  // decode_rotated_group_reference's values of a lane (every lane of the group together).
  template <class T, class Exchange>
  QR_DEVICE static QR_FORCEINLINE void decode_rotated_lane(const lane_payload& p, const state& st, Exchange&& exchange, float (&y)[8]) {
    std::uint32_t w[4];
    rotate_levels_back(p, exchange, w);
    const float half_share = 4.0f * st.scale;  // exact
    QR_UNROLL
    for (int k = 0; k < 4; ++k) {
      float lo, hi;
      pair_floats(w[k], lo, hi);
      y[2 * k] = fmaf(lo, st.scale, k % 2 == 0 ? half_share : 0.0f);
      y[2 * k + 1] = fmaf(hi, st.scale, 0.0f);
    }
  }

#if QR_BACKEND_CUDA && __CUDA_ARCH__ >= 900
  // The same values rounded to bf16, the pairs' scale and their 1/2s' share in one fma.rn.bf16x2 a
  // pair: the scale (4 significant bits) and 4 times it are bf16 values, the exact result is rounded
  // once as from_float8 rounds the f32 one (and beyond the f32 range, to infinity either way); + 0
  // where no share is added keeps a zero scale's results +0; a NaN scale gives the canonical NaN.
  template <class Exchange>
  QR_DEVICE static QR_FORCEINLINE void decode_rotated_lane_bf16(const lane_payload& p, const state& st, Exchange&& exchange,
                                                                std::uint32_t (&out)[4]) {
    std::uint32_t w[4];
    rotate_levels_back(p, exchange, w);
    const std::uint32_t s = numeric::float_bits(st.scale) >> 16, s2 = s | (s << 16);
    const std::uint32_t share = numeric::float_bits(4.0f * st.scale) >> 16;  // low half only: values 0 and 4
    QR_UNROLL
    for (int k = 0; k < 4; ++k) out[k] = pair_fma(w[k], s2, k % 2 == 0 ? share : 0u);
  }
#endif
#endif

  QR_HOST_DEVICE static QR_FORCEINLINE void store_lane(std::byte* g, int lane, const lane_payload& p) {
    pack4::store(g, lane, pack4::lane_payload{{p.w[0]}});
  }
  QR_HOST_DEVICE static QR_FORCEINLINE lane_payload load_lane(const std::byte* g, int lane) {
    lane_payload p{{pack4::load(g, lane).w[0]}, {}};
#if QR_DEVICE_PASS
    place_levels(p);  // left to the compiler where the levels go unused (the reduce step's sums)
#endif
    return p;
  }
  QR_HOST_DEVICE static QR_FORCEINLINE void store_scale(std::byte* s, const state& st) { mem::store_small<std::uint16_t>(s, st.bits); }
  // The scale of lane `lane`'s half, a NaN for a non-finite group (whatever byte 1 holds), without a
  // branch (a branch to nan_state cost the two-shot's reduce step a divergent region a tile).
  QR_HOST_DEVICE static QR_FORCEINLINE state load_scale(const std::byte* s, int lane) {
    const std::uint32_t b = mem::load_small<std::uint16_t>(s);
    const std::uint32_t e = (b << 23) & 0x7f800000u;  // 2^(S-127)'s bits (S = 0xff: the infinity's)
    const float sc = multiplier((lane >> 1) == 0 ? (b >> 8) & 0xfu : b >> 12) * numeric::bits_float(e);  // S = 0xff: replaced
    return state{std::uint16_t(b), e == 0x7f800000u ? nan_state().scale : sc};
  }
};

}  // namespace qreduce::codec
