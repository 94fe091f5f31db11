// qreduce/epilogue/identity.hpp: the plain all-reduce epilogue: write the sums as the tensor's type.
//
// An epilogue is called by the algorithms with 8 consecutive reduced values (f32) at index i of the
// output; it decides what is written. Row-wise epilogues (residual + RMSNorm) have their own kernel:
// see epilogue/rmsnorm.hpp.
#pragma once
#include <cstddef>
#include <cstdint>
#include "../device/tile.hpp"

namespace qreduce::epilogue {

struct identity {
  static constexpr std::uint32_t call_id = 0;  // its number in a call's signature (algorithm/signature.hpp)
#if !QR_BACKEND_HOST
  template <class T>
  QR_DEVICE QR_FORCEINLINE void operator()(T* out, std::size_t n, std::size_t i, const float (&v)[8]) const {
    device::store8(out, n, i, v);
  }
  // Values a codec decoded straight to T (device::decode_code_rounded): stored as they are.
  template <class T>
  QR_DEVICE QR_FORCEINLINE void store_rounded(T* out, std::size_t n, std::size_t i, const uint4& v) const {
    device::store8_bits(out, n, i, v);
  }
#endif
};

}  // namespace qreduce::epilogue
