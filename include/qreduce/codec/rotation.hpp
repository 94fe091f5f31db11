// qreduce/codec/rotation.hpp: the Walsh-Hadamard rotation adapter.
//
// With rotation on, a codec's input groups go through a 32-point Walsh-Hadamard transform to before encoding, and the inverse
// after decoding (a run-time switch of the algorithms, and these host reference functions). The transform spreads one outlier over the whole group, so the scale
// no longer has to stretch around it. Forward: y = H x / 32 (never larger than max|x|, so no input
// overflows); inverse: x = H y. Both are exact power-of-two scalings of additions, done in the same
// order everywhere: butterflies of span 1, 2, 4 inside a lane's 8 values, then 8 and 16 across the
// group's 4 lanes. The transform is linear, so the all-reduce adds rotated values and undoes the
// rotation once, after the last decode.
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

// One cross-lane butterfly step: this lane holds the lower (add) or upper (subtract) half.
QR_HOST_DEVICE QR_FORCEINLINE float butterfly(float mine, float partner, bool upper) {
  return upper ? partner - mine : mine + partner;
}

// Host reference of the whole 32-point transform on a group held as 4 lanes x 8 values.
inline void hadamard32_host(float (&x)[lanes_per_group][8], float post_scale) {
  for (int l = 0; l < lanes_per_group; ++l) hadamard8(x[l]);
  for (int span = 1; span < lanes_per_group; span <<= 1) {
    float y[lanes_per_group][8];
    for (int l = 0; l < lanes_per_group; ++l)
      for (int j = 0; j < 8; ++j) y[l][j] = butterfly(x[l][j], x[l ^ span][j], (l & span) != 0);
    for (int l = 0; l < lanes_per_group; ++l)
      for (int j = 0; j < 8; ++j) x[l][j] = y[l][j] * (span == lanes_per_group / 2 ? post_scale : 1.0f);
  }
}

inline constexpr float rotation_forward_scale = 1.0f / 32.0f;

// Host reference of the forward rotation of one group of 32 values, in place.
inline void rotate_group(float* values) {
  float x[lanes_per_group][8];
  for (int l = 0; l < lanes_per_group; ++l)
    for (int j = 0; j < 8; ++j) x[l][j] = values[l * 8 + j];
  hadamard32_host(x, rotation_forward_scale);
  for (int l = 0; l < lanes_per_group; ++l)
    for (int j = 0; j < 8; ++j) values[l * 8 + j] = x[l][j];
}

// Host reference of a rotated encode: rotate the group, then C's own encode.
template <codec_type C, class T>
void encode_rotated_group(const float* values, std::byte* payload, std::byte* scale) {
  float x[group_size];
  for (int i = 0; i < group_size; ++i) x[i] = values[i];
  rotate_group(x);
  encode_group<C, T>(x, payload, scale);
}

template <codec_type C, class T>
void decode_rotated_group(const std::byte* payload, const std::byte* scale, float* values) {
  float x[lanes_per_group][8];
  decode_group<C, T>(payload, scale, &x[0][0]);
  hadamard32_host(x, 1.0f);
  for (int l = 0; l < lanes_per_group; ++l)
    for (int j = 0; j < 8; ++j) values[l * 8 + j] = x[l][j];
}

}  // namespace qreduce::codec
