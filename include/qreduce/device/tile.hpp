// qreduce/device/tile.hpp: the block-level tile API every algorithm, epilogue and user kernel uses:
// load/store 8 tensor values per thread, rotate a group across its lanes, encode a lane into a
// codec tile and decode it back, and fixed-order block reductions.
//
// A codec tile is handled by 256 threads: thread t owns values [8t, 8t+8) of the tile, and the group
// of 32 values is lanes 4*(t/4) .. 4*(t/4)+3. All threads of a block call these functions together
// (the group exchanges use lane shuffles): out-of-range values are zeros, never skipped threads.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include "../codec/codec.hpp"
#include "../codec/rotation.hpp"
#include "../transport/workspace.hpp"
#include "intrinsics.hpp"
#if QR_WAVE_REDUCE_CUB
#include <cub/warp/warp_reduce.cuh>
#elif QR_WAVE_REDUCE_ROCPRIM
#include <rocprim/warp/warp_reduce.hpp>
#endif

#if !QR_BACKEND_HOST
namespace qreduce::device {

template <class T>
QR_DEVICE QR_FORCEINLINE void unpack8(const uint4& v, float (&x)[8]) {
  const std::uint32_t w[4] = {v.x, v.y, v.z, v.w};
  QR_UNROLL
  for (int j = 0; j < 4; ++j) {
    x[2 * j] = numeric::to_float(T{std::uint16_t(w[j] & 0xffffu)});
    x[2 * j + 1] = numeric::to_float(T{std::uint16_t(w[j] >> 16)});
  }
}

template <class T>
QR_DEVICE QR_FORCEINLINE uint4 pack8(const float (&x)[8]) {
  std::uint32_t w[4];
  numeric::from_float8<T>(x, w);
  return make_uint4(w[0], w[1], w[2], w[3]);
}

// The bits of values [i, i+8) of a tensor of n 16-bit values (i a multiple of 8, the tensor 16-byte
// aligned); zeros past n.
template <class T>
QR_DEVICE QR_FORCEINLINE uint4 load8_bits(const T* in, std::size_t n, std::size_t i) {
  if (i + 8 <= n) return *reinterpret_cast<const uint4*>(in + i);
  std::uint32_t w[4] = {};
  for (int j = 0; j < 8; ++j)
    if (i + j < n) w[j / 2] |= std::uint32_t(in[i + j].bits) << (16 * (j % 2));
  return make_uint4(w[0], w[1], w[2], w[3]);
}

// The same for a tile known to lie inside the tensor where `inside` (the same on every thread of
// the block): one uniform branch instead of each load's 64-bit bound test.
template <class T>
QR_DEVICE QR_FORCEINLINE uint4 load8_bits(const T* in, std::size_t n, std::size_t i, bool inside) {
  if (inside) return *reinterpret_cast<const uint4*>(in + i);
  return load8_bits(in, n, i);
}

// Values [i, i+8) of a tensor of n values, as f32; zeros past n.
template <class T>
QR_DEVICE QR_FORCEINLINE void load8(const T* in, std::size_t n, std::size_t i, float (&x)[8]) {
  unpack8<T>(load8_bits(in, n, i), x);
}

// Values [i, i+8) already rounded to T (four pairs, value i + 2j in the low half of word j); those
// past n are not written.
template <class T>
QR_DEVICE QR_FORCEINLINE void store8_bits(T* out, std::size_t n, std::size_t i, const uint4& v) {
  if (i + 8 <= n) {
    *reinterpret_cast<uint4*>(out + i) = v;
  } else {
    const std::uint32_t w[4] = {v.x, v.y, v.z, v.w};
    for (int j = 0; j < 8; ++j)
      if (i + j < n) out[i + j] = T{std::uint16_t(w[j / 2] >> (16 * (j % 2)))};
  }
}

template <class T>
QR_DEVICE QR_FORCEINLINE void store8(T* out, std::size_t n, std::size_t i, const float (&x)[8]) {
  if (i + 8 <= n) {
    *reinterpret_cast<uint4*>(out + i) = pack8<T>(x);
  } else {
    QR_UNROLL
    for (int j = 0; j < 8; ++j)
      if (i + j < n) out[i + j] = numeric::from_float<T>(x[j]);
  }
}

// The rotation of codec/rotation.hpp on the lanes of a group: same operations, same order; 4 values
// cross lanes per step, the same code on every lane. Loaded: the values come from a 16-bit tensor
// (unpack8), whose every value times 1 / (8 L) is exact, so that the scaling folds into the first
// butterflies: x s + y s and x s - y s are fma(x, s, +-(y s)), the product exact, rounded once as the
// sum of the two rounded products is (the same bits; 4 multiplies fewer). Otherwise each value is
// scaled first, as the host reference does (a float below 2^-121 may lose bits to its scaling).
// Both keep subnormals, as the library's builds do: under flush-to-zero (-ftz=true, fast math) bf16
// values below about 2^-121 would round differently in the two forms.
template <int Lanes, bool Loaded = false>
QR_DEVICE QR_FORCEINLINE void rotate_forward(float (&x)[8]) {
  constexpr float scale = codec::rotation_scale<Lanes>;
  if constexpr (Loaded) {
    QR_UNROLL
    for (int p = 0; p < 4; ++p) {
      const float a = x[2 * p], b = codec::scale_rn(x[2 * p + 1], scale);
      x[2 * p] = fmaf(a, scale, b);
      x[2 * p + 1] = fmaf(a, scale, -b);
    }
    codec::hadamard8<2>(x);
  } else {
    QR_UNROLL
    for (int j = 0; j < 8; ++j) x[j] = codec::scale_rn(x[j], scale);
    codec::hadamard8(x);
  }
  QR_UNROLL
  for (int m = 1; m < Lanes; m <<= 1) {
    float s[4], p[4];
    codec::forward_send(x, s);
    QR_UNROLL
    for (int j = 0; j < 4; ++j) p[j] = shfl_xor(s[j], m);
    codec::forward_step(x, p);
  }
}

template <int Lanes>
QR_DEVICE QR_FORCEINLINE void rotate_inverse(float (&x)[8]) {
  QR_UNROLL
  for (int m = Lanes / 2; m >= 1; m >>= 1) {
    float s[4], p[4];
    codec::inverse_send(x, s);
    QR_UNROLL
    for (int j = 0; j < 4; ++j) p[j] = shfl_xor(s[j], m);
    codec::inverse_step(x, p);
  }
  codec::hadamard8(x);
}

// Codec C's rotation and its inverse, for a thread's 8 values of a tile (all lanes of its group
// call it together).
template <codec::codec_type C>
QR_DEVICE QR_FORCEINLINE void rotate(float (&x)[8]) {
  rotate_forward<codec::rotation_lanes<C>>(x);
}
// The same for values loaded from a 16-bit tensor (load8, unpack8): the same bits, fewer instructions.
template <codec::codec_type C>
QR_DEVICE QR_FORCEINLINE void rotate_loaded(float (&x)[8]) {
  rotate_forward<codec::rotation_lanes<C>, true>(x);
}
template <codec::codec_type C>
QR_DEVICE QR_FORCEINLINE void unrotate(float (&x)[8]) {
  rotate_inverse<codec::rotation_lanes<C>>(x);
}

// One lane's encoded share of a group: the payload and the group's state (scale).
template <codec::codec_type C>
struct lane_code {
  typename C::lane_payload payload;
  typename C::state state;
};

// What a codec's lane sees of the other lanes of its group: exchange(v, mask) is lane (lane ^ mask)'s v.
struct lane_exchange {
  template <class V>
  QR_DEVICE QR_FORCEINLINE V operator()(V v, int mask) const {
    return shfl_xor(v, mask);
  }
};

template <codec::codec_type C, class T>
QR_DEVICE QR_FORCEINLINE lane_code<C> encode_lane(const float (&x)[8]) {
  lane_code<C> c;
  if constexpr (codec::exchange_codec<C>) {
    c.payload = C::template encode_lane_exchange<T>(x, int(threadIdx.x) % codec::lanes_per_group, c.state, lane_exchange{});
  } else {
    std::uint32_t am = 0u;
    if constexpr (C::needs_absmax) {
      am = codec::absmax_bits8(x);
      const std::uint32_t a1 = shfl_xor(am, 1);
      am = a1 > am ? a1 : am;
      const std::uint32_t a2 = shfl_xor(am, 2);
      am = a2 > am ? a2 : am;
    }
    c.state = C::make_state(am);
    c.payload = C::template encode_lane<T>(x, c.state);
  }
  return c;
}

// A tile's bytes: the groups' payloads, then (from tile_payload_bytes on) the groups' scales.
template <codec::codec_type C>
inline constexpr int tile_payload_bytes = codec::tile_groups* C::payload_bytes;
template <codec::codec_type C>
inline constexpr int tile_scale_bytes = codec::tile_groups* C::scale_bytes;

// Store thread t's payload into a tile (t in [0, 256)).
template <codec::codec_type C>
QR_DEVICE QR_FORCEINLINE void store_payload(std::byte* tile, int t, const lane_code<C>& c) {
  C::store_lane(tile + t / codec::lanes_per_group * C::payload_bytes, t % codec::lanes_per_group, c.payload);
}

// Store the scale of thread t's group into a tile's scales (`scales`: tile_scale_bytes bytes, in the
// tile or anywhere else); lane 0 of each group stores it.
template <codec::codec_type C>
QR_DEVICE QR_FORCEINLINE void store_scale(std::byte* scales, int t, const lane_code<C>& c) {
  if constexpr (C::scale_bytes > 0)
    if (t % codec::lanes_per_group == 0) C::store_scale(scales + t / codec::lanes_per_group * C::scale_bytes, c.state);
}

// Store thread t's share into a tile (t in [0, 256)): its payload, and its group's scale.
template <codec::codec_type C>
QR_DEVICE QR_FORCEINLINE void store_lane(std::byte* tile, int t, const lane_code<C>& c) {
  store_payload<C>(tile, t, c);
  store_scale<C>(tile + tile_payload_bytes<C>, t, c);
}

// Thread t's share of a tile as loaded (payload and its group's scale), not yet decoded: loading
// several of these before decoding any keeps several loads in flight per thread. Its offsets in
// unsigned arithmetic: as int, every load sign-extended them to 64 bits, and the two-shot's
// 40-register (4-rank) kernels spilled (ptxas -v; the 2-rank INT4M reduce step 315 -> 303 SASS
// instructions a tile).
template <codec::codec_type C, class T>
QR_DEVICE QR_FORCEINLINE lane_code<C> load_code(const std::byte* tile, int t) {
  const unsigned g = unsigned(t) / codec::lanes_per_group, l = unsigned(t) % codec::lanes_per_group;
  return {C::load_lane(tile + g * C::payload_bytes, int(l)),
          C::load_scale(tile + codec::tile_groups * C::payload_bytes + g * C::scale_bytes, int(l))};
}

// The code as a reader of the stored tile gets it: the payload as it is, the state as load_scale
// rebuilds it from the stored scale (encode's state may carry more, e.g. the reciprocal it scaled
// by; a codec whose encode leaves load_scale's state says so: state_is_stored). Decoding this gives,
// bit for bit, what a peer decodes from the bytes store_lane wrote.
template <codec::codec_type C>
QR_DEVICE QR_FORCEINLINE lane_code<C> as_stored(const lane_code<C>& c, int t) {
  if constexpr (requires { requires C::state_is_stored; }) {
    return c;
  } else if constexpr (C::scale_bytes > 0) {
    alignas(4) std::byte s[C::scale_bytes < 4 ? 4 : C::scale_bytes];
    C::store_scale(s, c.state);
    return {c.payload, C::load_scale(s, t % codec::lanes_per_group)};
  } else {
    return c;
  }
}

template <codec::codec_type C, class T>
QR_DEVICE QR_FORCEINLINE void decode_code(const lane_code<C>& c, float (&y)[8]) {
  C::template decode_lane<T>(c.payload, c.state, y);
}

// acc[j] + decoded value j for a thread's 8 values, each rounded once as decode_code then an add
// rounds it: by the codec's accumulate_lane where it has one (a fused multiply-add a value).
template <codec::codec_type C, class T>
QR_DEVICE QR_FORCEINLINE void accumulate_code(const lane_code<C>& c, float (&acc)[8]) {
  if constexpr (requires { C::template accumulate_lane<T>(c.payload, c.state, acc); }) {
    C::template accumulate_lane<T>(c.payload, c.state, acc);
  } else {
    float y[8];
    decode_code<C, T>(c, y);
    QR_UNROLL
    for (int j = 0; j < 8; ++j) acc[j] += y[j];
  }
}

// Whether codec C decodes straight to T's bits (decode_code_rounded): bf16 from the E2M1 and INT4
// codecs on NVIDIA sm_90 and later (scaled_codec::decode_lane_bf16).
template <codec::codec_type C, class T>
inline constexpr bool decodes_rounded = std::is_same_v<T, bf16>&& requires(const lane_code<C>& c, std::uint32_t (&w)[4]) {
  C::decode_lane_bf16(c.payload, c.state, w);
};

// decode_code's values rounded to T as from_float8 rounds them, bit for bit, without the f32 values.
template <codec::codec_type C, class T>
requires decodes_rounded<C, T> QR_DEVICE QR_FORCEINLINE uint4 decode_code_rounded(const lane_code<C>& c) {
  std::uint32_t w[4];
  C::decode_lane_bf16(c.payload, c.state, w);
  return make_uint4(w[0], w[1], w[2], w[3]);
}

// A thread's 8 values of a rotated tile, decoded and rotated back (every lane of the group calls it):
// codec::decode_rotated_group's values. By the codec's decode_rotated_lane where it has one (int4m:
// its levels rotated back, then scaled), else decode_code, then unrotate.
template <codec::codec_type C, class T>
QR_DEVICE QR_FORCEINLINE void decode_unrotate(const lane_code<C>& c, float (&y)[8]) {
  if constexpr (requires { C::template decode_rotated_lane<T>(c.payload, c.state, lane_exchange{}, y); }) {
    C::template decode_rotated_lane<T>(c.payload, c.state, lane_exchange{}, y);
  } else {
    decode_code<C, T>(c, y);
    unrotate<C>(y);
  }
}

// Whether codec C decodes a rotated tile straight to T's bits (decode_unrotate_rounded): bf16 from
// int4m on NVIDIA sm_90 and later (int4m::decode_rotated_lane_bf16).
template <codec::codec_type C, class T>
inline constexpr bool decodes_unrotated_rounded = std::is_same_v<T, bf16>&& requires(const lane_code<C>& c, std::uint32_t (&w)[4]) {
  C::decode_rotated_lane_bf16(c.payload, c.state, lane_exchange{}, w);
};

// decode_unrotate's values rounded to T as from_float8 rounds them, bit for bit.
template <codec::codec_type C, class T>
requires decodes_unrotated_rounded<C, T> QR_DEVICE QR_FORCEINLINE uint4 decode_unrotate_rounded(const lane_code<C>& c) {
  std::uint32_t w[4];
  C::decode_rotated_lane_bf16(c.payload, c.state, lane_exchange{}, w);
  return make_uint4(w[0], w[1], w[2], w[3]);
}

template <codec::codec_type C, class T>
QR_DEVICE QR_FORCEINLINE void decode_lane(const std::byte* tile, int t, float (&y)[8]) {
  decode_code<C, T>(load_code<C, T>(tile, t), y);
}

// Reduction of one value per thread over a block of Threads threads in a fixed order (the same
// result on every rank): each wave's values by CUB's or rocPRIM's wave reduction where it compiles
// (config.hpp), else a butterfly of lane exchanges, then the waves' results in wave order.
template <int Threads, class V, class Op>
QR_DEVICE inline V block_reduce(V v, Op op) {
  static_assert(Threads % QR_WAVE_SIZE == 0, "a block of whole waves");
  constexpr int waves = Threads / QR_WAVE_SIZE;
  __shared__ V part[waves];
  const int w = int(threadIdx.x) / QR_WAVE_SIZE;
#if QR_WAVE_REDUCE_CUB
  using wave_reduce = cub::WarpReduce<V>;
  __shared__ typename wave_reduce::TempStorage scratch[waves];
  v = wave_reduce(scratch[w]).Reduce(v, op);  // lane 0's is the wave's
#elif QR_WAVE_REDUCE_ROCPRIM
  using wave_reduce = rocprim::warp_reduce<V, QR_WAVE_SIZE>;
  __shared__ typename wave_reduce::storage_type scratch[waves];
  wave_reduce().reduce(v, v, scratch[w], op);  // lane 0's is the wave's
#else
  QR_UNROLL
  for (int m = QR_WAVE_SIZE / 2; m > 0; m >>= 1) v = op(v, shfl_xor(v, m));
#endif
  if (int(threadIdx.x) % QR_WAVE_SIZE == 0) part[w] = v;
  block_sync();
  V s = part[0];
  QR_UNROLL
  for (int i = 1; i < waves; ++i) s = op(s, part[i]);
  block_sync();
  return s;
}

template <int Threads = block_threads>
QR_DEVICE inline float block_sum(float v) {
  return block_reduce<Threads>(v, [](float a, float b) { return a + b; });
}

template <int Threads = block_threads>
QR_DEVICE inline std::uint32_t block_max(std::uint32_t v) {
  return block_reduce<Threads>(v, [](std::uint32_t a, std::uint32_t b) { return a > b ? a : b; });
}

}  // namespace qreduce::device
#endif
