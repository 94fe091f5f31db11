// qreduce/epilogue/rmsnorm.hpp: all-reduce fused with residual add and RMSNorm.
//
// Given each rank's partial x, the residual r and the weight g (rows x hidden, row-major):
//   r' = allreduce(x) + r          written to residual_out (may be r itself)
//   y  = r' / sqrt(mean(r'^2) + eps) * g    written to y (may be x itself)
// All in f32 inside, stored in the tensor's type. Phase 1 (inside the all-reduce's last step, per 8
// values) adds the residual to the f32 sum and stores r'. Then the rank's grid meets at a barrier,
// and each block normalizes whole rows: the sum of squares is a fixed-order block reduction over the
// stored r', so every rank computes the same y.
#pragma once
#include <cstddef>
#include "../algorithm/lanes.hpp"

namespace qreduce::epilogue {

template <class T>
struct residual_rmsnorm {
  static constexpr bool row_pass = true;
  const T* residual;
  T* residual_out;
  const T* weight;
  T* y;
  std::size_t hidden;  // a multiple of 8
  float eps;

#if !QR_BACKEND_HOST
  // Phase 1: r' = sum + r, values [i, i+8) of the n = rows * hidden.
  QR_DEVICE QR_FORCEINLINE void operator()(T*, std::size_t n, std::size_t i, const float (&v)[8]) const {
    float r[8];
    device::load8(residual, n, i, r);
    QR_UNROLL
    for (int j = 0; j < 8; ++j) r[j] += v[j];
    device::store8(residual_out, n, i, r);
  }

  // Phase 2, after the grid barrier: RMSNorm of whole rows.
  QR_DEVICE void rows(std::size_t n) const {
    const std::size_t nrows = n / hidden;
    for (std::size_t row = blockIdx.x; row < nrows; row += gridDim.x) {
      const T* rp = residual_out + row * hidden;
      float ss = 0.0f;
      for (std::size_t k = 8 * std::size_t(threadIdx.x); k < hidden; k += 8 * block_threads) {
        float x[8];
        device::load8(rp, hidden, k, x);
        QR_UNROLL
        for (int j = 0; j < 8; ++j) ss += x[j] * x[j];
      }
      ss = device::block_sum(ss);
      const float inv = 1.0f / sqrtf(ss / float(hidden) + eps);
      for (std::size_t k = 8 * std::size_t(threadIdx.x); k < hidden; k += 8 * block_threads) {
        float x[8], g[8];
        device::load8(rp, hidden, k, x);
        device::load8(weight, hidden, k, g);
        QR_UNROLL
        for (int j = 0; j < 8; ++j) x[j] = x[j] * inv * g[j];
        device::store8(y + row * hidden, hidden, k, x);
      }
    }
  }
#endif
};

}  // namespace qreduce::epilogue
