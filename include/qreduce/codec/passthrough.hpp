// qreduce/codec/passthrough.hpp: no quantization. The wire carries the tensor's own 16-bit values
// (fp16 stays fp16, bf16 stays bf16: nothing is cast); sums are rounded once to the tensor type.
#pragma once
#include <cstdint>
#include "codec.hpp"
#include "memory.hpp"

namespace qreduce::codec {

struct passthrough {
  struct state {};
  using lane_payload = lane_words<4>;
  static constexpr const char* name = "none";
  static constexpr int payload_bytes = 64;
  static constexpr int scale_bytes = 0;
  static constexpr bool needs_absmax = false;

  QR_HOST_DEVICE static QR_FORCEINLINE state make_state(std::uint32_t) { return {}; }

  template <class T>
  QR_HOST_DEVICE static QR_FORCEINLINE lane_payload encode_lane(const float (&x)[8], const state&) {
    lane_payload p;
    numeric::from_float8<T>(x, p.w);
    return p;
  }
  template <class T>
  QR_HOST_DEVICE static QR_FORCEINLINE void decode_lane(const lane_payload& p, const state&, float (&y)[8]) {
    QR_UNROLL
    for (int j = 0; j < 4; ++j) {
      y[2 * j] = numeric::to_float(T{std::uint16_t(p.w[j] & 0xffffu)});
      y[2 * j + 1] = numeric::to_float(T{std::uint16_t(p.w[j] >> 16)});
    }
  }
  QR_HOST_DEVICE static QR_FORCEINLINE void store_lane(std::byte* g, int lane, const lane_payload& p) { mem::store_words<4>(g + 16 * lane, p.w); }
  QR_HOST_DEVICE static QR_FORCEINLINE lane_payload load_lane(const std::byte* g, int lane) {
    lane_payload p;
    mem::load_words<4>(g + 16 * lane, p.w);
    return p;
  }
  QR_HOST_DEVICE static QR_FORCEINLINE void store_scale(std::byte*, const state&) {}
  QR_HOST_DEVICE static QR_FORCEINLINE state load_scale(const std::byte*, int) { return {}; }
};

}  // namespace qreduce::codec
