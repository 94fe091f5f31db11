// qreduce/epilogue/rmsnorm.hpp: all-reduce fused with residual add and RMSNorm.
//
// Given each rank's partial x, the residual r and the weight g (rows x hidden, row-major):
//   r' = allreduce(x) + r                        written to residual_out (may be r itself)
//   y  = (1 / sqrt(mean(r'^2) + eps)) * (r' * g)  handed to the output (outputs.hpp): the tensor's
//                                                 type, FP8 per token, MXFP4 or NVFP4
// All in f32 inside. Phase 1 adds the residual to the sum and stores r'; phase 2 normalizes whole
// rows, one block a row: the sum of squares is a fixed-order block reduction over the stored r', so
// every rank computes the same y. Where they run:
//   * the one-shot: phase 1 inside the all-reduce (the f32 sum, per 8 values), phase 2 in the same
//     blocks, each right after writing its rows whole;
//   * the two-shot with y in the tensor's type: the all-reduce writes its sums, rounded to T, into
//     y, and a kernel of rows (algorithm::rows_kernel, a block a row) runs both phases (`sum` set:
//     r' = round(sum) + r, rounded again, as an unfused all-reduce + add + RMSNorm computes it);
//   * the two-shot with a quantized y (no room for the sums there): phase 1 inside the all-reduce,
//     phase 2 in the kernel of rows.
#pragma once
#include <cstddef>
#include <type_traits>
#include "outputs.hpp"
#if !QR_BACKEND_HOST
#include "../device/tile.hpp"
#endif

namespace qreduce::epilogue {

// Out: any_output<T> (the output chosen at run time: the all-reduce kernels) or one output type of
// outputs.hpp (the kernel of rows, compiled for each: with_output()).
template <class T, class Out = any_output<T>>
struct residual_rmsnorm {
  static constexpr bool row_pass = true;
  static constexpr std::uint32_t call_id = 1;  // its number in a call's signature (algorithm/signature.hpp)
  const T* residual;
  T* residual_out;
  const T* weight;
  Out out;
  std::size_t hidden;  // a multiple of 8 and of the output's group
  float eps;
  const T* sum = nullptr;  // set: the all-reduce left its sums here (in T), and row() runs phase 1 too

  QR_HOST_DEVICE std::size_t row_values() const { return hidden; }

  // The same epilogue with its output as its own type (host side, from any_output::visit).
  template <class O>
  residual_rmsnorm<T, O> with_output(const O& o) const {
    return {residual, residual_out, weight, o, hidden, eps, sum};
  }

  // Calls f with this epilogue specialised on the output it holds (any_output::visit).
  template <class F>
  void visit_output(F&& f) const {
    if constexpr (std::is_same_v<Out, any_output<T>>) out.visit([&](const auto& o) { f(with_output(o)); });
    else f(*this);
  }
  // Calls f with std::type_identity of every epilogue visit_output() may pass.
  template <class F>
  static void visit_output_types(F&& f) {
    if constexpr (std::is_same_v<Out, any_output<T>>)
      Out::visit_types([&](auto otag) { f(std::type_identity<residual_rmsnorm<T, typename decltype(otag)::type>>{}); });
    else f(std::type_identity<residual_rmsnorm>{});
  }

#if !QR_BACKEND_HOST
  // Whether the output needs the row's largest |r' * g|.
  QR_DEVICE QR_FORCEINLINE bool needs_absmax() const {
    if constexpr (std::is_same_v<Out, any_output<T>>) return out.row_absmax();
    else return Out::row_absmax;
  }

  // Phase 1: r' = sum + r, values [i, i+8) of the n = rows * hidden.
  QR_DEVICE QR_FORCEINLINE void operator()(T*, std::size_t n, std::size_t i, const float (&v)[8]) const {
    float r[8];
    device::load8(residual, n, i, r);
    QR_UNROLL
    for (int j = 0; j < 8; ++j) r[j] += v[j];
    device::store8(residual_out, n, i, r);
  }

  // Phase 2 for one row, by the whole block (every thread calls it). Rows of up to
  // cached_rounds * 2048 values are read once into registers (all loads in flight together);
  // longer rows are read twice.
  static constexpr int cached_rounds = 8;

  QR_DEVICE QR_FORCEINLINE void row(std::size_t row) const {
    const std::size_t step = 8 * std::size_t(block_threads);
    if (sum == nullptr && hidden <= cached_rounds * step) row_cached(row);
    else row_streamed(row);
  }

  // The same, in a kernel of rows (algorithm::rows_kernel): streamed, r' read a second time from L2
  // instead of held in registers, so that many blocks share a multiprocessor (the register-cached
  // row took 117 registers: 2 blocks of 256 threads, and 1.8x the time of an unfused add + RMSNorm).
  QR_DEVICE QR_FORCEINLINE void row_alone(std::size_t row) const { row_streamed(row); }

  // r' at [k, k+8) of a row (pointers at the row's start): stored by phase 1 in the all-reduce, or
  // formed here from the sums (sum set) and stored, as the values stored read back.
  QR_DEVICE QR_FORCEINLINE void residual_of(const T* sp, const T* rp, T* wp, std::size_t k, float (&x)[8]) const {
    if (sum == nullptr) {
      device::load8(rp, hidden, k, x);
      return;
    }
    float r[8];
    device::load8(sp, hidden, k, x);
    device::load8(rp, hidden, k, r);
    QR_UNROLL
    for (int j = 0; j < 8; ++j) x[j] += r[j];
    const uint4 bits = device::pack8<T>(x);
    *reinterpret_cast<uint4*>(wp + k) = bits;  // hidden is a multiple of 8: never a partial vector
    device::unpack8<T>(bits, x);
  }

  // r' stored by phase 1 (sum unset), every round's loads issued before any is used.
  QR_DEVICE QR_FORCEINLINE void row_cached(std::size_t row) const {
    const T* rp = residual_out + row * hidden;
    const std::size_t step = 8 * std::size_t(block_threads), k0 = 8 * std::size_t(threadIdx.x);
    const bool need_absmax = needs_absmax();
    float x[cached_rounds][8];
    QR_UNROLL
    for (int i = 0; i < cached_rounds; ++i) {
      const std::size_t k = k0 + std::size_t(i) * step;
      if (k < hidden) {
        device::load8(rp, hidden, k, x[i]);
      } else {
        QR_UNROLL
        for (int j = 0; j < 8; ++j) x[i][j] = 0.0f;
      }
    }
    float ss = 0.0f;
    std::uint32_t am = 0u;  // largest |r' * g| as float bits, when the output needs the row's absmax
    QR_UNROLL
    for (int i = 0; i < cached_rounds; ++i) {
      QR_UNROLL
      for (int j = 0; j < 8; ++j) ss += x[i][j] * x[i][j];
      const std::size_t k = k0 + std::size_t(i) * step;
      if (need_absmax && k < hidden) {
        float g[8], p[8];
        device::load8(weight, hidden, k, g);
        QR_UNROLL
        for (int j = 0; j < 8; ++j) p[j] = x[i][j] * g[j];
        const std::uint32_t a = codec::absmax_bits8(p);
        am = a > am ? a : am;
      }
    }
    finish<cached_rounds>(row, ss, am, need_absmax, [&](int i, std::size_t, float(&y)[8]) {
      QR_UNROLL
      for (int j = 0; j < 8; ++j) y[j] = x[i][j];
    });
  }

  QR_DEVICE QR_FORCEINLINE void row_streamed(std::size_t row) const {
    const T* rp = residual_out + row * hidden;
    const T* sp = sum != nullptr ? sum + row * hidden : nullptr;
    T* wp = residual_out + row * hidden;
    const std::size_t step = 8 * std::size_t(block_threads);
    const bool need_absmax = needs_absmax();
    float ss = 0.0f;
    std::uint32_t am = 0u;
    for (std::size_t k = 8 * std::size_t(threadIdx.x); k < hidden; k += step) {
      float x[8];
      residual_of(sp, sum != nullptr ? residual + row * hidden : rp, wp, k, x);
      QR_UNROLL
      for (int j = 0; j < 8; ++j) ss += x[j] * x[j];
      if (need_absmax) {
        float g[8];
        device::load8(weight, hidden, k, g);
        QR_UNROLL
        for (int j = 0; j < 8; ++j) x[j] *= g[j];
        const std::uint32_t a = codec::absmax_bits8(x);
        am = a > am ? a : am;
      }
    }
    finish<0>(row, ss, am, need_absmax, [&](int, std::size_t k, float(&y)[8]) { device::load8(rp, hidden, k, y); });
  }

  // The reductions, then y = inv * (r' * g) handed to the output, round by round (every thread runs
  // every round: the output's group shuffles). value(i, k, y) yields r' at [k, k+8) of round i.
  // Rounds: a compile-time bound (register-cached rows), or 0 for as many as the row needs.
  template <int Rounds, class Value>
  QR_DEVICE QR_FORCEINLINE void finish(std::size_t row, float ss, std::uint32_t am, bool need_absmax, Value value) const {
    const std::size_t step = 8 * std::size_t(block_threads);
    ss = device::block_sum(ss);
    const float inv = 1.0f / sqrtf(ss / float(hidden) + eps);
    // inv > 0 and rounding is monotonic: max |inv * p| = inv * max |p|, bit for bit
    float row_absmax = 0.0f;
    if (need_absmax) row_absmax = inv * numeric::bits_float(device::block_max(am));
    const auto round = [&](int i) {
      const std::size_t k = std::size_t(i) * step + 8 * std::size_t(threadIdx.x);
      const bool active = k < hidden;
      float y[8] = {};
      if (active) {
        float g[8];
        value(i, k, y);
        device::load8(weight, hidden, k, g);
        QR_UNROLL
        for (int j = 0; j < 8; ++j) y[j] = inv * (y[j] * g[j]);
      }
      out.store(row, hidden, k, y, active, row_absmax);
    };
    if constexpr (Rounds > 0) {  // unrolled: the rounds index the register cache
      QR_UNROLL
      for (int i = 0; i < Rounds; ++i) {
        if (std::size_t(i) * step >= hidden) break;  // the same for every thread
        round(i);
      }
    } else {
      for (int i = 0; std::size_t(i) * step < hidden; ++i) round(i);
    }
  }

#endif
};

}  // namespace qreduce::epilogue
