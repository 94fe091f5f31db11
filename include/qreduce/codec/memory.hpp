// qreduce/codec/memory.hpp: aligned word loads and stores for payloads.
// On a device these are single 4/8/16-byte accesses (the payload places are aligned by the tile
// layout); on the host they are memcpy, which is what the host reference needs.
#pragma once
#include <cstdint>
#include <cstring>
#include "../config.hpp"

namespace qreduce::codec::mem {

template <int Words>
QR_HOST_DEVICE QR_FORCEINLINE void store_words(std::byte* p, const std::uint32_t* w) {
#if QR_DEVICE_PASS
  if constexpr (Words == 1) {
    *reinterpret_cast<std::uint32_t*>(p) = w[0];
  } else if constexpr (Words == 2) {
    *reinterpret_cast<uint2*>(p) = make_uint2(w[0], w[1]);
  } else {
    static_assert(Words == 4);
    *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
  }
#else
  std::memcpy(p, w, 4 * Words);
#endif
}

template <int Words>
QR_HOST_DEVICE QR_FORCEINLINE void load_words(const std::byte* p, std::uint32_t* w) {
#if QR_DEVICE_PASS
  if constexpr (Words == 1) {
    w[0] = *reinterpret_cast<const std::uint32_t*>(p);
  } else if constexpr (Words == 2) {
    const uint2 v = *reinterpret_cast<const uint2*>(p);
    w[0] = v.x;
    w[1] = v.y;
  } else {
    static_assert(Words == 4);
    const uint4 v = *reinterpret_cast<const uint4*>(p);
    w[0] = v.x;
    w[1] = v.y;
    w[2] = v.z;
    w[3] = v.w;
  }
#else
  std::memcpy(w, p, 4 * Words);
#endif
}

template <class U>
QR_HOST_DEVICE QR_FORCEINLINE void store_small(std::byte* p, U v) {
#if QR_DEVICE_PASS
  *reinterpret_cast<U*>(p) = v;
#else
  std::memcpy(p, &v, sizeof(U));
#endif
}

template <class U>
QR_HOST_DEVICE QR_FORCEINLINE U load_small(const std::byte* p) {
#if QR_DEVICE_PASS
  return *reinterpret_cast<const U*>(p);
#else
  U v;
  std::memcpy(&v, p, sizeof(U));
  return v;
#endif
}

}  // namespace qreduce::codec::mem
