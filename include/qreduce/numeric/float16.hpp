// qreduce/numeric/float16.hpp: the two 16-bit tensor types, as plain storage, with conversions that
// give the same bits on the host and on every device.
//
// f16 is IEEE binary16, bf16 is bfloat16. Both are stored as their bit pattern so the headers need no
// vendor fp16 header and compile as plain C++. Conversions to float are exact. Conversions from
// float round to nearest even, overflow to infinity, keep the sign, and turn every NaN into the
// canonical quiet NaN 0x7fff (both types; the one NVIDIA's conversion instructions write, so the
// kernels' paired conversions need no NaN test): NaN signs and payloads differ between CPUs and GPUs
// after arithmetic, so they must never reach the bytes.
#pragma once
#include <cstdint>
#include <type_traits>
#include "bits.hpp"

namespace qreduce {

struct f16 {
  std::uint16_t bits;
};
struct bf16 {
  std::uint16_t bits;
};

// Run-time tag for the two tensor types (the communicator API, the benchmark, the Python binding).
enum class dtype : std::uint8_t { f16 = 0, bf16 = 1 };

template <class T>
inline constexpr dtype dtype_of = dtype::f16;
template <>
inline constexpr dtype dtype_of<bf16> = dtype::bf16;

inline constexpr const char* dtype_name(dtype t) { return t == dtype::f16 ? "fp16" : "bf16"; }

namespace numeric {

QR_HOST_DEVICE QR_FORCEINLINE float to_float(bf16 v) { return bits_float(std::uint32_t(v.bits) << 16); }

QR_HOST_DEVICE QR_FORCEINLINE float to_float(f16 v) {
#if QR_DEVICE_PASS && QR_BACKEND_CUDA
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v.bits));
  return f;
#elif QR_DEVICE_PASS && QR_BACKEND_HIP
  return static_cast<float>(__builtin_bit_cast(_Float16, v.bits));
#else
  const std::uint32_t sign = std::uint32_t(v.bits & 0x8000u) << 16;
  const std::uint32_t exp = (v.bits >> 10) & 0x1fu;
  const std::uint32_t man = v.bits & 0x3ffu;
  if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (man << 13));  // inf / nan
  if (exp != 0) return bits_float(sign | ((exp + 112u) << 23) | (man << 13));
  // zero or subnormal: man * 2^-24, exact in float
  const float mag = static_cast<float>(man) * 5.9604644775390625e-8f;
  return sign ? -mag : mag;
#endif
}

QR_HOST_DEVICE QR_FORCEINLINE bf16 to_bf16(float f) {
  const std::uint32_t x = float_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return bf16{std::uint16_t(0x7fffu)};
  return bf16{std::uint16_t((x + 0x7fffu + ((x >> 16) & 1u)) >> 16)};
}

QR_HOST_DEVICE QR_FORCEINLINE f16 to_f16(float f) {
  const std::uint32_t x = float_bits(f);
  const std::uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return f16{std::uint16_t(0x7fffu)};
#if QR_DEVICE_PASS && QR_BACKEND_CUDA
  std::uint16_t h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return f16{h};
#elif QR_DEVICE_PASS && QR_BACKEND_HIP
  return f16{__builtin_bit_cast(std::uint16_t, static_cast<_Float16>(f))};
#else
  const std::uint16_t sign = std::uint16_t((x >> 16) & 0x8000u);
  if (a >= 0x477ff000u) return f16{std::uint16_t(sign | 0x7c00u)};  // >= 65520 rounds to inf
  if (a >= 0x38800000u) {  // normal binary16
    const std::uint32_t r = a + 0xfffu + ((a >> 13) & 1u);
    return f16{std::uint16_t(sign | ((r - 0x38000000u) >> 13))};
  }
  if (a <= 0x33000000u) return f16{sign};  // <= 2^-25 rounds to zero (the tie goes to even 0)
  const std::uint32_t e = a >> 23;
  const std::uint32_t m = (a & 0x7fffffu) | 0x800000u;
  const std::uint32_t shift = 126u - e;
  std::uint32_t r = m >> shift;
  const std::uint32_t rem = m & ((1u << shift) - 1u);
  const std::uint32_t half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (r & 1u))) ++r;
  return f16{std::uint16_t(sign | r)};
#endif
}

template <class T>
QR_HOST_DEVICE QR_FORCEINLINE T from_float(float f);
template <>
QR_HOST_DEVICE QR_FORCEINLINE f16 from_float<f16>(float f) {
  return to_f16(f);
}
template <>
QR_HOST_DEVICE QR_FORCEINLINE bf16 from_float<bf16>(float f) {
  return to_bf16(f);
}

// Eight values rounded as from_float<T> rounds them, as four 16-bit pairs (value 2j in the low half of
// word j): what the kernels store. On NVIDIA one cvt.rn.{bf16x2,f16x2}.f32 rounds a pair (to nearest
// even, overflow to infinity, subnormals kept, every NaN to 0x7fff: from_float's rounding, checked on
// the device against it for every bf16 bucket, NaNs of both signs included, and every f16 midpoint).
// With another canonical NaN a group of 8 had to be tested for NaNs first: 7 instructions more for
// every 8 values the kernels write.
template <class T>
QR_HOST_DEVICE QR_FORCEINLINE void from_float8(const float (&x)[8], std::uint32_t (&w)[4]) {
#if QR_DEVICE_PASS && QR_BACKEND_CUDA
  QR_UNROLL
  for (int j = 0; j < 4; ++j) {
    if constexpr (std::is_same_v<T, bf16>) asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(w[j]) : "f"(x[2 * j + 1]), "f"(x[2 * j]));
    else asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(w[j]) : "f"(x[2 * j + 1]), "f"(x[2 * j]));
  }
#else
  QR_UNROLL
  for (int j = 0; j < 4; ++j) w[j] = std::uint32_t(from_float<T>(x[2 * j]).bits) | (std::uint32_t(from_float<T>(x[2 * j + 1]).bits) << 16);
#endif
}

}  // namespace numeric
}  // namespace qreduce
