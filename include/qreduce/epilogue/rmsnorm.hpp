// qreduce/epilogue/rmsnorm.hpp: all-reduce fused with residual add and RMSNorm.
//
// Given each rank's partial x, the residual r and the weight g (rows x hidden, row-major):
//   r' = allreduce(x) + r                        written to residual_out (may be r itself)
//   y  = (1 / sqrt(mean(r'^2) + eps)) * (r' * g)  handed to the output (outputs.hpp): the tensor's
//                                                 type, FP8 per token, MXFP4 or NVFP4
// All in f32 inside. Phase 1 adds the residual to the sum and stores r'; phase 2 normalizes whole
// rows, one block a row: the sum of squares is a fixed-order block reduction, so every rank computes
// the same y. Where the one-shot runs and a row fits a block (algorithm::one_shot_rows_fit: rows of
// at most 8192 values, at most 4 a block, 2 and 4 ranks), both phases run in the one-shot's own
// kernel, each row in registers from the sums to y (algorithm::one_shot_rmsnorm_kernel,
// load_row_inputs / finish_row).
// Elsewhere phase 2 runs in a kernel of rows after the all-reduce (algorithm::rows_kernel, launched
// to overlap the all-reduce's end) over the stored r', and phase 1 runs
//   * inside the all-reduce (the f32 sum, per 8 values; r' rounded once) with a quantized y (no
//     room for the sums there), one-shot or two-shot;
//   * in the kernel of rows with y in the tensor's type: the all-reduce writes its sums, rounded to
//     T, into y (`sum` set: r' = round(sum) + r, rounded again, as an unfused all-reduce + add +
//     RMSNorm computes it), so that no residual load sits in the all-reduce.
#pragma once
#include <cstddef>
#include <type_traits>
#include "outputs.hpp"
#if !QR_BACKEND_HOST
#include "../device/tile.hpp"
#endif

namespace qreduce::epilogue {

// Out: any_output<T> (the output chosen at run time: the all-reduce kernels) or one output type of
// outputs.hpp (the kernel of rows and the fused one-shot, compiled for each: with_output()).
template <class T, class Out = any_output<T>>
struct residual_rmsnorm {
  static constexpr bool row_pass = true;
  static constexpr std::uint32_t call_id = 1;  // its number in a call's signature (algorithm/signature.hpp)
  using output = Out;
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
    if constexpr (is_any_output<Out>) out.visit([&](const auto& o) { f(with_output(o)); });
    else f(*this);
  }
  // Calls f with std::type_identity of every epilogue visit_output() may pass.
  template <class F>
  static void visit_output_types(F&& f) {
    if constexpr (is_any_output<Out>)
      Out::visit_types([&](auto otag) { f(std::type_identity<residual_rmsnorm<T, typename decltype(otag)::type>>{}); });
    else f(std::type_identity<residual_rmsnorm>{});
  }

#if !QR_BACKEND_HOST
  // Whether the output needs the row's largest |r' * g|.
  QR_DEVICE QR_FORCEINLINE bool needs_absmax() const {
    if constexpr (is_any_output<Out>) return out.row_absmax();
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

  // r' at [k, k+8) of a row (pointers at the row's start): stored by phase 1 in the all-reduce, or
  // formed here from the sums (sum set) and stored, as the values stored read back.
  QR_DEVICE QR_FORCEINLINE void residual_of(const T* sp, const T* rp, T* wp, std::size_t k, float (&x)[8]) const {
    if (sum == nullptr) {
      device::load8(rp, hidden, k, x);
      return;
    }
    device::load8(sp, hidden, k, x);
    add_residual(x, device::load8_bits(rp, hidden, k), wp + k);
  }

  // x = x + r rounded to T, stored at dst (a whole vector: hidden is a multiple of 8), and read back
  // as stored.
  QR_DEVICE QR_FORCEINLINE static void add_residual(float (&x)[8], const uint4& r_bits, T* dst) {
    float r[8];
    device::unpack8<T>(r_bits, r);
    QR_UNROLL
    for (int j = 0; j < 8; ++j) x[j] += r[j];
    const uint4 bits = device::pack8<T>(x);
    *reinterpret_cast<uint4*>(dst) = bits;
    device::unpack8<T>(bits, x);
  }

  // 1 / rms of the row and, where the output needs it, the row's largest |y|, from this thread's sum
  // of squares and largest |r' * g| (a block of Threads threads): inv > 0 and rounding is monotonic,
  // so max |inv * p| = inv * max |p|, bit for bit.
  struct row_scale {
    float inv, absmax;
  };
  template <int Threads = block_threads>
  QR_DEVICE QR_FORCEINLINE row_scale scale_of(float ss, std::uint32_t am, bool need_absmax) const {
    const float inv = 1.0f / sqrtf(device::block_sum<Threads>(ss) / float(hidden) + eps);
    return {inv, need_absmax ? inv * numeric::bits_float(device::block_max<Threads>(am)) : 0.0f};
  }

  // Phase 2 for one row, by the whole block (every thread calls it; algorithm::rows_kernel): r' read
  // once for the sums and again, from L2, for y, instead of held in registers, so that many blocks
  // share a multiprocessor (a register-cached row took 117 registers: 2 blocks of 256 threads, and
  // 1.8x the time of an unfused add + RMSNorm).
  QR_DEVICE QR_FORCEINLINE void row(std::size_t row) const {
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
    finish(row, ss, am, need_absmax);
  }

  // row() with B vectors of 8 values a thread loaded before any is used, in each pass: the stores of
  // one vector cannot be moved above the next one's loads, which may alias them, so row() has one
  // load in flight a thread at a time. It costs registers (106-118 a thread at B = 4, against 32) and
  // pays where rows are few (algorithm::rows_kernel_batched_rows).
  template <int B>
  QR_DEVICE QR_FORCEINLINE void batched_row(std::size_t row) const {
    const T* rp = residual + row * hidden;
    const T* sp = sum != nullptr ? sum + row * hidden : nullptr;
    T* wp = residual_out + row * hidden;
    const std::size_t step = 8 * std::size_t(block_threads);
    const bool need_absmax = needs_absmax();
    float ss = 0.0f;
    std::uint32_t am = 0u;
    for (std::size_t k0 = 8 * std::size_t(threadIdx.x); k0 < hidden; k0 += B * step) {
      uint4 a[B], c[B];  // the sums (with sum set) and r, or r' alone
      QR_UNROLL
      for (int v = 0; v < B; ++v) {
        const std::size_t k = k0 + v * step;
        if (k >= hidden) continue;
        if (sum != nullptr) {
          a[v] = *reinterpret_cast<const uint4*>(sp + k);
          c[v] = *reinterpret_cast<const uint4*>(rp + k);
        } else {
          a[v] = *reinterpret_cast<const uint4*>(wp + k);
        }
      }
      QR_UNROLL
      for (int v = 0; v < B; ++v) {
        const std::size_t k = k0 + v * step;
        if (k >= hidden) continue;
        float x[8];
        device::unpack8<T>(a[v], x);
        if (sum != nullptr) add_residual(x, c[v], wp + k);
        QR_UNROLL
        for (int j = 0; j < 8; ++j) ss += x[j] * x[j];
        if (need_absmax) {
          float g[8];
          device::load8(weight, hidden, k, g);
          QR_UNROLL
          for (int j = 0; j < 8; ++j) x[j] *= g[j];
          const std::uint32_t m = codec::absmax_bits8(x);
          am = m > am ? m : am;
        }
      }
    }
    finish_batched<B>(row, ss, am, need_absmax);
  }

  // Rows held in registers (algorithm::one_shot_rmsnorm_kernel): thread t of a block of Threads holds
  // values [k, k+8) of its row for k = 8 * (t + v * Threads), v < V, where k < hidden (`valid`).
  // The residual and the weight are loaded (load_row_inputs) before the sums arrive; finish_row
  // forms r' from the sums, stores it, and hands y to the output without reading r' back.
  template <int V>
  struct row_inputs {
    uint4 r[V], g[V];
  };
  template <int V>
  QR_DEVICE QR_FORCEINLINE void load_row_inputs(std::size_t row, const std::uint32_t (&k)[V], const bool (&valid)[V], row_inputs<V>& in) const {
    QR_UNROLL
    for (int v = 0; v < V; ++v)
      if (valid[v]) {
        in.r[v] = *reinterpret_cast<const uint4*>(residual + row * hidden + k[v]);
        in.g[v] = *reinterpret_cast<const uint4*>(weight + k[v]);
      }
  }
  // r' = sum + r: with y in the tensor's type the sum is rounded to T first, as an all-reduce followed
  // by an add computes it (the same bits as the kernel of rows makes from sums left in y); with a
  // quantized y rounded once, as phase 1 in the all-reduce computes it.
  template <int Threads, int V>
  QR_DEVICE QR_FORCEINLINE void finish_row(std::size_t row, const std::uint32_t (&k)[V], const bool (&valid)[V], float (&x)[V][8],
                                           const row_inputs<V>& in) const {
    constexpr bool sum_in_t = requires(const Out& o) { o.y; };
    float ss = 0.0f;
    std::uint32_t am = 0u;
    QR_UNROLL
    for (int v = 0; v < V; ++v) {
      if (!valid[v]) continue;
      if constexpr (sum_in_t) device::unpack8<T>(device::pack8<T>(x[v]), x[v]);
      add_residual(x[v], in.r[v], residual_out + row * hidden + k[v]);
      QR_UNROLL
      for (int j = 0; j < 8; ++j) ss += x[v][j] * x[v][j];
      if constexpr (Out::row_absmax) {
        float g[8], p[8];
        device::unpack8<T>(in.g[v], g);
        QR_UNROLL
        for (int j = 0; j < 8; ++j) p[j] = x[v][j] * g[j];
        const std::uint32_t a = codec::absmax_bits8(p);
        am = a > am ? a : am;
      }
    }
    const auto [inv, row_absmax] = scale_of<Threads>(ss, am, Out::row_absmax);
    QR_UNROLL
    for (int v = 0; v < V; ++v) {
      float y[8] = {};
      if (valid[v]) {
        float g[8];
        device::unpack8<T>(in.g[v], g);
        QR_UNROLL
        for (int j = 0; j < 8; ++j) y[j] = inv * (x[v][j] * g[j]);
      }
      out.store(row, hidden, k[v], y, valid[v], row_absmax);
    }
  }

  // The reductions, then y = inv * (r' * g) handed to the output, round by round (every thread runs
  // every round: the output's group shuffles), r' read again (from L2).
  QR_DEVICE QR_FORCEINLINE void finish(std::size_t row, float ss, std::uint32_t am, bool need_absmax) const {
    const T* rp = residual_out + row * hidden;
    const std::size_t step = 8 * std::size_t(block_threads);
    const auto [inv, row_absmax] = scale_of(ss, am, need_absmax);
    for (std::size_t k0 = 0; k0 < hidden; k0 += step) {
      const std::size_t k = k0 + 8 * std::size_t(threadIdx.x);
      const bool active = k < hidden;
      float y[8] = {};
      if (active) {
        float g[8];
        device::load8(rp, hidden, k, y);
        device::load8(weight, hidden, k, g);
        QR_UNROLL
        for (int j = 0; j < 8; ++j) y[j] = inv * (y[j] * g[j]);
      }
      out.store(row, hidden, k, y, active, row_absmax);
    }
  }
  // finish() with B rounds' loads before their stores.
  template <int B>
  QR_DEVICE QR_FORCEINLINE void finish_batched(std::size_t row, float ss, std::uint32_t am, bool need_absmax) const {
    const T* rp = residual_out + row * hidden;
    const std::size_t step = 8 * std::size_t(block_threads);
    const auto [inv, row_absmax] = scale_of(ss, am, need_absmax);
    for (std::size_t k0 = 8 * std::size_t(threadIdx.x); k0 < hidden + 8 * std::size_t(threadIdx.x); k0 += B * step) {
      uint4 a[B], g[B];
      QR_UNROLL
      for (int v = 0; v < B; ++v) {
        const std::size_t k = k0 + v * step;
        if (k < hidden) {
          a[v] = *reinterpret_cast<const uint4*>(rp + k);
          g[v] = *reinterpret_cast<const uint4*>(weight + k);
        }
      }
      QR_UNROLL
      for (int v = 0; v < B; ++v) {
        const std::size_t k = k0 + v * step;
        if (k - 8 * std::size_t(threadIdx.x) >= hidden) break;  // past the row for every thread: no round
        const bool active = k < hidden;
        float y[8] = {};
        if (active) {
          float x[8], w[8];
          device::unpack8<T>(a[v], x);
          device::unpack8<T>(g[v], w);
          QR_UNROLL
          for (int j = 0; j < 8; ++j) y[j] = inv * (x[j] * w[j]);
        }
        out.store(row, hidden, k, y, active, row_absmax);
      }
    }
  }

#endif
};

}  // namespace qreduce::epilogue
