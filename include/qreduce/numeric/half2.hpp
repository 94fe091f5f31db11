// qreduce/numeric/half2.hpp: pairs of binary16 values and IEEE binary16 arithmetic on them (each
// result rounded once to nearest even, subnormals kept, as IEEE 754 defines the operation), for the
// arithmetic that may round in half precision (int4m's search: codec/int4m.hpp).
//
// NVIDIA: one 32-bit register and the packed f16x2 instructions (add/sub/fma from sm_53; min/max and
// the paired conversion cvt.rn.f16x2.f32 from sm_80); AMD: a vector of two _Float16 and the packed
// v_pk_* instructions; host: two floats that hold binary16 values, each operation rounded once to
// binary16 from its exact value (a sum of two binary16 values is exact in double; a multiply-add is
// its double sum and the sum's error, which decides a tie). The three give the same bits.
#pragma once
#include <cmath>
#include <cstdint>
#include "bits.hpp"
#include "float16.hpp"

namespace qreduce::numeric {

#if QR_DEVICE_PASS && QR_BACKEND_CUDA

struct half2 {
  std::uint32_t bits;  // low half: the first value
};
QR_DEVICE QR_FORCEINLINE half2 h2_round(float lo, float hi) {
  half2 r;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r.bits) : "f"(hi), "f"(lo));  // first source: upper half
  return r;
}
QR_DEVICE QR_FORCEINLINE half2 h2_add(half2 a, half2 b) {
  half2 r;
  asm("add.rn.f16x2 %0, %1, %2;" : "=r"(r.bits) : "r"(a.bits), "r"(b.bits));
  return r;
}
QR_DEVICE QR_FORCEINLINE half2 h2_sub(half2 a, half2 b) {
  half2 r;
  asm("sub.rn.f16x2 %0, %1, %2;" : "=r"(r.bits) : "r"(a.bits), "r"(b.bits));
  return r;
}
QR_DEVICE QR_FORCEINLINE half2 h2_fma(half2 a, half2 b, half2 c) {
  half2 r;
  asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(r.bits) : "r"(a.bits), "r"(b.bits), "r"(c.bits));
  return r;
}
QR_DEVICE QR_FORCEINLINE half2 h2_max(half2 a, half2 b) {
  half2 r;
  asm("max.f16x2 %0, %1, %2;" : "=r"(r.bits) : "r"(a.bits), "r"(b.bits));
  return r;
}
QR_DEVICE QR_FORCEINLINE half2 h2_min(half2 a, half2 b) {
  half2 r;
  asm("min.f16x2 %0, %1, %2;" : "=r"(r.bits) : "r"(a.bits), "r"(b.bits));
  return r;
}
QR_DEVICE QR_FORCEINLINE void h2_floats(half2 a, float& lo, float& hi) {
  asm("{ .reg .b16 l, h; mov.b32 {l, h}, %2; cvt.f32.f16 %0, l; cvt.f32.f16 %1, h; }" : "=f"(lo), "=f"(hi) : "r"(a.bits));
}
QR_DEVICE QR_FORCEINLINE half2 h2_select(bool p, half2 a, half2 b) { return half2{p ? a.bits : b.bits}; }
QR_DEVICE QR_FORCEINLINE half2 h2_lows(half2 a, half2 b) { return half2{__byte_perm(a.bits, b.bits, 0x5410u)}; }
QR_DEVICE QR_FORCEINLINE half2 h2_highs(half2 a, half2 b) { return half2{__byte_perm(a.bits, b.bits, 0x7632u)}; }
QR_DEVICE QR_FORCEINLINE std::uint32_t h2_bits(half2 a) { return a.bits; }
QR_DEVICE QR_FORCEINLINE half2 h2_from_bits(std::uint32_t b) { return half2{b}; }

#elif QR_DEVICE_PASS && QR_BACKEND_HIP

typedef _Float16 half2_vector __attribute__((ext_vector_type(2)));
struct half2 {
  half2_vector v;
};
QR_DEVICE QR_FORCEINLINE half2 h2_round(float lo, float hi) { return half2{half2_vector{static_cast<_Float16>(lo), static_cast<_Float16>(hi)}}; }
QR_DEVICE QR_FORCEINLINE half2 h2_add(half2 a, half2 b) { return half2{a.v + b.v}; }
QR_DEVICE QR_FORCEINLINE half2 h2_sub(half2 a, half2 b) { return half2{a.v - b.v}; }
QR_DEVICE QR_FORCEINLINE half2 h2_fma(half2 a, half2 b, half2 c) { return half2{__builtin_elementwise_fma(a.v, b.v, c.v)}; }
QR_DEVICE QR_FORCEINLINE half2 h2_max(half2 a, half2 b) { return half2{__builtin_elementwise_max(a.v, b.v)}; }
QR_DEVICE QR_FORCEINLINE half2 h2_min(half2 a, half2 b) { return half2{__builtin_elementwise_min(a.v, b.v)}; }
QR_DEVICE QR_FORCEINLINE void h2_floats(half2 a, float& lo, float& hi) {
  lo = float(a.v.x);
  hi = float(a.v.y);
}
QR_DEVICE QR_FORCEINLINE half2 h2_select(bool p, half2 a, half2 b) { return p ? a : b; }
QR_DEVICE QR_FORCEINLINE half2 h2_lows(half2 a, half2 b) { return half2{half2_vector{a.v.x, b.v.x}}; }
QR_DEVICE QR_FORCEINLINE half2 h2_highs(half2 a, half2 b) { return half2{half2_vector{a.v.y, b.v.y}}; }
QR_DEVICE QR_FORCEINLINE std::uint32_t h2_bits(half2 a) { return __builtin_bit_cast(std::uint32_t, a.v); }
QR_DEVICE QR_FORCEINLINE half2 h2_from_bits(std::uint32_t b) { return half2{__builtin_bit_cast(half2_vector, b)}; }

#else

// The binary16 value nearest v + e, where |e| is below half an ulp of v (a double) and only its sign
// counts: it decides a v exactly between two binary16 values (otherwise ties go to even). Subnormals
// kept; beyond the largest finite, infinity.
QR_HOST_DEVICE inline float f16_round(double v, double e = 0.0) {
  if (v != v) return float(v);
  const double a = v < 0 ? -v : v;
  if (a > 65520.0 || (a == 65520.0 && (e == 0.0 || (e > 0.0) == (v > 0.0)))) return v < 0 ? -INFINITY : INFINITY;
  int x;
  std::frexp(a, &x);  // a = f * 2^x, f in [0.5, 1)
  const int q = x - 11 > -24 ? x - 11 : -24;  // the quantum: 11 significant bits, or the subnormals' 2^-24
  const double scaled = std::ldexp(v, -q);  // exact
  double r = std::nearbyint(scaled);  // to nearest, ties to even
  if (e != 0.0 && scaled - std::floor(scaled) == 0.5) r = e > 0.0 ? std::ceil(scaled) : std::floor(scaled);
  return float(std::ldexp(r, q));
}

// a * b + c for binary16 values, rounded once: the product is exact in double (11 by 11 bits), the
// sum's rounding error recovered exactly (two-sum) to break a tie of the double sum.
QR_HOST_DEVICE inline float f16_fma(float a, float b, float c) {
  const double p = double(a) * b, s = p + c, pb = s - c, e = (p - pb) + (c - (s - pb));
  return f16_round(s, e);
}

struct half2 {
  float lo, hi;  // binary16 values
};
QR_HOST_DEVICE inline half2 h2_round(float lo, float hi) { return half2{f16_round(lo), f16_round(hi)}; }
QR_HOST_DEVICE inline half2 h2_add(half2 a, half2 b) { return half2{f16_round(double(a.lo) + b.lo), f16_round(double(a.hi) + b.hi)}; }
QR_HOST_DEVICE inline half2 h2_sub(half2 a, half2 b) { return half2{f16_round(double(a.lo) - b.lo), f16_round(double(a.hi) - b.hi)}; }
QR_HOST_DEVICE inline half2 h2_fma(half2 a, half2 b, half2 c) { return half2{f16_fma(a.lo, b.lo, c.lo), f16_fma(a.hi, b.hi, c.hi)}; }
QR_HOST_DEVICE inline half2 h2_max(half2 a, half2 b) { return half2{fmaxf(a.lo, b.lo), fmaxf(a.hi, b.hi)}; }
QR_HOST_DEVICE inline half2 h2_min(half2 a, half2 b) { return half2{fminf(a.lo, b.lo), fminf(a.hi, b.hi)}; }
QR_HOST_DEVICE inline void h2_floats(half2 a, float& lo, float& hi) {
  lo = a.lo;
  hi = a.hi;
}
QR_HOST_DEVICE inline half2 h2_select(bool p, half2 a, half2 b) { return p ? a : b; }
QR_HOST_DEVICE inline half2 h2_lows(half2 a, half2 b) { return half2{a.lo, b.lo}; }
QR_HOST_DEVICE inline half2 h2_highs(half2 a, half2 b) { return half2{a.hi, b.hi}; }
QR_HOST_DEVICE inline std::uint32_t h2_bits(half2 a) { return std::uint32_t(to_f16(a.lo).bits) | (std::uint32_t(to_f16(a.hi).bits) << 16); }
QR_HOST_DEVICE inline half2 h2_from_bits(std::uint32_t b) {
  return half2{to_float(f16{std::uint16_t(b & 0xffffu)}), to_float(f16{std::uint16_t(b >> 16)})};
}

#endif

// h2_lows(a, b) = (a.lo, b.lo), h2_highs(a, b) = (a.hi, b.hi); h2_bits / h2_from_bits: the 32 bits
// (low half first), for lane exchanges.

// Both halves v, rounded to binary16.
QR_HOST_DEVICE QR_FORCEINLINE half2 h2_both(float v) { return h2_round(v, v); }

// The binary16 bits of v, a value binary16 holds exactly (zero or normal), at compile time.
consteval std::uint16_t f16_exact_bits(float v) {
  const std::uint32_t b = __builtin_bit_cast(std::uint32_t, v), sign = (b >> 16) & 0x8000u, mag = b & 0x7fffffffu;
  if (mag == 0u) return std::uint16_t(sign);
  const std::uint32_t e = mag >> 23;  // binary16 normals: f32 exponent fields 113 .. 142
  if (e < 113u || e > 142u || (mag & 0x1fffu) != 0u) throw "f16_exact_bits: not a binary16 normal value";
  return std::uint16_t(sign | ((e - 112u) << 10) | ((mag >> 13) & 0x3ffu));
}

// Both halves the constant V, a value binary16 holds exactly: h2_both(V) without a conversion
// instruction (inline-assembly conversions are never folded into constants).
template <float V>
QR_HOST_DEVICE QR_FORCEINLINE half2 h2_constant() {
#if QR_DEVICE_PASS && QR_BACKEND_CUDA
  constexpr std::uint32_t h = f16_exact_bits(V);
  return half2{h | (h << 16)};
#else
  return h2_both(V);  // folded by the compiler (HIP), exact (host)
#endif
}

}  // namespace qreduce::numeric
