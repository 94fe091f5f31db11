// qreduce/codec/codec.hpp: what a codec is, and the tile layout every codec's bytes travel in.
//
// A codec turns groups of 32 values into a fixed number of bytes and back. The algorithms are
// written once against the `codec_type` concept below; adding a codec touches its own header and the
// codec list (codec/all.hpp).
//
// Work split. A group of 32 values is handled by 4 consecutive lanes of a wave, 8 values each (one
// 16-byte load of fp16/bf16). The codec says how one lane's 8 values become a `lane_payload` given
// the group's state (scale), and where that payload and the group's scale lie in memory:
//
//   group payload: payload_bytes bytes, lane l's part at a fixed place inside it (the codec's
//                  store_lane / load_lane); scale: scale_bytes bytes.
//   tile:          64 groups (2048 values): the 64 payloads back to back, then the 64 scales.
//                  tile_bytes = 64 * (payload_bytes + scale_bytes), a multiple of 16.
//
// docs/wire-format.md describes every codec's bytes; tests/host/test_codecs.cpp pins them down.
#pragma once
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include "../numeric/float16.hpp"

namespace qreduce::codec {

inline constexpr int group_size = 32;
inline constexpr int lane_values = 8;
inline constexpr int lanes_per_group = group_size / lane_values;  // 4
inline constexpr int tile_groups = 64;
inline constexpr int tile_values = tile_groups * group_size;  // 2048

// One lane's share of a group: up to four 32-bit words (16 bytes).
template <int Words>
struct lane_words {
  std::uint32_t w[Words];
};

// clang-format off
// (Type traits rather than std::convertible_to: the latter calls std::declval, which HIP's device
// pass rejects.)
//
// Two ways to find a group's state. Most codecs need only the group's largest magnitude: they give
// make_state(absmax bits) and encode a lane from that state alone (group_state_codec). A codec whose
// state depends on more (int4m searches a scale per half group) encodes a lane with its group's
// lanes in view, through exchange(v, mask) = lane (lane ^ mask)'s v, and gives a host reference of a
// whole group beside it (exchange_codec); tests/gpu checks that the two write the same bytes.
template <class C>
concept codec_common =
    std::is_convertible_v<decltype(C::name), const char*> &&
    std::is_convertible_v<decltype(C::payload_bytes), int> &&
    std::is_convertible_v<decltype(C::scale_bytes), int> &&
    requires(float (&y)[8], typename C::state st, typename C::lane_payload p, std::byte* mem, const std::byte* cmem) {
  { C::template decode_lane<f16>(p, st, y) };
  { C::template decode_lane<bf16>(p, st, y) };
  { C::store_lane(mem, 0, p) };
  { C::load_lane(cmem, 0) } -> std::same_as<typename C::lane_payload>;
  { C::store_scale(mem, st) };
  { C::load_scale(cmem, 0) } -> std::same_as<typename C::state>;  // the state lane 0..3 decodes with
};

template <class C>
concept group_state_codec = codec_common<C> &&
    std::is_convertible_v<decltype(C::needs_absmax), bool> &&
    requires(const float (&x)[8], typename C::state st, std::uint32_t absmax_bits) {
  { C::make_state(absmax_bits) } -> std::same_as<typename C::state>;
  { C::template encode_lane<f16>(x, st) } -> std::same_as<typename C::lane_payload>;
  { C::template encode_lane<bf16>(x, st) } -> std::same_as<typename C::lane_payload>;
};

template <class C>
concept exchange_codec = codec_common<C> &&
    requires(const float* v, std::byte* mem) {
  { C::template encode_group_reference<f16>(v, mem, mem) };
  { C::template encode_group_reference<bf16>(v, mem, mem) };
};

template <class C>
concept codec_type = group_state_codec<C> || exchange_codec<C>;
// clang-format on

// A codec that sets `static constexpr bool always_rotated = true` is defined on Walsh-Hadamard
// rotated groups (codec/rotation.hpp): the algorithms rotate around it whatever the call asks. int4m
// does: without the rotation, its grid without a zero level costs more than it gains on outliers.
template <codec_type C>
inline constexpr bool always_rotated = [] {
  if constexpr (requires { C::always_rotated; }) return bool(C::always_rotated);
  else return false;
}();

// Whether C's encode gives -0 a code of its own (the float formats), so that a sum's sign of zero
// reaches its bytes; false where +0 and -0 encode alike and no code decodes to -0 (the integer
// formats, FP8 FNUZ, int4m). Unknown: true.
template <codec_type C>
inline constexpr bool encodes_zero_sign = [] {
  if constexpr (requires { C::encodes_zero_sign; }) return bool(C::encodes_zero_sign);
  else return true;
}();

template <codec_type C>
inline constexpr int tile_bytes = tile_groups*(C::payload_bytes + C::scale_bytes);

// The stride of C's tiles in the two-shot's slots: tile_bytes rounded up to whole 128-byte lines, so
// that every tile, and a warp's 128 bytes of its payload, starts on a line. Only MXFP4's differs
// (1088 -> 1152 bytes): with 1088-byte strides every other tile's payload stores and loads straddled
// two lines, and MXFP4 ran 10% slower than FP4 at 1 GiB on 2x H200 (docs/design.md). The padding is
// skipped, never sent.
template <codec_type C>
inline constexpr int slot_tile_bytes = (tile_bytes<C> + 127) / 128 * 128;

template <codec_type C>
inline constexpr double bits_per_value = 8.0 * (C::payload_bytes + C::scale_bytes) / group_size;

// Compressed size of n values (whole tiles: a partial last tile is padded with zeros).
template <codec_type C>
constexpr std::size_t encoded_bytes(std::size_t n) {
  return (n + tile_values - 1) / tile_values * std::size_t(tile_bytes<C>);
}

// Largest magnitude of 8 floats as the bits of a non-negative float: integer order matches magnitude
// order, and NaN > inf > every finite value, so one unsigned max finds both the scale and non-finites.
// On NVIDIA devices (sm_80 and later) the same maximum is taken in float: max.NaN.f32 returns NaN
// where either operand is one, and the absolute values fold into its operands: one instruction a
// value instead of a mask and an integer max (a NaN comes out as the canonical NaN, which is all the
// callers ask of it: not finite). Both are written out without .ftz, so that a program built with
// -ftz=true still takes subnormal magnitudes as they are, as the host does.
QR_HOST_DEVICE QR_FORCEINLINE std::uint32_t absmax_bits8(const float (&x)[8]) {
#if QR_BACKEND_CUDA && QR_DEVICE_PASS && __CUDA_ARCH__ >= 800
  const auto abs = [](float v) {
    float a;
    asm("abs.f32 %0, %1;" : "=f"(a) : "f"(v));
    return a;
  };
  float m = abs(x[0]);
  QR_UNROLL
  for (int j = 1; j < 8; ++j) asm("max.NaN.f32 %0, %1, %2;" : "=f"(m) : "f"(m), "f"(abs(x[j])));
  return numeric::float_bits(m);
#else
  std::uint32_t m = 0u;
  QR_UNROLL
  for (int j = 0; j < 8; ++j) {
    const std::uint32_t a = numeric::float_bits(x[j]) & 0x7fffffffu;
    m = a > m ? a : m;
  }
  return m;
#endif
}

// ---- host reference: one group at a time ------------------------------------------------------
// The device paths run the same lane functions; these loops are the reference the tests compare to.

template <codec_type C, class T>
void encode_group(const float* values, std::byte* payload, std::byte* scale) {
  if constexpr (exchange_codec<C>) {
    C::template encode_group_reference<T>(values, payload, scale);
  } else {
    float x[lanes_per_group][8];
    std::uint32_t am = 0u;
    for (int l = 0; l < lanes_per_group; ++l) {
      for (int j = 0; j < 8; ++j) x[l][j] = values[l * 8 + j];
      const std::uint32_t a = absmax_bits8(x[l]);
      am = a > am ? a : am;
    }
    const auto st = C::make_state(am);
    for (int l = 0; l < lanes_per_group; ++l) C::store_lane(payload, l, C::template encode_lane<T>(x[l], st));
    C::store_scale(scale, st);
  }
}

template <codec_type C, class T>
void decode_group(const std::byte* payload, const std::byte* scale, float* values) {
  for (int l = 0; l < lanes_per_group; ++l) {
    float y[8];
    C::template decode_lane<T>(C::load_lane(payload, l), C::load_scale(scale, l), y);
    for (int j = 0; j < 8; ++j) values[l * 8 + j] = y[j];
  }
}

// Whole buffers in the tile layout (n values, the last tile padded with zeros).
template <codec_type C, class T>
void encode(const T* in, std::size_t n, std::byte* out) {
  const std::size_t tiles = (n + tile_values - 1) / tile_values;
  for (std::size_t t = 0; t < tiles; ++t) {
    std::byte* tile = out + t * tile_bytes<C>;
    for (int g = 0; g < tile_groups; ++g) {
      float v[group_size];
      for (int i = 0; i < group_size; ++i) {
        const std::size_t k = t * tile_values + std::size_t(g) * group_size + std::size_t(i);
        v[i] = k < n ? numeric::to_float(in[k]) : 0.0f;
      }
      encode_group<C, T>(v, tile + g * C::payload_bytes, tile + tile_groups * C::payload_bytes + g * C::scale_bytes);
    }
  }
}

template <codec_type C, class T>
void decode(const std::byte* in, std::size_t n, float* out) {
  const std::size_t tiles = (n + tile_values - 1) / tile_values;
  for (std::size_t t = 0; t < tiles; ++t) {
    const std::byte* tile = in + t * tile_bytes<C>;
    for (int g = 0; g < tile_groups; ++g) {
      float v[group_size];
      decode_group<C, T>(tile + g * C::payload_bytes, tile + tile_groups * C::payload_bytes + g * C::scale_bytes, v);
      for (int i = 0; i < group_size; ++i) {
        const std::size_t k = t * tile_values + std::size_t(g) * group_size + std::size_t(i);
        if (k < n) out[k] = v[i];
      }
    }
  }
}

}  // namespace qreduce::codec
