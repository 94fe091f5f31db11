// qreduce/algorithm/two_shot.hpp: the quantized two-shot all-reduce (reduce-scatter + all-gather).
//
// Per block and round, on rank r of W, the block owns a chunk of W segments of K codec tiles:
//   1. encode segment s of its input and store it into rank s's scatter slot [block][r];
//      raise flag (phase 0) on every rank;
//   2. wait for the W phase-0 flags; decode the W contributions of segment r and add them in f32,
//      in rank order; encode the sum once and store it into every rank's gather slot [block][r];
//      raise flag (phase 1) on every rank;
//   3. wait for the W phase-1 flags; decode the W reduced segments and write the output.
// Every rank decodes the same bytes in step 3, so every rank's output is bitwise identical.
// With rotation on, step 1 rotates each group, the sum is formed in the rotated basis (the
// transform is linear), and step 3 undoes the rotation after decoding.
//
// Why no call can overwrite data a peer still reads: a block reaches round j+1 only after every
// peer's same-numbered block sent its round-j phase-1 flag, which that peer raised after finishing
// everything before it; slots are indexed by block and sender, never by message offset.
#pragma once
#include <cstddef>
#include "../error.hpp"
#include "lanes.hpp"

namespace qreduce::algorithm {

// How a two-shot call is cut: K tiles per segment, and the grid. A pure function of the message and
// the communicator, so every rank computes the same. With row_values > 0 (a row-wise epilogue), K is
// raised where it can be so that a chunk (W * K tiles) holds whole rows: each block then finishes
// its rows itself, right after gathering them, and no barrier over the grid is needed.
struct two_shot_plan {
  int tiles_per_segment = 1;
  int blocks = 0;
  std::size_t chunks = 0;
  bool rows_in_chunks = false;
};

inline two_shot_plan plan_two_shot(const workspace_layout& l, std::size_t n, std::size_t row_values = 0) {
  const std::size_t W = std::size_t(l.cfg.world), B = std::size_t(l.cfg.blocks), kmax = std::size_t(l.cfg.tiles_per_slot);
  const std::size_t per_tile_round = B * W * codec::tile_values;
  std::size_t k = (n + per_tile_round - 1) / per_tile_round;
  k = k < 1 ? 1 : (k > kmax ? kmax : k);
  two_shot_plan p;
  if (row_values > 0) {
    // the smallest K0 with W * K0 * tile_values a multiple of row_values, if any
    for (std::size_t k0 = 1; k0 <= kmax; ++k0)
      if (W * k0 * codec::tile_values % row_values == 0) {
        const std::size_t kr = (k + k0 - 1) / k0 * k0;
        if (kr <= kmax) {
          k = kr;
          p.rows_in_chunks = true;
        }
        break;
      }
  }
  p.tiles_per_segment = int(k);
  const std::size_t chunk = W * k * codec::tile_values;
  p.chunks = (n + chunk - 1) / chunk;
  p.blocks = int(p.chunks < B ? p.chunks : B);
  return p;
}

}  // namespace qreduce::algorithm

#if !QR_BACKEND_HOST
namespace qreduce::algorithm {

// The row pass of a row-wise epilogue, called, not inlined: the two-shot kernels of one epilogue
// type (every codec and world size) share one copy in the compiler's output. Inlined, it made up four
// fifths of their device code and doubled compile times; called, the row pass is about a tenth
// slower (prefill sizes). The one-shot kernel (decode sizes, where latency counts) inlines it.
template <class Epilogue>
__device__ QR_NOINLINE void finish_row(const Epilogue& ep, std::size_t row) {
  ep.row(row);
}

template <codec::codec_type C, class T, int W, class Epilogue>
__global__ void __launch_bounds__(block_threads)
    two_shot_kernel(device_handle h, const T* in, T* out, std::size_t n, int tiles_per_segment, bool rotate,
                    bool rows_in_chunks, Epilogue ep) {
  using namespace device;
  constexpr int TB = codec::tile_bytes<C>;
  constexpr bool row_wise = requires { Epilogue::row_pass; };
  const int b = blockIdx.x, t = threadIdx.x, r = h.rank, lane = t % codec::lanes_per_group;
  const std::size_t seg = std::size_t(tiles_per_segment) * codec::tile_values;
  const std::size_t chunk = W * seg;
  const std::size_t chunks = (n + chunk - 1) / chunk;
  bool ok = true;
  std::uint32_t seq = *h.seq(b);

  for (std::size_t c = b; c < chunks; c += gridDim.x) {
    ++seq;
    const std::size_t base = c * chunk;
    // 1. scatter: encode each segment into its owner's slot
    for (int k = 0; k < tiles_per_segment; ++k) {
      QR_UNROLL
      for (int s = 0; s < W; ++s) {
        float x[8];
        load8(in, n, base + s * seg + std::size_t(k) * codec::tile_values + 8 * t, x);
        if (rotate) hadamard32(x, lane, codec::rotation_forward_scale);
        store_lane<C>(h.scatter_slot(s, b, r) + k * TB, t, encode_lane<C, T>(x));
      }
    }
    if (!(ok = exchange_flags<W>(h, 0, seq))) break;

    // 2. reduce the own segment in f32, encode once, send to every rank
    for (int k = 0; k < tiles_per_segment; ++k) {
      float acc[8] = {};
      QR_UNROLL
      for (int s = 0; s < W; ++s) {
        float y[8];
        decode_lane<C, T>(h.scatter_slot(r, b, s) + k * TB, t, y);
        QR_UNROLL
        for (int j = 0; j < 8; ++j) acc[j] += y[j];
      }
      const auto code = encode_lane<C, T>(acc);
      QR_UNROLL
      for (int p = 0; p < W; ++p) store_lane<C>(h.gather_slot(p, b, r) + k * TB, t, code);
    }
    if (!(ok = exchange_flags<W>(h, 1, seq))) break;

    // 3. gather: decode every reduced segment and hand it to the epilogue
    for (int k = 0; k < tiles_per_segment; ++k) {
      QR_UNROLL
      for (int s = 0; s < W; ++s) {
        float y[8];
        decode_lane<C, T>(h.gather_slot(r, b, s) + k * TB, t, y);
        if (rotate) hadamard32(y, lane, 1.0f);
        ep(out, n, base + s * seg + std::size_t(k) * codec::tile_values + 8 * t, y);
      }
    }
    if constexpr (row_wise) {
      if (rows_in_chunks) {  // this block wrote these rows whole: finish them now
        block_sync();
        const std::size_t rv = ep.row_values(), end = base + chunk < n ? base + chunk : n;
        for (std::size_t row = base / rv; row < end / rv; ++row) finish_row(ep, row);
      }
    }
  }
  if (t == 0) *h.seq(b) = seq;
  if constexpr (row_wise) {
    // rows that other blocks of this rank wrote: meet first
    if (!rows_in_chunks && grid_barrier(h) && ok)
      for (std::size_t row = b, rows = n / ep.row_values(); row < rows; row += gridDim.x) finish_row(ep, row);
  }
}

}  // namespace qreduce::algorithm
#endif
