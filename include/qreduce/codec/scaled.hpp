// qreduce/codec/scaled.hpp: the quantizing codecs: one scale per group of 32, codes of 4, 6 or 8 bits.
//
//   encode: s = absmax-derived scale (scale.hpp); inv = 1 / s (IEEE f32 division);
//           code_i = Format.round(x_i * inv)   (f32 product, round to nearest even, saturating)
//   decode: x_i = Format.value(code_i) * s     (f32, exact)
//
// These steps are the same on every backend; native conversion instructions replace only
// Format.round, and they produce the same codes (tests/gpu and tests/isa check both facts).
#pragma once
#include <cstdint>
#include "codec.hpp"
#include "memory.hpp"
#include "scale.hpp"
#include "../numeric/minifloat.hpp"

namespace qreduce::codec {

template <class Scale>
struct group_state {
  typename Scale::storage scale;
  float inv;  // 1 / scale, or 0 for a non-finite group
  bool finite;
  bool clamps = false;  // device encode: a product of the group may reach the rounding's clamp
};

// Packing of 8 codes of B bits into a lane payload, and its place in the group payload.
template <int B>
struct packing;

template <>
struct packing<4> {  // group payload: 16 bytes, value i in byte i/2 (even i low nibble)
  using lane_payload = lane_words<1>;
  static constexpr int payload_bytes = 16;
  QR_HOST_DEVICE static QR_FORCEINLINE void store(std::byte* g, int lane, const lane_payload& p) { mem::store_words<1>(g + 4 * lane, p.w); }
  QR_HOST_DEVICE static QR_FORCEINLINE lane_payload load(const std::byte* g, int lane) {
    lane_payload p;
    mem::load_words<1>(g + 4 * lane, p.w);
    return p;
  }
};

template <>
struct packing<8> {  // group payload: 32 bytes, value i in byte i
  using lane_payload = lane_words<2>;
  static constexpr int payload_bytes = 32;
  QR_HOST_DEVICE static QR_FORCEINLINE void store(std::byte* g, int lane, const lane_payload& p) { mem::store_words<2>(g + 8 * lane, p.w); }
  QR_HOST_DEVICE static QR_FORCEINLINE lane_payload load(const std::byte* g, int lane) {
    lane_payload p;
    mem::load_words<2>(g + 8 * lane, p.w);
    return p;
  }
};

template <>
struct packing<6> {  // group payload: 24 bytes: low nibbles as in packing<4>, then 2-bit high parts
  using lane_payload = lane_words<2>;  // w[0]: 8 low nibbles, w[1]: 8 two-bit high parts (16 bits)
  static constexpr int payload_bytes = 24;
  QR_HOST_DEVICE static QR_FORCEINLINE void store(std::byte* g, int lane, const lane_payload& p) {
    mem::store_words<1>(g + 4 * lane, p.w);
    mem::store_small<std::uint16_t>(g + 16 + 2 * lane, std::uint16_t(p.w[1]));
  }
  QR_HOST_DEVICE static QR_FORCEINLINE lane_payload load(const std::byte* g, int lane) {
    lane_payload p;
    mem::load_words<1>(g + 4 * lane, p.w);
    p.w[1] = mem::load_small<std::uint16_t>(g + 16 + 2 * lane);
    return p;
  }
};

template <class Format, class Scale>
struct scaled_codec {
  using format = Format;
  using scale_type = Scale;
  using pack = packing<Format::code_bits>;
  using lane_payload = typename pack::lane_payload;
  using state = group_state<Scale>;
  static constexpr int payload_bytes = pack::payload_bytes;
  static constexpr int scale_bytes = Scale::bytes;
  static constexpr bool needs_absmax = true;
  static constexpr float qmax = Format::max;
  static_assert(qmax >= 4.0f, "the scales' reciprocals need qmax >= 4 (scale.hpp)");
  // Whether every product x * inv of a finite group lies below the magnitude where the format's
  // rounding needs its clamp (Format::unclamped_limit): then the device leaves the clamp out (FP4,
  // INT4, INT6 and INT8, whose bf16 scales keep products within qmax / (1 - 2^-7); not MXFP4, whose
  // power-of-two clamp leaves products up to 8: FLT_MAX / 2^125). One or two instructions a value fewer.
  static constexpr bool bounded_products = [] {
    if constexpr (requires {
                    Format::unclamped_limit;
                    Scale::product_bound(qmax);
                  })
      return Scale::product_bound(qmax) < Format::unclamped_limit;
    else return false;
  }();
  // Where they are not (MXFP4: only groups whose power-of-two scale hit its upper clamp, absmax above
  // 2.5e38, reach 7), the device tests the group once (absmax * inv against the limit: the largest
  // product) and clamps its products only where it may: one test a lane instead of a clamp a value.
  static constexpr bool clamps_by_group = !bounded_products && requires {
    Format::unclamped_limit;
    Scale::product_bound(qmax);
  };
  // Whether the encode tells -0 from +0 (a code of its own): where it does not (the integer formats,
  // FP8 FNUZ) no code decodes to -0 either, and a sum's sign of zero never reaches the bytes (the
  // two-shot's sums, algorithm/two_shot.hpp).
  static constexpr bool encodes_zero_sign = Format::has_negative_zero;

  QR_HOST_DEVICE static QR_FORCEINLINE state make_state(std::uint32_t absmax_bits) {
    if (!numeric::is_finite_bits(absmax_bits)) return state{Scale::nan, 0.0f, false};
    const auto s = Scale::from_absmax(numeric::bits_float(absmax_bits), qmax);
    state st{s, Scale::reciprocal(s), true};
#if QR_DEVICE_PASS
    if constexpr (clamps_by_group) st.clamps = numeric::bits_float(absmax_bits) * st.inv >= Format::unclamped_limit;
#endif
    return st;
  }

  template <class T>
  QR_HOST_DEVICE static QR_FORCEINLINE lane_payload encode_lane(const float (&x)[8], const state& st) {
    // A non-finite group (inv 0) encodes as zeros. On a device the 4- and 6-bit formats whose
    // rounding takes a NaN without fault (Format::device_rounds_nan: their clamps are fminf/fmaxf,
    // no float-to-integer conversion) get every product, the NaNs that inv 0 makes of infinities
    // included, and the payload is cleared once at the end instead of each product selected; the
    // host's rounding casts to integers, which a NaN must not reach.
#if QR_DEVICE_PASS
    constexpr bool clear_after = Format::code_bits != 8 && requires { requires bool(Format::device_rounds_nan); };
    constexpr bool bounded = bounded_products || clamps_by_group;  // (the host keeps the clamp: it is the reference)
#else
    constexpr bool clear_after = false;
    constexpr bool bounded = false;
#endif
    float s[8];
    QR_UNROLL
    for (int j = 0; j < 8; ++j) s[j] = clear_after || st.finite ? numeric::mul_rn(x[j], st.inv) : 0.0f;
    if constexpr (bounded && clamps_by_group) {
      if (st.clamps) {  // rare: clamped here, the rounding then needs no clamp of its own
        QR_UNROLL
        for (int j = 0; j < 8; ++j) s[j] = fminf(fmaxf(s[j], -Format::max), Format::max);
      }
    }
    lane_payload p{};
    if constexpr (Format::code_bits == 4) {
      if constexpr (requires { Format::encode8(s); }) {
        p.w[0] = Format::template encode8<bounded>(s);
      } else {
        QR_UNROLL
        for (int j = 0; j < 8; ++j) p.w[0] |= Format::template encode_soft<bounded>(s[j]) << (4 * j);
      }
    } else if constexpr (Format::code_bits == 8) {
      if constexpr (requires { Format::encode2(s[0], s[1]); }) {
        QR_UNROLL
        for (int j = 0; j < 4; ++j) p.w[j / 2] |= Format::encode2(s[2 * j], s[2 * j + 1]) << (16 * (j % 2));
      } else {
        QR_UNROLL
        for (int j = 0; j < 8; ++j) p.w[j / 4] |= Format::template encode_soft<bounded>(s[j]) << (8 * (j % 4));
      }
    } else {
      static_assert(Format::code_bits == 6);
      QR_UNROLL
      for (int j = 0; j < 8; ++j) {
        const std::uint32_t c = Format::template encode_soft<bounded>(s[j]);
        p.w[0] |= (c & 0xfu) << (4 * j);
        p.w[1] |= (c >> 4) << (2 * j);
      }
    }
    if constexpr (clear_after)
      if (!st.finite) p = lane_payload{};
    return p;
  }

  // The format's values of a lane's codes, unscaled.
  QR_HOST_DEVICE static QR_FORCEINLINE void values(const lane_payload& p, float (&v)[8]) {
    if constexpr (Format::code_bits == 4) {
      if constexpr (requires { Format::decode8(p.w[0], v); }) {
        Format::decode8(p.w[0], v);
      } else {
        QR_UNROLL
        for (int j = 0; j < 8; ++j) v[j] = Format::decode_soft((p.w[0] >> (4 * j)) & 0xfu);
      }
    } else if constexpr (Format::code_bits == 8) {
      QR_UNROLL
      for (int j = 0; j < 8; ++j) v[j] = Format::decode_soft((p.w[j / 4] >> (8 * (j % 4))) & 0xffu);
    } else {
      QR_UNROLL
      for (int j = 0; j < 8; ++j) v[j] = Format::decode_soft(((p.w[0] >> (4 * j)) & 0xfu) | (((p.w[1] >> (2 * j)) & 0x3u) << 4));
    }
  }
  QR_HOST_DEVICE static QR_FORCEINLINE float scale_value(const state& st) {
    return st.finite ? Scale::to_float(st.scale) : numeric::bits_float(0x7fc00000u);
  }

  template <class T>
  QR_HOST_DEVICE static QR_FORCEINLINE void decode_lane(const lane_payload& p, const state& st, float (&y)[8]) {
    const float sc = scale_value(st);
    float v[8];
    values(p, v);
    QR_UNROLL
    for (int j = 0; j < 8; ++j) y[j] = v[j] * sc;
  }

  // acc_j + decode_lane's value j, as one fused multiply-add a value: the product of a format value
  // (at most 8 significant bits, 2^-10 the smallest: FP8 FNUZ's subnormals) and a scale (8 bits, 2^-127 the smallest) is
  // exact in f32, so rounding the sum once is the sum of decode_lane's value: the same bits, one
  // instruction a value fewer (the two-shot's reduce step).
  template <class T>
  QR_HOST_DEVICE static QR_FORCEINLINE void accumulate_lane(const lane_payload& p, const state& st, float (&acc)[8]) {
    const float sc = scale_value(st);
    float v[8];
    values(p, v);
    QR_UNROLL
    for (int j = 0; j < 8; ++j) acc[j] = fmaf(v[j], sc, acc[j]);
  }

#if QR_BACKEND_CUDA && QR_DEVICE_PASS && __CUDA_ARCH__ >= 900
  // decode_lane's values rounded to bf16, for the formats with decode8_bf16 (E2M1, INT4): the values as
  // bf16 times the scale as bf16 by one mul.rn.bf16x2 a pair. decode_lane's f32 product is exact (a
  // significand of at most 3 bits times the scale's 8) and rounding it to bf16 rounds the exact product
  // once, as the bf16 multiply does; a NaN scale gives the canonical NaN either way (tests/gpu checks
  // both paths' bits). 4 multiplies where decode and store took 8 conversions or subtractions, 8
  // multiplies and 4 roundings.
  template <class F = Format>
  requires requires(std::uint32_t w, std::uint32_t (&o)[4]) { F::decode8_bf16(w, o); }
  QR_DEVICE static QR_FORCEINLINE void decode_lane_bf16(const lane_payload& p, const state& st, std::uint32_t (&w)[4]) {
    std::uint32_t m[4];
    Format::decode8_bf16(p.w[0], m);
    const std::uint32_t s = st.finite ? Scale::bf16_bits(st.scale) : 0x7fc0u;
    const std::uint32_t s2 = s | (s << 16);
    QR_UNROLL
    for (int j = 0; j < 4; ++j) asm("mul.rn.bf16x2 %0, %1, %2;" : "=r"(w[j]) : "r"(m[j]), "r"(s2));
  }
#endif

  QR_HOST_DEVICE static QR_FORCEINLINE void store_lane(std::byte* g, int lane, const lane_payload& p) { pack::store(g, lane, p); }
  QR_HOST_DEVICE static QR_FORCEINLINE lane_payload load_lane(const std::byte* g, int lane) { return pack::load(g, lane); }
  QR_HOST_DEVICE static QR_FORCEINLINE void store_scale(std::byte* s, const state& st) { mem::store_small<typename Scale::storage>(s, st.scale); }
  QR_HOST_DEVICE static QR_FORCEINLINE state load_scale(const std::byte* s, int) {
    const auto v = mem::load_small<typename Scale::storage>(s);
    return state{v, 0.0f, v != Scale::nan};
  }
};

// Each codec is a named type (the name travels in benchmarks, errors and the Python API). int8
// always rotates (codec::always_rotated): in bench/accuracy.cpp's table the rotation lowers its error
// 1.6x on heavy-tailed and 4.8x on outlier data and costs nothing on Gaussian data, and its encode
// stays at 91% of the H100's copy bandwidth. int6 and int4 gain as much from it but their encode
// would drop to 76-78% (docs/results/2026-11-25-accuracy): for them, as for the float codecs (whose
// error it raises on outlier data), rotation is a choice of the call.
struct int8 : scaled_codec<numeric::int_format<8>, scale_bf16> {
  static constexpr const char* name = "int8";
  static constexpr bool always_rotated = true;
};
struct int6 : scaled_codec<numeric::int_format<6>, scale_bf16> {
  static constexpr const char* name = "int6";
};
struct int4 : scaled_codec<numeric::int_format<4>, scale_bf16> {
  static constexpr const char* name = "int4";
};
struct fp8 : scaled_codec<numeric::e4m3fn, scale_bf16> {
  static constexpr const char* name = "fp8";
};
struct fp8_fnuz : scaled_codec<numeric::e4m3fnuz, scale_bf16> {
  static constexpr const char* name = "fp8_fnuz";
};
// The seed's FP4 method (absmax / 6 per 32 values), its scale held as bf16 so bf16 inputs fit.
struct fp4 : scaled_codec<numeric::e2m1, scale_bf16> {
  static constexpr const char* name = "fp4";
};
// OCP MX FP4: power-of-two E8M0 scale per 32 values.
struct mxfp4 : scaled_codec<numeric::e2m1, scale_e8m0> {
  static constexpr const char* name = "mxfp4";
};

}  // namespace qreduce::codec
