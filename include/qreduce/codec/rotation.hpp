// qreduce/codec/rotation.hpp: the Walsh-Hadamard rotation around a codec.
//
// With rotation on, a codec's groups go through a Walsh-Hadamard transform before encoding and its
// inverse after decoding. The transform spreads an outlier over its block of values, so the scale no
// longer has to stretch around it. It is linear: the all-reduce adds rotated values and undoes the
// rotation once, after the last decode.
//
// A codec rotates blocks of 8 * L values, L = 4 lanes (the whole group of 32) or L = 2 (each half of
// 16: int4m, whose scales are per half), `rotation_lanes<C>`. A lane's 8 values go through the 8-point
// transform h (butterflies of span 1, 2, 4), then come log2(L) steps across lanes, each between lane
// l and lane l ^ m (m = 1, then 2). Every lane runs the same step: it sends its positions 4-7 and
// pairs its own positions 0-3 with what it receives, so a step moves 4 values per lane and needs no
// select on which lane of the pair it is:
//
//   forward step   a = own[0..3], b = partner's [4..7]             -> [a + b, a - b]
//   inverse step   s = x[0..3] + x[4..7], d = x[0..3] - x[4..7]    -> [s, partner's d]
//
// A forward step maps (lane u, position j) and (lane u ^ m, position 4 + j) to their sum and
// difference: with the in-lane rows h_j and h_{4+j} = h_4 h_j (Sylvester's order), a row of the
// result is, up to its sign, a Walsh function of the 8 L points times one fixed sign pattern q on
// the inputs, so the forward transform is F = S P H D / (8 L): H the Hadamard matrix of order 8 L,
// D = diag(q), P the permutation the steps leave behind, S a diagonal of +-1 (the rows that come out
// negated); orthogonal up to the scale, every entry +-1 / (8 L), which is
// what spreads an outlier (tests/host checks F F^T = I / (8 L)). The 1 / (8 L) is applied first
// (exact but for subnormal results): every partial sum is then at most max |x|, so no input
// overflows (scaled last, bf16 inputs near 1e37 did). The inverse step gives each lane twice its own
// positions 0-3 (s) and receives twice its positions 4-7 (the partner's d); the inverse, its steps in
// reverse order and the 8-point transform, is exactly 8 L F^T = F^-1 in exact arithmetic, with no
// scaling. Every backend and the host reference run the same operations in the same order (the
// scaling by a product the compiler may not fuse), so rotated bytes are bitwise equal everywhere.
#pragma once
#include "codec.hpp"

namespace qreduce::codec {

// In-lane butterflies (spans 1, 2, 4) over 8 values; from span First on (the device's folded
// scaling does span 1 itself).
template <int First = 1>
QR_HOST_DEVICE QR_FORCEINLINE void hadamard8(float (&x)[8]) {
  QR_UNROLL
  for (int h = First; h < 8; h <<= 1) {
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

// One cross-lane step, in two halves around the exchange: what a lane sends its partner (its
// positions 4-7), then its new values from its own and the partner's four. The same on every lane.
QR_HOST_DEVICE QR_FORCEINLINE void forward_send(const float (&x)[8], float (&s)[4]) {
  QR_UNROLL
  for (int j = 0; j < 4; ++j) s[j] = x[4 + j];
}
QR_HOST_DEVICE QR_FORCEINLINE void forward_step(float (&x)[8], const float (&p)[4]) {
  QR_UNROLL
  for (int j = 0; j < 4; ++j) {
    const float a = x[j];
    x[j] = a + p[j];
    x[4 + j] = a - p[j];
  }
}
// inverse: each lane's sums s and differences d of its two halves; it keeps s and sends d, and the
// partner's d becomes its positions 4-7
QR_HOST_DEVICE QR_FORCEINLINE void inverse_send(float (&x)[8], float (&s)[4]) {
  QR_UNROLL
  for (int j = 0; j < 4; ++j) {
    const float sum = x[j] + x[4 + j], diff = x[j] - x[4 + j];
    x[j] = sum;
    s[j] = diff;
  }
}
QR_HOST_DEVICE QR_FORCEINLINE void inverse_step(float (&x)[8], const float (&p)[4]) {
  QR_UNROLL
  for (int j = 0; j < 4; ++j) x[4 + j] = p[j];
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
    for (int l = 0; l < lanes_per_group; ++l) forward_send(x[l], s[l]);
    for (int l = 0; l < lanes_per_group; ++l) forward_step(x[l], s[l ^ m]);
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
    for (int l = 0; l < lanes_per_group; ++l) inverse_send(x[l], s[l]);
    for (int l = 0; l < lanes_per_group; ++l) inverse_step(x[l], s[l ^ m]);
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

// (A codec may define its values after the inverse rotation itself, as decode_rotated_group_reference:
// int4m rotates its levels back, then scales them.)
template <codec_type C, class T>
void decode_rotated_group(const std::byte* payload, const std::byte* scale, float* values) {
  if constexpr (requires { C::decode_rotated_group_reference(payload, scale, values); }) {
    C::decode_rotated_group_reference(payload, scale, values);
  } else {
    decode_group<C, T>(payload, scale, values);
    rotate_group_inverse<rotation_lanes<C>>(values);
  }
}

}  // namespace qreduce::codec
