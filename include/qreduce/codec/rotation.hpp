// qreduce/codec/rotation.hpp: the Walsh-Hadamard rotation around a codec.
//
// With rotation on, a codec's groups go through a Walsh-Hadamard transform before encoding and its
// inverse after decoding. The transform spreads an outlier over its block of values, so the scale no
// longer has to stretch around it. It is linear: the all-reduce adds rotated values and undoes the
// rotation once, after the last decode.
//
// A codec rotates blocks of 8 * L values, L = 4 lanes (the whole group of 32) or L = 2 (each half of
// 16: int4m, whose scales are per half), `rotation_lanes<C>`. A lane's 8 values go through the 8-point
// transform (butterflies of span 1, 2, 4), then come log2(L) steps across lanes, each between lane l
// and lane l ^ m (m = 1, then 2): the lower lane keeps the sums and differences of positions 0-3 of
// the pair, the upper lane those of positions 4-7, so a step moves 4 values per lane instead of 8:
//
//   forward step   lower: a = own[0..3], b = partner's [0..3] -> [a + b, a - b]
//                  upper: a = partner's [4..7], b = own[4..7]  -> [a + b, a - b]
//   inverse step   (the transpose) each lane forms s = x[0..3] + x[4..7], d = x[0..3] - x[4..7];
//                  lower -> [s, partner's s], upper -> [partner's d, d]
//
// The forward transform is F = P H / (8 L) (H the Hadamard matrix of order 8 L, P the permutation the
// steps leave behind), the 1 / (8 L) applied first (exact but for subnormal results): every partial
// sum is then at most max |x|, so no input overflows (scaled last, bf16 inputs near 1e37 did). The
// inverse, its steps in reverse order and the 8-point transform, is exactly H P^T = F^-1 in exact
// arithmetic, with no scaling. Every backend and the host reference run the same operations in the
// same order (the scaling by a product the compiler may not fuse), so rotated bytes are bitwise equal
// everywhere.
#pragma once
#include "codec.hpp"

namespace qreduce::codec {

// In-lane butterflies (spans 1, 2, 4) over 8 values.
QR_HOST_DEVICE QR_FORCEINLINE void hadamard8(float (&x)[8]) {
  QR_UNROLL
  for (int h = 1; h < 8; h <<= 1) {
    QR_UNROLL
    for (int i = 0; i < 8; ++i) {
      if ((i & h) == 0) {
        const float a = x[i], b = x[i + h];
        x[i] = a + b;
        x[i + h] = a - b;
      }
    }
  }
}

// The lanes a codec's rotation spans: 4 (the group) unless the codec says otherwise.
template <codec_type C>
inline constexpr int rotation_lanes = [] {
  if constexpr (requires { C::rotation_lanes; }) return int(C::rotation_lanes);
  else return lanes_per_group;
}();

// The forward transform's scaling, 1 / (8 L), and its product: rounded on its own on every backend
// (on a device, never fused into the addition that follows).
template <int Lanes>
inline constexpr float rotation_scale = 1.0f / float(8 * Lanes);

QR_HOST_DEVICE QR_FORCEINLINE float scale_rn(float x, float s) {
#if QR_DEVICE_PASS
  return __fmul_rn(x, s);
#else
  return x * s;
#endif
}

// One cross-lane step, in two halves around the exchange: what this lane sends its partner, then its
// new values from its own and the partner's four.
QR_HOST_DEVICE QR_FORCEINLINE void forward_send(const float (&x)[8], bool upper, float (&s)[4]) {
  QR_UNROLL
  for (int j = 0; j < 4; ++j) s[j] = upper ? x[j] : x[4 + j];
}
QR_HOST_DEVICE QR_FORCEINLINE void forward_step(float (&x)[8], const float (&p)[4], bool upper) {
  QR_UNROLL
  for (int j = 0; j < 4; ++j) {
    const float a = upper ? p[j] : x[j], b = upper ? x[4 + j] : p[j];
    x[j] = a + b;
    x[4 + j] = a - b;
  }
}
// inverse: each lane's sums s and differences d of its two halves; the lower lane keeps s and sends d,
// the upper keeps d and sends s
QR_HOST_DEVICE QR_FORCEINLINE void inverse_send(float (&x)[8], bool upper, float (&s)[4]) {
  QR_UNROLL
  for (int j = 0; j < 4; ++j) {
    const float sum = x[j] + x[4 + j], diff = x[j] - x[4 + j];
    x[j] = sum;
    x[4 + j] = diff;
    s[j] = upper ? sum : diff;
  }
}
QR_HOST_DEVICE QR_FORCEINLINE void inverse_step(float (&x)[8], const float (&p)[4], bool upper) {
  QR_UNROLL
  for (int j = 0; j < 4; ++j) {
    if (upper) x[j] = p[j];
    else x[4 + j] = p[j];
  }
}

// Host reference of the transforms of one group of 32 values, in place (lanes simulated in step).
template <int Lanes>
void rotate_group_forward(float* values) {
  float x[lanes_per_group][8];
  for (int l = 0; l < lanes_per_group; ++l) {
    for (int j = 0; j < 8; ++j) x[l][j] = scale_rn(values[l * 8 + j], rotation_scale<Lanes>);
    hadamard8(x[l]);
  }
  for (int m = 1; m < Lanes; m <<= 1) {
    float s[lanes_per_group][4];
    for (int l = 0; l < lanes_per_group; ++l) forward_send(x[l], (l & m) != 0, s[l]);
    for (int l = 0; l < lanes_per_group; ++l) forward_step(x[l], s[l ^ m], (l & m) != 0);
  }
  for (int l = 0; l < lanes_per_group; ++l)
    for (int j = 0; j < 8; ++j) values[l * 8 + j] = x[l][j];
}

template <int Lanes>
void rotate_group_inverse(float* values) {
  float x[lanes_per_group][8];
  for (int l = 0; l < lanes_per_group; ++l)
    for (int j = 0; j < 8; ++j) x[l][j] = values[l * 8 + j];
  for (int m = Lanes / 2; m >= 1; m >>= 1) {
    float s[lanes_per_group][4];
    for (int l = 0; l < lanes_per_group; ++l) inverse_send(x[l], (l & m) != 0, s[l]);
    for (int l = 0; l < lanes_per_group; ++l) inverse_step(x[l], s[l ^ m], (l & m) != 0);
  }
  for (int l = 0; l < lanes_per_group; ++l) {
    hadamard8(x[l]);
    for (int j = 0; j < 8; ++j) values[l * 8 + j] = x[l][j];
  }
}

// Codec C's rotation of one group (host reference).
template <codec_type C>
void rotate_group(float* values) {
  rotate_group_forward<rotation_lanes<C>>(values);
}

// Host reference of a rotated encode: rotate the group, then C's own encode; and the decode back.
template <codec_type C, class T>
void encode_rotated_group(const float* values, std::byte* payload, std::byte* scale) {
  float x[group_size];
  for (int i = 0; i < group_size; ++i) x[i] = values[i];
  rotate_group<C>(x);
  encode_group<C, T>(x, payload, scale);
}

template <codec_type C, class T>
void decode_rotated_group(const std::byte* payload, const std::byte* scale, float* values) {
  decode_group<C, T>(payload, scale, values);
  rotate_group_inverse<rotation_lanes<C>>(values);
}

}  // namespace qreduce::codec
