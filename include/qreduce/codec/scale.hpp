// qreduce/codec/scale.hpp: how a group's scale is chosen and stored.
//
// A group's scale is derived from its largest magnitude (absmax) and the element format's largest
// value (qmax). Every finite fp16, bf16 or fp32 input must give a finite, non-zero scale, so the
// scale types below keep an 8-bit exponent (fp16's 5-bit exponent cannot hold 3.4e38 / 6):
//
//   scale_bf16  2 bytes, a bfloat16 pattern: absmax / qmax (IEEE division in f32) rounded *up* to
//               bfloat16, so that no value saturates by more than the division's rounding; raised
//               to at least 2^-126 so that its reciprocal is a finite float; lowered to at most
//               FLT_MAX / qmax (rounded down to bfloat16) so that no code decodes to infinity.
//   scale_e8m0  1 byte, the OCP MX shared exponent: 2^ceil(log2(absmax / qmax)), clamped to
//               [2^-127, 2^floor(log2(FLT_MAX / qmax))] for the same two reasons.
// The upper clamps matter only for groups whose absmax lies within a factor 2 of FLT_MAX (bf16
// inputs above about 1.7e38, or sums that large): their largest values saturate.
//
// A group that holds a NaN or an infinity gets the NaN scale (0x7fc0 / 0xff) and all-zero codes: it
// decodes to 32 NaNs, and its neighbours are untouched.
#pragma once
#include <cmath>
#include <cstdint>
#include "../numeric/bits.hpp"

namespace qreduce::codec {

// absmax / qmax for the scales below, without a division: the product by qmax's rounded reciprocal,
// corrected once by its residual (exact in a fused multiply-add). Where the quotient is a normal float
// this is the IEEE quotient; where it is subnormal it may be an ulp off, and every scale below maps
// both to the same scale (tests/host/test_codecs.cpp checks each qmax the codecs use on every finite
// absmax). qmax is a constant at every call, so the reciprocal folds away: 3 instructions where the
// division took a dozen and a branch.
QR_HOST_DEVICE QR_FORCEINLINE float absmax_quotient(float absmax, float qmax) {
  const float r = 1.0f / qmax;
  const float q0 = absmax * r;
  return fmaf(fmaf(-q0, qmax, absmax), r, q0);
}

struct scale_bf16 {
  using storage = std::uint16_t;
  static constexpr int bytes = 2;
  static constexpr storage nan = 0x7fc0u;
  static constexpr const char* name = "bf16";
  // A bound on |x * reciprocal(s)| for every x of a finite group (|x| <= absmax, s = from_absmax(absmax,
  // qmax)). Where s is the quotient rounded up (or raised to 2^-126), s >= absmax / qmax up to the
  // quotient's rounding, so the product is qmax within a few ulps; where s is the upper clamp (FLT_MAX /
  // qmax rounded down to bfloat16, by less than 2^-7 relatively), the product is at most FLT_MAX / clamp
  // within a few ulps (127.008 for qmax 127, 6.024 for 6). The factor covers the ulps.
  // tests/host/test_codecs.cpp checks it on absmax values across the whole range and at FLT_MAX.
  static constexpr float product_bound(float qmax) {
    constexpr float flt_max = 3.40282346638528859812e38f;
    const float clamp = __builtin_bit_cast(float, __builtin_bit_cast(std::uint32_t, flt_max / qmax) & 0xffff0000u);
    const float top = flt_max / clamp;
    return (top > qmax ? top : qmax) * (1.0f + 0x1p-20f);
  }
  QR_HOST_DEVICE static QR_FORCEINLINE storage from_absmax(float absmax, float qmax) {
    // rounded up (a positive value: a carry out of the low half where it is not zero)
    std::uint32_t b = (numeric::float_bits(absmax_quotient(absmax, qmax)) + 0xffffu) & 0xffff0000u;
    if (b < 0x00800000u) b = 0x00800000u;  // at least 2^-126
    const std::uint32_t cap = numeric::float_bits(3.40282346638528859812e38f / qmax) & 0xffff0000u;
    if (b > cap) b = cap;
    return storage(b >> 16);
  }
  QR_HOST_DEVICE static QR_FORCEINLINE float to_float(storage s) { return numeric::bits_float(std::uint32_t(s) << 16); }
  // The scale as a bfloat16 pattern (exact), for a finite group.
  QR_HOST_DEVICE static QR_FORCEINLINE std::uint32_t bf16_bits(storage s) { return s; }
  // 1 / to_float(s), the IEEE quotient, for a scale from_absmax made with qmax >= 4 (the scale lies in
  // [2^-126, 2^126), so neither it nor its reciprocal is subnormal). On NVIDIA devices: the
  // approximate reciprocal (at most 1 ulp off) and one Newton step, whose exact value is within 2^-44
  // of 1 / s, relatively, while 1 / s of a scale of 8 significant bits lies at least 2^-35 from
  // every rounding midpoint: the same rounding as the division (3 instructions where it took about
  // 8 and a branch; tests/gpu checks every scale).
  QR_HOST_DEVICE static QR_FORCEINLINE float reciprocal(storage s) {
    const float x = to_float(s);
#if QR_BACKEND_CUDA && QR_DEVICE_PASS
    float y;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return numeric::reciprocal_step(x, y);
#else
    return 1.0f / x;
#endif
  }
};

struct scale_e8m0 {
  using storage = std::uint8_t;
  static constexpr int bytes = 1;
  static constexpr storage nan = 0xffu;
  static constexpr const char* name = "e8m0";
  // As scale_bf16's: the upper clamp, a power of two rounded down, leaves products below 2 qmax.
  static constexpr float product_bound(float qmax) { return 2.0f * qmax; }
  QR_HOST_DEVICE static QR_FORCEINLINE storage from_absmax(float absmax, float qmax) {
    // The biased exponent of ceil(log2) of the (positive) quotient: a carry out of the mantissa
    // where it is not zero. A subnormal quotient gets 1 (2^-126 covers it), zero gets 0 (2^-127).
    const std::uint32_t e = (numeric::float_bits(absmax_quotient(absmax, qmax)) + 0x7fffffu) >> 23;
    const std::uint32_t cap = (numeric::float_bits(3.40282346638528859812e38f / qmax) >> 23) & 0xffu;
    return storage(e < cap ? e : cap);
  }
  QR_HOST_DEVICE static QR_FORCEINLINE float to_float(storage s) {
    // 2^(s-127); s == 0 is 2^-127, a float subnormal
    return s == 0 ? numeric::bits_float(0x00400000u) : numeric::bits_float(std::uint32_t(s) << 23);
  }
  // The scale as a bfloat16 pattern (exact: 2^-127 is a bf16 subnormal), for a finite group (s < 0xff).
  QR_HOST_DEVICE static QR_FORCEINLINE std::uint32_t bf16_bits(storage s) { return s == 0 ? 0x0040u : std::uint32_t(s) << 7; }
  // 1 / to_float(s) = 2^(127-s), exact, for a scale from_absmax made (qmax >= 2: s <= 253).
  QR_HOST_DEVICE static QR_FORCEINLINE float reciprocal(storage s) { return numeric::bits_float(std::uint32_t(254 - s) << 23); }
};

}  // namespace qreduce::codec
