// qreduce/algorithm/one_shot.hpp: the unquantized one-shot all-reduce for small messages.
//
// Block b of rank r pushes its slice of the input into every rank's one-shot slot [parity][b][r],
// raises its flag there, waits for the W flags of its own slot row, then adds the W slices in f32 in
// rank order: one link crossing, no second phase, and every rank adds the same values in the same
// order, so outputs are bitwise identical.
//
// The slots alternate between two parities (the block's call counter modulo 2): a rank can start call
// k+2, which reuses call k's slots, only after every peer raised its flag for call k+1, i.e. after that
// peer finished reading call k.
#pragma once
#include <cstddef>
#include "../device/tile.hpp"
#include "../transport/flags.hpp"
#include "../transport/peer_memory.hpp"

namespace qreduce::algorithm {

struct one_shot_plan {
  int blocks = 0;
  std::size_t per_block = 0;  // values per block, a multiple of 8
};

inline one_shot_plan plan_one_shot(const workspace_layout& l, std::size_t n) {
  const std::size_t B = std::size_t(l.cfg.oneshot_blocks);
  std::size_t blocks = (n + codec::tile_values - 1) / codec::tile_values;
  blocks = blocks < 1 ? 1 : (blocks > B ? B : blocks);
  std::size_t per = (n + blocks - 1) / blocks;
  per = (per + 7) / 8 * 8;
  one_shot_plan p;
  p.blocks = int((n + per - 1) / per);
  if (p.blocks < 1) p.blocks = 1;
  p.per_block = per;
  return p;
}

}  // namespace qreduce::algorithm

#if !QR_BACKEND_HOST
namespace qreduce::algorithm {

template <class Transport, class T, int W, class Epilogue>
__global__ void __launch_bounds__(block_threads)
    one_shot_kernel(device_handle h, const T* in, T* out, std::size_t n, std::size_t per_block, Epilogue ep) {
  using namespace device;
  if (!block_may_start(h)) return;  // this rank or a peer gave up: no remote write
  const int b = blockIdx.x, t = threadIdx.x, r = h.rank;
  const std::uint32_t seq = *h.oneshot_seq(b) + 1u;
  const int parity = int(seq & 1u);
  const std::size_t lo = std::size_t(b) * per_block;
  const std::size_t hi = lo + per_block < n ? lo + per_block : n;

  for (std::size_t i = lo + 8 * std::size_t(t); i < hi; i += 8 * block_threads) {
    const uint4 v = load8_bits(in, n, i);
    QR_UNROLL
    for (int p = 0; p < W; ++p) *reinterpret_cast<uint4*>(h.oneshot_slot(p, parity, b, r) + 2 * (i - lo)) = v;
  }
  const bool ok = exchange_flags<Transport, W>(h, oneshot_phase, seq);
  if (ok) {
    for (std::size_t i = lo + 8 * std::size_t(t); i < hi; i += 8 * block_threads) {
      float acc[8] = {};
      QR_UNROLL
      for (int s = 0; s < W; ++s) {
        float y[8];
        unpack8<T>(*reinterpret_cast<const uint4*>(h.oneshot_slot(r, parity, b, s) + 2 * (i - lo)), y);
        QR_UNROLL
        for (int j = 0; j < 8; ++j) acc[j] += y[j];
      }
      ep(out, n, i, acc);
    }
  }
  if (t == 0) *h.oneshot_seq(b) = seq;
  if constexpr (requires { Epilogue::row_pass; }) {
    // row-wise epilogues read what other blocks of this rank wrote: meet first
    if (grid_barrier(h) && ok) ep.rows(n);
  }
}

}  // namespace qreduce::algorithm
#endif
