// qreduce/epilogue/outputs.hpp: what the fused residual + RMSNorm writes as its normalized output y.
//
// The RMSNorm epilogue (rmsnorm.hpp) computes y in f32 and hands it, 8 values at a time, to one of
// these output types, which store it for the next GEMM:
//
//   out_native<T>      y in the tensor's type (fp16 / bf16), rows x hidden.
//   out_fp8_per_token  FP8 E4M3 (OCP "fn") codes, rows x hidden bytes, and one f32 scale per row:
//                        scale = max(absmax(row) / 448, 1 / (448 * 512));  code = e4m3(y * (1 / scale))
//                        y ~ e4m3_value(code) * scale
//   out_mxfp4          OCP MXFP4: E2M1 codes, two per byte (value 2i in the low nibble of byte i),
//                      rows x hidden / 2 bytes, and one E8M0 scale byte per 32 values, rows x hidden / 32:
//                        scale = 2^ceil(log2(absmax(group) / 6))  (qreduce's mxfp4 codec's rule: no
//                        value saturates);  code = e2m1(y * (1 / scale));  y ~ e2m1_value(code) * scale
//   out_nvfp4          NVFP4: E2M1 codes packed as out_mxfp4, one E4M3 scale byte per 16 values
//                      (rows x hidden / 16), and the caller's per-tensor f32 global scale G (device memory):
//                        s = e4m3(absmax(group) / 6 * G);  code = e2m1(y * (G / s)), or 0 if s is 0
//                        y ~ e2m1_value(code) * s / G
// Scales are row-major ([row][group]); no swizzled layout is written. Rounding is to nearest even,
// saturating, in f32 (the same bytes on every backend: native conversion instructions where the
// chip has them, the software rounding of numeric/minifloat.hpp elsewhere).
// Non-finite values: a row (fp8) or group (fp4) holding NaN or infinity gets a NaN scale (f32 NaN,
// 0xff E8M0, 0x7f E4M3) and the codes 0x7f (fp8) or 0 (fp4): it dequantizes to NaN, its neighbours
// are untouched.
//
// An output type provides, for the epilogue:
//   row_absmax   true if store() needs the row's largest |y| (computed in the sum-of-squares pass)
//   group        the number of values hidden must be a multiple of
//   store(row, hidden, k, y, active, row_absmax)   values [k, k+8) of the row; every thread of the
//                block calls it (active = false past the row's end) since groups span lanes.
// for the communicator's argument checks (comm.hpp):
//   buffers()    its tensors: pointer, alignment and name (in the messages) of each
//   value_type   only where it writes the tensor's type (out_native): the dtype it must match
// and, on the host, reference(y_row, hidden, row) writing the same bytes from f32 values, which
// the tests compare with the device's, and dequantize(row, hidden, k).
// The all-reduce kernels take any_output<T>, which holds one of them chosen at run time: one kernel
// per (codec, dtype, world) serves every output, so the communicator can load them all up front. The
// kernel of rows after the all-reduce, which does not depend on the codec or the world, and the
// fused RMSNorm's one-shot are compiled for each output type (any_output::visit). norm_output_kind numbers the output types; the Python
// binding passes it as the output format id.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include "../codec/codec.hpp"
#include "../codec/scaled.hpp"
#include "../numeric/minifloat.hpp"
#if !QR_BACKEND_HOST
#include "../device/tile.hpp"
#endif

namespace qreduce::epilogue {

namespace detail {
inline constexpr std::uint32_t f32_nan = 0x7fc00000u;
inline constexpr float fp8_max = numeric::e4m3fn::max;  // 448
inline constexpr float fp8_min_scale = 1.0f / (448.0f * 512.0f);

// FP8 per-token scale from the row's absmax bits (NaN for a non-finite row).
QR_HOST_DEVICE QR_FORCEINLINE float fp8_scale(std::uint32_t absmax_bits) {
  if (!numeric::is_finite_bits(absmax_bits)) return numeric::bits_float(f32_nan);
  const float s = numeric::bits_float(absmax_bits) / fp8_max;
  return s < fp8_min_scale ? fp8_min_scale : s;
}

// Eight fp8 codes (value j in byte j) of y * inv; all 0x7f for a non-finite row.
QR_HOST_DEVICE QR_FORCEINLINE void fp8_codes(const float (&y)[8], float scale, std::uint32_t (&w)[2]) {
  if (scale != scale) {
    w[0] = w[1] = 0x7f7f7f7fu;
    return;
  }
  const float inv = 1.0f / scale;
  w[0] = w[1] = 0u;
  QR_UNROLL
  for (int j = 0; j < 4; ++j) w[j / 2] |= numeric::e4m3fn::encode2(y[2 * j] * inv, y[2 * j + 1] * inv) << (16 * (j % 2));
}

// NVFP4 group state: the E4M3 scale byte and the multiplier G / s (0 for a zero scale).
struct nvfp4_state {
  std::uint32_t scale;
  float mul;
  bool finite;
};
QR_HOST_DEVICE QR_FORCEINLINE nvfp4_state nvfp4_make(std::uint32_t absmax_bits, float global) {
  const float t = numeric::bits_float(absmax_bits) / 6.0f * global;
  if (!numeric::is_finite_bits(absmax_bits) || !numeric::is_finite_bits(numeric::float_bits(t))) return {0x7fu, 0.0f, false};
  const std::uint32_t s = numeric::e4m3fn::encode2(t, 0.0f) & 0xffu;
  const float sf = numeric::e4m3fn::decode_soft(s);
  return {s, sf > 0.0f ? global / sf : 0.0f, true};
}
QR_HOST_DEVICE QR_FORCEINLINE std::uint32_t nvfp4_codes(const float (&y)[8], const nvfp4_state& st) {
  if (!st.finite) return 0u;
  float s[8];
  QR_UNROLL
  for (int j = 0; j < 8; ++j) s[j] = y[j] * st.mul;
  return numeric::e2m1::encode8(s);
}

QR_HOST_DEVICE QR_FORCEINLINE std::uint32_t absmax_bits(const float* y, int count) {
  std::uint32_t m = 0u;
  for (int j = 0; j < count; ++j) {
    const std::uint32_t a = numeric::float_bits(y[j]) & 0x7fffffffu;
    m = a > m ? a : m;
  }
  return m;
}
}  // namespace detail

// One tensor of an output, for the communicator's argument checks: null, or not `align`-byte
// aligned, is refused with `name` in the message.
struct output_buffer {
  const void* ptr;
  std::size_t align;
  const char* name;
};

// What the communicator accepts as an RMSNorm output (type traits, not std::convertible_to: see
// codec/codec.hpp).
template <class Out>
concept norm_output = std::is_convertible_v<decltype(Out::row_absmax), bool> && std::is_convertible_v<decltype(Out::group), int> &&
    std::is_convertible_v<decltype(Out::name), const char*> && requires(const Out& o) {
  o.buffers();
};

template <class T>
struct out_native {
  static constexpr bool row_absmax = false;
  static constexpr int group = 8;
  static constexpr const char* name = "native";
  using value_type = T;
  T* y;

  std::array<output_buffer, 1> buffers() const { return {{{y, 16, "y"}}}; }

#if !QR_BACKEND_HOST
  QR_DEVICE QR_FORCEINLINE void store(std::size_t row, std::size_t hidden, std::size_t k, const float (&v)[8], bool active, float) const {
    if (active) device::store8(y + row * hidden, hidden, k, v);
  }
#endif
};

struct out_fp8_per_token {
  static constexpr bool row_absmax = true;
  static constexpr int group = 8;
  static constexpr const char* name = "fp8_per_token";
  std::uint8_t* q;  // rows x hidden E4M3 codes
  float* scale;  // rows

  std::array<output_buffer, 2> buffers() const { return {{{q, 16, "the fp8 output"}, {scale, 4, "the fp8 scales"}}}; }

#if !QR_BACKEND_HOST
  QR_DEVICE QR_FORCEINLINE void store(std::size_t row, std::size_t hidden, std::size_t k, const float (&v)[8], bool active, float row_absmax) const {
    if (!active) return;
    const float s = detail::fp8_scale(numeric::float_bits(row_absmax));
    std::uint32_t w[2];
    detail::fp8_codes(v, s, w);
    *reinterpret_cast<uint2*>(q + row * hidden + k) = make_uint2(w[0], w[1]);
    if (k == 0) scale[row] = s;
  }
#endif

  // Host reference of one row (y: hidden f32 values).
  void reference(const float* y, std::size_t hidden, std::size_t row) const {
    const float s = detail::fp8_scale(detail::absmax_bits(y, int(hidden)));
    for (std::size_t k = 0; k < hidden; k += 8) {
      float v[8];
      for (int j = 0; j < 8; ++j) v[j] = y[k + std::size_t(j)];
      std::uint32_t w[2];
      detail::fp8_codes(v, s, w);
      for (int j = 0; j < 8; ++j) q[row * hidden + k + std::size_t(j)] = std::uint8_t(w[j / 4] >> (8 * (j % 4)));
    }
    scale[row] = s;
  }
  float dequantize(std::size_t row, std::size_t hidden, std::size_t k) const {
    return numeric::e4m3fn::decode_soft(q[row * hidden + k]) * scale[row];
  }
};

struct out_mxfp4 {
  static constexpr bool row_absmax = false;
  static constexpr int group = 32;
  static constexpr const char* name = "mxfp4";
  using codec_t = codec::mxfp4;
  std::uint8_t* q;  // rows x hidden / 2
  std::uint8_t* scale;  // rows x hidden / 32, E8M0

  std::array<output_buffer, 2> buffers() const { return {{{q, 16, "the mxfp4 output"}, {scale, 1, "the mxfp4 scales"}}}; }

#if !QR_BACKEND_HOST
  QR_DEVICE QR_FORCEINLINE void store(std::size_t row, std::size_t hidden, std::size_t k, const float (&v)[8], bool active, float) const {
    const auto c = device::encode_lane<codec_t, float>(v);  // every lane: the group's shuffles
    if (!active) return;
    const std::size_t i = row * hidden + k;
    *reinterpret_cast<std::uint32_t*>(q + i / 2) = c.payload.w[0];
    if (i % 32 == 0) scale[i / 32] = c.state.scale;
  }
#endif

  void reference(const float* y, std::size_t hidden, std::size_t row) const {
    for (std::size_t g = 0; g < hidden; g += 32) {
      const auto st = codec_t::make_state(detail::absmax_bits(y + g, 32));
      for (std::size_t l = 0; l < 4; ++l) {
        float v[8];
        for (int j = 0; j < 8; ++j) v[j] = y[g + 8 * l + std::size_t(j)];
        const std::uint32_t w = codec_t::encode_lane<float>(v, st).w[0];
        for (int b = 0; b < 4; ++b) q[(row * hidden + g + 8 * l) / 2 + std::size_t(b)] = std::uint8_t(w >> (8 * b));
      }
      scale[(row * hidden + g) / 32] = st.scale;
    }
  }
  float dequantize(std::size_t row, std::size_t hidden, std::size_t k) const {
    const std::size_t i = row * hidden + k;
    const std::uint8_t s = scale[i / 32];
    const float sf = s == codec::scale_e8m0::nan ? numeric::bits_float(detail::f32_nan) : codec::scale_e8m0::to_float(s);
    return numeric::e2m1::decode_soft((q[i / 2] >> (4 * (i % 2))) & 0xfu) * sf;
  }
};

struct out_nvfp4 {
  static constexpr bool row_absmax = false;
  static constexpr int group = 16;
  static constexpr const char* name = "nvfp4";
  std::uint8_t* q;  // rows x hidden / 2
  std::uint8_t* scale;  // rows x hidden / 16, E4M3
  const float* global_scale;  // one f32 in device memory (host memory for reference())

  std::array<output_buffer, 3> buffers() const {
    return {{{q, 16, "the nvfp4 output"}, {scale, 1, "the nvfp4 scales"}, {global_scale, 4, "the nvfp4 global scale"}}};
  }

#if !QR_BACKEND_HOST
  QR_DEVICE QR_FORCEINLINE void store(std::size_t row, std::size_t hidden, std::size_t k, const float (&v)[8], bool active, float) const {
    std::uint32_t am = codec::absmax_bits8(v);
    const std::uint32_t other = device::shfl_xor(am, 1);  // the group's other lane
    am = other > am ? other : am;
    if (!active) return;
    const auto st = detail::nvfp4_make(am, *global_scale);
    const std::size_t i = row * hidden + k;
    *reinterpret_cast<std::uint32_t*>(q + i / 2) = detail::nvfp4_codes(v, st);
    if (i % 16 == 0) scale[i / 16] = std::uint8_t(st.scale);
  }
#endif

  void reference(const float* y, std::size_t hidden, std::size_t row) const {
    for (std::size_t g = 0; g < hidden; g += 16) {
      const auto st = detail::nvfp4_make(detail::absmax_bits(y + g, 16), *global_scale);
      for (std::size_t l = 0; l < 2; ++l) {
        float v[8];
        for (int j = 0; j < 8; ++j) v[j] = y[g + 8 * l + std::size_t(j)];
        const std::uint32_t w = detail::nvfp4_codes(v, st);
        for (int b = 0; b < 4; ++b) q[(row * hidden + g + 8 * l) / 2 + std::size_t(b)] = std::uint8_t(w >> (8 * b));
      }
      scale[(row * hidden + g) / 16] = std::uint8_t(st.scale);
    }
  }
  float dequantize(std::size_t row, std::size_t hidden, std::size_t k) const {
    const std::size_t i = row * hidden + k;
    const std::uint8_t sb = scale[i / 16];
    if ((sb & 0x7fu) == 0x7fu) return numeric::bits_float(detail::f32_nan);
    const float s = numeric::e4m3fn::decode_soft(sb);
    return numeric::e2m1::decode_soft((q[i / 2] >> (4 * (i % 2))) & 0xfu) * s / *global_scale;
  }
};

enum class norm_output_kind : std::uint8_t { native, fp8_per_token, mxfp4, nvfp4 };

template <class T>
struct any_output {
  norm_output_kind kind = norm_output_kind::native;
  T* y = nullptr;
  std::uint8_t* q = nullptr;
  void* scale = nullptr;
  const float* global_scale = nullptr;

  static any_output of(const out_native<T>& o) { return {norm_output_kind::native, o.y, nullptr, nullptr, nullptr}; }
  static any_output of(const out_fp8_per_token& o) { return {norm_output_kind::fp8_per_token, nullptr, o.q, o.scale, nullptr}; }
  static any_output of(const out_mxfp4& o) { return {norm_output_kind::mxfp4, nullptr, o.q, o.scale, nullptr}; }
  static any_output of(const out_nvfp4& o) { return {norm_output_kind::nvfp4, nullptr, o.q, o.scale, o.global_scale}; }

  // Calls f with the output it holds, as its own type, and returns what f returns. On the host: the
  // kernels specialised on the output (the fused RMSNorm's kernel of rows, algorithm::rows_kernel),
  // where one kernel for all costs registers. On the device: store() and row_absmax(); `kind` is the
  // same for the whole grid, so every thread of a block takes the same branch.
  QR_EXEC_CHECK_DISABLE
  template <class F>
  QR_HOST_DEVICE QR_FORCEINLINE decltype(auto) visit(F&& f) const {
    switch (kind) {
      case norm_output_kind::native: break;
      case norm_output_kind::fp8_per_token: return f(out_fp8_per_token{q, static_cast<float*>(scale)});
      case norm_output_kind::mxfp4: return f(out_mxfp4{q, static_cast<std::uint8_t*>(scale)});
      case norm_output_kind::nvfp4: return f(out_nvfp4{q, static_cast<std::uint8_t*>(scale), global_scale});
    }
    return f(out_native<T>{y});
  }
  // Calls f with std::type_identity of every output type visit() may pass.
  template <class F>
  static void visit_types(F&& f) {
    f(std::type_identity<out_native<T>>{});
    f(std::type_identity<out_fp8_per_token>{});
    f(std::type_identity<out_mxfp4>{});
    f(std::type_identity<out_nvfp4>{});
  }

  // Whether the output it holds needs the row's largest |y| (its row_absmax).
  QR_HOST_DEVICE QR_FORCEINLINE bool row_absmax() const {
    return visit([](const auto& o) { return std::remove_cvref_t<decltype(o)>::row_absmax; });
  }
#if !QR_BACKEND_HOST
  QR_DEVICE QR_FORCEINLINE void store(std::size_t row, std::size_t hidden, std::size_t k, const float (&v)[8], bool active, float row_absmax) const {
    visit([&](const auto& o) { o.store(row, hidden, k, v, active, row_absmax); });
  }
#endif
};

// Whether Out is an any_output (the output chosen at run time) rather than one output type.
template <class Out>
inline constexpr bool is_any_output = false;
template <class T>
inline constexpr bool is_any_output<any_output<T>> = true;

}  // namespace qreduce::epilogue
