// qreduce/numeric/bits.hpp: bit casts and integer helpers usable on host and device.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include "../config.hpp"

namespace qreduce::numeric {

QR_HOST_DEVICE QR_FORCEINLINE std::uint32_t float_bits(float f) {
#if QR_DEVICE_PASS && QR_BACKEND_CUDA
  return __float_as_uint(f);
#else
  return __builtin_bit_cast(std::uint32_t, f);
#endif
}

QR_HOST_DEVICE QR_FORCEINLINE float bits_float(std::uint32_t u) {
#if QR_DEVICE_PASS && QR_BACKEND_CUDA
  return __uint_as_float(u);
#else
  return __builtin_bit_cast(float, u);
#endif
}

// a * b rounded once, and never fused with an addition after it: compilers contract a * b + c into
// one fused multiply-add by default (nvcc, and clang for HIP), which would skip the product's rounding
// that the codecs' rule has (the integer formats round the product by adding 1.5 * 2^23 to it). On
// HIP the pragma holds under clang's default -ffp-contract=fast-honor-pragmas; -ffp-contract=fast
// ignores it and is not supported (tests/isa/check.sh fails on the fused form, NVIDIA and AMD).
QR_HOST_DEVICE QR_FORCEINLINE float mul_rn(float a, float b) {
#if QR_DEVICE_PASS && QR_BACKEND_CUDA
  return __fmul_rn(a, b);
#else
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
  return a * b;
#endif
}

// Round to nearest, ties to even, of a float; identical on every backend (no fast-math assumed).
QR_HOST_DEVICE QR_FORCEINLINE float round_even(float x) {
#if QR_DEVICE_PASS && QR_BACKEND_CUDA
  return rintf(x);
#else
  return __builtin_rintf(x);
#endif
}

// One Newton step from y, an approximation of 1 / x within 1 ulp (rcp.approx, v_rcp_f32): its exact
// value is within 2^-44 of 1 / x, relatively, so its rounding is the IEEE quotient's wherever 1 / x
// lies farther than that from every rounding midpoint (codec/scale.hpp and codec/int4m.hpp argue it
// for their divisors; tests/host checks it from every start).
QR_HOST_DEVICE QR_FORCEINLINE float reciprocal_step(float x, float y) { return fmaf(fmaf(-x, y, 1.0f), y, y); }

QR_HOST_DEVICE QR_FORCEINLINE bool is_finite_bits(std::uint32_t f32_bits) { return (f32_bits & 0x7f800000u) != 0x7f800000u; }

}  // namespace qreduce::numeric
