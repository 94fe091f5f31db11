// qreduce/numeric/minifloat.hpp: the element formats the codecs round to.
//
// Each format maps an already-scaled float s to a code: round to nearest, ties to even, saturate to
// the largest finite magnitude. Callers never pass NaN or infinity (a group holding one is handled
// by the codec before this point). Each format has a software path that runs everywhere and, where
// the pass has one (config.hpp), a native conversion instruction that produces the same code.
//
//   e2m1     OCP FP4: 1 sign, 2 exponent (bias 1), 1 mantissa; magnitudes 0 .5 1 1.5 2 3 4 6
//   e4m3fn   OCP FP8 E4M3: bias 7, max 448, 0x7f/0xff NaN, has -0
//   e4m3fnuz FP8 E4M3 FNUZ (gfx942's native): bias 8, max 240, 0x80 NaN, no -0 (negative values that
//            round to zero give 0x00)
//   int_format<B>  B-bit two's complement, symmetric range [-(2^(B-1)-1), 2^(B-1)-1]
#pragma once
#include <cmath>
#include <cstdint>
#include "bits.hpp"

namespace qreduce::numeric {

// Software rounding to a small binary float format. E/M: exponent/mantissa bits, Bias, MaxBits: the
// code of the largest finite magnitude. Exact: a/step and the product back are powers-of-two scalings.
template <int E, int M, int Bias, std::uint32_t MaxCode, bool HasNegZero>
struct minifloat_format {
  static constexpr int exponent_bits = E;
  static constexpr int mantissa_bits = M;
  static constexpr int code_bits = 1 + E + M;
  static constexpr std::uint32_t sign_bit = 1u << (E + M);
  static constexpr bool has_negative_zero = HasNegZero;  // -0 gets a code of its own

  // Magnitude of a code (sign ignored), computed by placing its fields into a float's bit pattern.
  QR_HOST_DEVICE static QR_FORCEINLINE float magnitude(std::uint32_t code) {
    // fields land at float bits [23-M-?]: exponent at 23.., mantissa just below; then rescale by
    // 2^(127-Bias). Subnormal codes become float subnormals, which the multiply makes exact values.
    const float raw = bits_float((code & (sign_bit - 1u)) << (23 - M));
    return raw * bits_float(std::uint32_t(127 + 127 - Bias) << 23);
  }

  static constexpr float max_value() {
    // (1 + m/2^M) * 2^(e - Bias) for the max code, evaluated at compile time
    const std::uint32_t e = (MaxCode >> M) & ((1u << E) - 1u);
    const std::uint32_t m = MaxCode & ((1u << M) - 1u);
    float v = 1.0f + float(m) / float(1u << M);
    int p = int(e) - Bias;
    for (; p > 0; --p) v *= 2.0f;
    for (; p < 0; ++p) v *= 0.5f;
    return v;
  }
  static constexpr float max = max_value();

  QR_HOST_DEVICE static QR_FORCEINLINE std::uint32_t encode_soft(float s) {
    const std::uint32_t sb = float_bits(s);
    const std::uint32_t sign = (sb >> 31) ? sign_bit : 0u;
    const float a = bits_float(sb & 0x7fffffffu);
    std::uint32_t mag;
    if (a >= max) {
      mag = MaxCode;
    } else {
      constexpr int emin = 1 - Bias;  // exponent of the smallest normal
      int e = int((float_bits(a) >> 23) & 0xffu) - 127;
      if (e < emin) e = emin;
      // step = 2^(e - M); q = rne(a / step), an integer in [0, 2^(M+1)]
      const float q = round_even(a * bits_float(std::uint32_t(127 - (e - M)) << 23));
      const std::uint32_t qi = std::uint32_t(q);
      if (qi == 0u) {
        mag = 0u;
      } else if (e == emin && qi < (1u << M)) {
        mag = qi;  // subnormal
      } else if (qi == (2u << M)) {
        mag = std::uint32_t(e + 1 + Bias) << M;  // rounded up into the next binade
      } else {
        mag = (std::uint32_t(e + Bias) << M) | (qi - (1u << M));
      }
      if (mag > MaxCode) mag = MaxCode;
    }
    if (!HasNegZero && mag == 0u) return 0u;
    return sign | mag;
  }

  QR_HOST_DEVICE static QR_FORCEINLINE float decode_soft(std::uint32_t code) {
    const float m = magnitude(code);
    return (code & sign_bit) ? -m : m;
  }
};

#if QR_BACKEND_CUDA && QR_DEVICE_PASS
// PTX prmt: bytes of (a, b) numbered 0..7, result byte i chosen by selector nibble i; a nibble with
// bit 3 set gives the chosen byte's sign bit replicated (0x00 or 0xff).
template <std::uint32_t Selector>
__device__ __forceinline__ std::uint32_t prmt(std::uint32_t a, std::uint32_t b) {
  std::uint32_t r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "n"(Selector));
  return r;
}
// The same with the selector in a register: an 8-entry byte table (a, b) looked up 4 times at once.
__device__ __forceinline__ std::uint32_t prmt_lookup(std::uint32_t a, std::uint32_t b, std::uint32_t selector) {
  std::uint32_t r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(selector));
  return r;
}
// Two f16 values (low half first) widened to f32, exactly.
__device__ __forceinline__ void f16x2_to_f32(std::uint32_t h, float& lo, float& hi) {
  asm("{ .reg .b16 l, h; mov.b32 {l, h}, %2; cvt.f32.f16 %0, l; cvt.f32.f16 %1, h; }" : "=f"(lo), "=f"(hi) : "r"(h));
}
#endif

struct e2m1 : minifloat_format<2, 1, 1, 0x7u, true> {
  static constexpr const char* name = "e2m1";
  // Its device rounding (code_float, the native conversions) takes a NaN without fault.
  static constexpr bool device_rounds_nan = true;
  // The rounding in float arithmetic only (same codes as the generic rounding; float operations
  // issue at twice the rate of integer ones on the GPUs). For a = min(|s|, 6) the code is
  //   rne(2a)      on [0, 2)  (grid 0.5: codes 0..4)
  //   rne(a + 2)   on [2, 4)  (grid 1:   codes 4..6)
  //   rne(a/2 + 4) on [4, 6]  (grid 2:   codes 6, 7)
  // (ties to the even code, as the offsets 0, 2, 4 are even). Each is at most the other two outside
  // its own range (2a <= a + 2 iff a <= 2, a + 2 <= a/2 + 4 iff a <= 4) and rounding is monotonic, so
  // the code is the minimum of the three. Each is formed as K + v with K = 2^23, whose ulp is 1: one
  // IEEE rounding of the exact value (2a and a/2 are exact), the code in the sum's low bits.
  //
  // Bounded: the caller guarantees |s| < unclamped_limit, below which the clamp to 6 changes no code
  // (a / 2 + 4 < 7.5 rounds to 7 at most), so it is left out (the codecs whose scales bound their
  // products, codec/scaled.hpp; |s| folds into each operation as an operand modifier).
  static constexpr float unclamped_limit = 7.0f;
  template <bool Bounded = false>
  QR_HOST_DEVICE static QR_FORCEINLINE float code_float(float s) {
    constexpr float K = 8388608.0f;
    const float a = Bounded ? fabsf(s) : fminf(fabsf(s), 6.0f);
    return fminf(fminf(a * 2.0f + K, a + (K + 2.0f)), a * 0.5f + (K + 4.0f));
  }
  template <bool Bounded = false>
  QR_HOST_DEVICE static QR_FORCEINLINE std::uint32_t encode_soft(float s) {
    return ((float_bits(s) >> 28) & 0x8u) | (float_bits(code_float<Bounded>(s)) & 0x7u);
  }
  // Two values into one byte: x0 in the low nibble.
  QR_HOST_DEVICE static QR_FORCEINLINE std::uint32_t encode2(float x0, float x1) {
#if QR_HAS_NATIVE_FP4_CVT && QR_BACKEND_CUDA
    std::uint16_t r;
    // cvt puts its first source in the upper half of the result.
    asm("{ .reg .b8 t; cvt.rn.satfinite.e2m1x2.f32 t, %2, %1; cvt.u16.u8 %0, t; }" : "=h"(r) : "f"(x0), "f"(x1));
    return r;
#elif QR_HAS_NATIVE_FP4_CVT && QR_BACKEND_HIP
    // Scale 1.0: the value is already scaled in f32 (bit-identity with every other target).
    return __builtin_amdgcn_cvt_scalef32_pk_fp4_f32(0u, x0, x1, 1.0f, 0) & 0xffu;
#else
    return encode_soft(x0) | (encode_soft(x1) << 4);
#endif
  }
  // Eight values (one lane) into one 32-bit word, value j at bits [4j, 4j+4). Bounded: as code_float's
  // (the native conversions saturate by themselves).
  template <bool Bounded = false>
  QR_HOST_DEVICE static QR_FORCEINLINE std::uint32_t encode8(const float (&x)[8]) {
#if QR_HAS_NATIVE_FP4_CVT && QR_BACKEND_HIP
    std::uint32_t w = 0u;
    w = __builtin_amdgcn_cvt_scalef32_pk_fp4_f32(w, x[0], x[1], 1.0f, 0);
    w = __builtin_amdgcn_cvt_scalef32_pk_fp4_f32(w, x[2], x[3], 1.0f, 1);
    w = __builtin_amdgcn_cvt_scalef32_pk_fp4_f32(w, x[4], x[5], 1.0f, 2);
    w = __builtin_amdgcn_cvt_scalef32_pk_fp4_f32(w, x[6], x[7], 1.0f, 3);
    return w;
#elif QR_BACKEND_CUDA && QR_DEVICE_PASS && !QR_HAS_NATIVE_FP4_CVT
    // Gathers bytes instead of shifting nibbles: the code is the low byte of code_float's bits
    // (0..7), the sign a byte replicated from the input's sign (prmt's sign mode, selector bit 3).
    std::uint32_t c[8], s[8];
    QR_UNROLL
    for (int j = 0; j < 8; ++j) {
      c[j] = float_bits(code_float<Bounded>(x[j]));
      s[j] = float_bits(x[j]);
    }
    // bytes 0..3 of the result: byte 0 of a, b, c, d (the low byte of each code) / their sign bytes
    const auto gather = [](std::uint32_t a, std::uint32_t b, std::uint32_t c2, std::uint32_t d) {
      return prmt<0x7610u>(prmt<0x0040u>(a, b), prmt<0x4000u>(c2, d));
    };
    const auto signs = [](std::uint32_t a, std::uint32_t b, std::uint32_t c2, std::uint32_t d) {
      return prmt<0x7610u>(prmt<0x00fbu>(a, b), prmt<0xfb00u>(c2, d));
    };
    const std::uint32_t even = gather(c[0], c[2], c[4], c[6]) | (signs(s[0], s[2], s[4], s[6]) & 0x08080808u);
    const std::uint32_t odd = gather(c[1], c[3], c[5], c[7]) | (signs(s[1], s[3], s[5], s[7]) & 0x08080808u);
    return even | (odd << 4);
#else
    std::uint32_t w = 0u;
    QR_UNROLL
    for (int j = 0; j < 4; ++j) w |= encode2(x[2 * j], x[2 * j + 1]) << (8 * j);
    return w;
#endif
  }
  QR_HOST_DEVICE static QR_FORCEINLINE void decode8(std::uint32_t w, float (&out)[8]) {
#if QR_HAS_NATIVE_FP4_DECODE && QR_BACKEND_HIP
    // the byte selector must be a constant: one call per byte
    const auto p0 = __builtin_amdgcn_cvt_scalef32_pk_f32_fp4(w, 1.0f, 0);
    const auto p1 = __builtin_amdgcn_cvt_scalef32_pk_f32_fp4(w, 1.0f, 1);
    const auto p2 = __builtin_amdgcn_cvt_scalef32_pk_f32_fp4(w, 1.0f, 2);
    const auto p3 = __builtin_amdgcn_cvt_scalef32_pk_f32_fp4(w, 1.0f, 3);
    out[0] = p0[0];
    out[1] = p0[1];
    out[2] = p1[0];
    out[3] = p1[1];
    out[4] = p2[0];
    out[5] = p2[1];
    out[6] = p3[0];
    out[7] = p3[1];
#elif QR_BACKEND_CUDA && QR_DEVICE_PASS
    // Table lookups (no E2M1 conversion before sm_100a): the magnitudes 0, .5, 1, 1.5, 2, 3, 4, 6
    // are f16 values whose low byte is zero, and their high bytes an 8-entry byte table that prmt
    // indexes with the codes' 3 magnitude bits, four codes a lookup. Each pair of values is then laid
    // out as f16x2 (prmt with a zero source), gets its signs (prmt's sign-replicating mode on the
    // code bytes: an odd code's sign is its byte's top bit, an even code's the top bit of that byte
    // shifted by a nibble) and is widened to f32 exactly: the values decode_soft gives, in about 20
    // integer operations and 8 conversions for 8 values instead of 40.
    constexpr std::uint32_t table_lo = 0x3e3c3800u, table_hi = 0x46444240u;  // entries 0..3, 4..7
    const std::uint32_t mag[2] = {prmt_lookup(table_lo, table_hi, w & 0x7777u), prmt_lookup(table_lo, table_hi, (w >> 16) & 0x7777u)};
    const std::uint32_t shifted = w << 4;
    const std::uint32_t placed[4] = {prmt<0x1404u>(mag[0], 0u), prmt<0x3424u>(mag[0], 0u), prmt<0x1404u>(mag[1], 0u), prmt<0x3424u>(mag[1], 0u)};
    const std::uint32_t sign[4] = {prmt<0xc080u>(shifted, w), prmt<0xd090u>(shifted, w), prmt<0xe0a0u>(shifted, w), prmt<0xf0b0u>(shifted, w)};
    QR_UNROLL
    for (int p = 0; p < 4; ++p) f16x2_to_f32(placed[p] | (sign[p] & 0x80008000u), out[2 * p], out[2 * p + 1]);
#else
    QR_UNROLL
    for (int j = 0; j < 8; ++j) out[j] = decode_soft((w >> (4 * j)) & 0xfu);
#endif
  }
#if QR_BACKEND_CUDA && QR_DEVICE_PASS && __CUDA_ARCH__ >= 900
  // The eight values as bfloat16 pairs (values 2p, 2p + 1 in the low, high half of word p): each
  // magnitude's two bytes from two byte tables (bf16 0, .5, 1, 1.5, 2, 3, 4, 6 are 0x0000, 0x3f00,
  // 0x3f80, 0x3fc0, 0x4000, 0x4040, 0x4080, 0x40c0), interleaved by one prmt a pair, the signs as in
  // decode8. Exact: the kernels scale them in bf16 (scaled_codec::decode_lane_bf16).
  QR_DEVICE static QR_FORCEINLINE void decode8_bf16(std::uint32_t w, std::uint32_t (&out)[4]) {
    constexpr std::uint32_t high_lo = 0x3f3f3f00u, high_hi = 0x40404040u, low_lo = 0xc0800000u, low_hi = 0xc0804000u;
    const std::uint32_t sel[2] = {w & 0x7777u, (w >> 16) & 0x7777u};
    const std::uint32_t shifted = w << 4;
    const std::uint32_t high[2] = {prmt_lookup(high_lo, high_hi, sel[0]), prmt_lookup(high_lo, high_hi, sel[1])};
    const std::uint32_t low[2] = {prmt_lookup(low_lo, low_hi, sel[0]), prmt_lookup(low_lo, low_hi, sel[1])};
    const std::uint32_t placed[4] = {prmt<0x5140u>(low[0], high[0]), prmt<0x7362u>(low[0], high[0]), prmt<0x5140u>(low[1], high[1]),
                                     prmt<0x7362u>(low[1], high[1])};
    const std::uint32_t sign[4] = {prmt<0xc080u>(shifted, w), prmt<0xd090u>(shifted, w), prmt<0xe0a0u>(shifted, w), prmt<0xf0b0u>(shifted, w)};
    QR_UNROLL
    for (int p = 0; p < 4; ++p) out[p] = placed[p] | (sign[p] & 0x80008000u);
  }
#endif
};

struct e4m3fn : minifloat_format<4, 3, 7, 0x7eu, true> {
  static constexpr const char* name = "e4m3fn";
  // Two values into 16 bits: x0 in the low byte.
  QR_HOST_DEVICE static QR_FORCEINLINE std::uint32_t encode2(float x0, float x1) {
#if QR_HAS_NATIVE_FP8_E4M3_CVT && QR_BACKEND_CUDA
    std::uint16_t r;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %2, %1;" : "=h"(r) : "f"(x0), "f"(x1));
    return r;
#elif QR_HAS_NATIVE_FP8_E4M3_CVT && QR_BACKEND_HIP
    // Clamped first: the format saturates (CUDA's conversion says satfinite); what gfx950's does with
    // a value beyond 448 is not documented, so it never sees one.
    typedef short v2s __attribute__((ext_vector_type(2)));
    const v2s z = {0, 0};
    const v2s r = __builtin_amdgcn_cvt_scalef32_pk_fp8_f32(z, fminf(fmaxf(x0, -max), max), fminf(fmaxf(x1, -max), max), 1.0f, false);
    return std::uint32_t(std::uint16_t(r[0]));
#else
    return encode_soft(x0) | (encode_soft(x1) << 8);
#endif
  }
};

struct e4m3fnuz : minifloat_format<4, 3, 8, 0x7fu, false> {
  static constexpr const char* name = "e4m3fnuz";
  QR_HOST_DEVICE static QR_FORCEINLINE std::uint32_t encode2(float x0, float x1) {
#if QR_HAS_NATIVE_FP8_FNUZ_CVT && QR_BACKEND_HIP
    return std::uint32_t(__builtin_amdgcn_cvt_pk_fp8_f32(x0, x1, 0, false)) & 0xffffu;
#elif QR_HAS_NATIVE_FP8_E4M3_CVT && QR_BACKEND_CUDA
    // FNUZ's bias is one more than E4M3's, so a FNUZ code of s is the E4M3 code of 2s (exact), except
    // above 232 (FNUZ's top code 240 is E4M3's NaN: E4M3 saturates at 448 = 2 * 224) and for negative
    // zero, which FNUZ does not have.
    std::uint16_t r;
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %2, %1;" : "=h"(r) : "f"(2.0f * x0), "f"(2.0f * x1));
    std::uint32_t c0 = r & 0xffu, c1 = r >> 8;
    if (fabsf(x0) > 232.0f) c0 = (c0 & 0x80u) | 0x7fu;
    if (fabsf(x1) > 232.0f) c1 = (c1 & 0x80u) | 0x7fu;
    c0 = c0 == 0x80u ? 0u : c0;
    c1 = c1 == 0x80u ? 0u : c1;
    return c0 | (c1 << 8);
#else
    return encode_soft(x0) | (encode_soft(x1) << 8);
#endif
  }
};

template <int B>
struct int_format {
  static_assert(B >= 2 && B <= 8);
  static constexpr int code_bits = B;
  static constexpr float max = float((1 << (B - 1)) - 1);
  static constexpr bool has_negative_zero = false;  // -0 and +0 get the same code
  // Its device rounding (fminf/fmaxf clamps where the caller has not bounded the value, then the
  // float's own rounding) takes a NaN without fault.
  static constexpr bool device_rounds_nan = true;
  // Below it in magnitude a value rounds to at most max: no clamp is needed (Bounded below).
  static constexpr float unclamped_limit = max + 0.5f;
  // On the device without conversion instructions (float <-> int conversions and rounding issue at
  // an eighth of the FP32 rate on NVIDIA: at 1 GiB they would be about a third of INT4's two-shot),
  // by the float's own rounding and bit pattern; the same codes and values as the host's reference.
  // Bounded: the caller guarantees |s| < unclamped_limit (the codecs whose scales bound their
  // products, codec/scaled.hpp), and the device leaves the clamp out.
  template <bool Bounded = false>
  QR_HOST_DEVICE static QR_FORCEINLINE std::uint32_t encode_soft(float s) {
#if QR_DEVICE_PASS
    // Clamped first (the bound is an integer, so the same as clamping the rounded value), then
    // 1.5 * 2^23 + s: its ulp is 1, so the add rounds s to the nearest integer q, ties to even, and
    // the sum's low bits hold q in two's complement (|q| < 2^22).
    if constexpr (!Bounded) s = fminf(fmaxf(s, -max), max);
    return float_bits(s + 12582912.0f) & ((1u << B) - 1u);
#else
    float q = round_even(s);
    q = q > max ? max : (q < -max ? -max : q);
    return std::uint32_t(std::int32_t(q)) & ((1u << B) - 1u);
#endif
  }
#if QR_BACKEND_CUDA && QR_DEVICE_PASS && __CUDA_ARCH__ >= 900
  // 4-bit codes (8 to a word, value j at bits [4j, 4j+4)) as bfloat16 pairs (values 2p, 2p + 1 in the
  // low, high half of word p): byte p times 0x1001 puts its two codes at bits 0 and 16, code ^ 8 = v + 8
  // under the pattern 0x4300 reads 128 + 8 + v exactly (bf16's ulp is 1 on [128, 256)), and one
  // subtraction of 136 a pair leaves v. Exact: the kernels scale them in bf16
  // (scaled_codec::decode_lane_bf16).
  QR_DEVICE static QR_FORCEINLINE void decode8_bf16(std::uint32_t w, std::uint32_t (&out)[4]) requires(B == 4) {
    QR_UNROLL
    for (int p = 0; p < 4; ++p) {
      const std::uint32_t placed = ((((w >> (8 * p)) & 0xffu) * 0x1001u) & 0x000f000fu) ^ 0x43084308u;
      asm("sub.rn.bf16x2 %0, %1, %2;" : "=r"(out[p]) : "r"(placed), "r"(0x43084308u));
    }
  }
#endif
  QR_HOST_DEVICE static QR_FORCEINLINE float decode_soft(std::uint32_t code) {
#if QR_DEVICE_PASS
    // code ^ 2^(B-1) = v + 2^(B-1) in [0, 2^B): placed in a float's mantissa under 2^23 it reads
    // 2^23 + v + 2^(B-1), exactly; less 2^23 + 2^(B-1) it is v.
    return bits_float(0x4b000000u | (code ^ (1u << (B - 1)))) - float((1 << 23) + (1 << (B - 1)));
#else
    // sign-extend B bits
    const std::int32_t v = std::int32_t(code << (32 - B)) >> (32 - B);
    return float(v);
#endif
  }
};

}  // namespace qreduce::numeric
