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
  QR_HOST_DEVICE static QR_FORCEINLINE storage from_absmax(float absmax, float qmax) {
    std::uint32_t b = numeric::float_bits(absmax_quotient(absmax, qmax));
    if (b & 0xffffu) b += 0x10000u;  // round up (positive values)
    b &= 0xffff0000u;
    if (b < 0x00800000u) b = 0x00800000u;  // at least 2^-126
    const std::uint32_t cap = numeric::float_bits(3.40282346638528859812e38f / qmax) & 0xffff0000u;
    if (b > cap) b = cap;
    return storage(b >> 16);
  }
  QR_HOST_DEVICE static QR_FORCEINLINE float to_float(storage s) { return numeric::bits_float(std::uint32_t(s) << 16); }
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
  QR_HOST_DEVICE static QR_FORCEINLINE storage from_absmax(float absmax, float qmax) {
    const std::uint32_t b = numeric::float_bits(absmax_quotient(absmax, qmax));
    int e = int((b >> 23) & 0xffu) - 127;
    if (e == -127) {
      e = (b & 0x7fffffu) ? -126 : -127;  // f32 subnormal quotient: 2^-126 covers it; zero: smallest
    } else if (b & 0x7fffffu) {
      e += 1;  // ceil(log2) for a non power of two
    }
    const int cap = int((numeric::float_bits(3.40282346638528859812e38f / qmax) >> 23) & 0xffu) - 127;
    if (e > cap) e = cap;
    return storage(e + 127);
  }
  QR_HOST_DEVICE static QR_FORCEINLINE float to_float(storage s) {
    // 2^(s-127); s == 0 is 2^-127, a float subnormal
    return s == 0 ? numeric::bits_float(0x00400000u) : numeric::bits_float(std::uint32_t(s) << 23);
  }
  // 1 / to_float(s) = 2^(127-s), exact, for a scale from_absmax made (qmax >= 2: s <= 253).
  QR_HOST_DEVICE static QR_FORCEINLINE float reciprocal(storage s) { return numeric::bits_float(std::uint32_t(254 - s) << 23); }
};

}  // namespace qreduce::codec
