// qreduce/algorithm/one_shot.hpp: the unquantized one-shot all-reduce for small messages, with the
// flag in the data.
//
// Rank r's blocks push their values of the input into buffer [parity][r] of every peer (value i at
// byte 2i), then read the W - 1 buffers [parity][s] of their own workspace as they fill, and add the
// W values in f32 in rank order (the own value from the input, as it is): one link crossing, no
// second phase, and every rank adds the same values in the same order, so outputs are bitwise
// identical.
//
// No flag, no fence and no barrier: an empty buffer holds -0.0 in every 16-bit value, and a value has
// arrived when it is anything else. A sender replaces -0.0 by +0.0 on the way out, which changes no
// sum (the sum starts from +0.0, and +0.0 + -0.0 = +0.0), so a written value is never taken for an
// empty one. Each 32-bit word is written and read whole, so a reader never sees half a word; a
// 16-byte vector may arrive in pieces, and is read again until none of its values is empty. After
// adding, the reader empties the words it read, so a buffer is empty again before its next use.
//
// Why a buffer is empty when a peer writes into it, and nobody writes into it while it is read:
// calls alternate between two parities. A peer writes into buffer [p] of this rank for call k + 2
// only after its call k + 1 finished, which needed this rank's data of call k + 1, which this rank
// sends only after its call k finished (kernels on one stream run in order), including emptying every
// word of buffer [p] it read. This holds whichever block moves which values, so a call may cut the
// message as it likes. Every call launches the whole one-shot grid, and every block counts every call
// (blocks without values only count), so the blocks' counters, whose parity picks the buffers, stay
// equal; the parity keeps alternating where the 32-bit counter wraps. A timeout leaves buffers half written: the communicator is then unusable,
// as after any fault (flags.hpp).
//
// A row-wise epilogue (fused RMSNorm, where one_shot_rmsnorm_kernel below does not take its rows)
// gets its values here like any other; its rows are finished by a kernel of rows launched after
// this one (two_shot.hpp's rows_kernel) as a programmatic dependent:
// with `dependents` set, each block lets it start once every thread of the block is past its last
// wait for a peer (trigger_dependents), never before: the row kernel's blocks then wait only for
// work that needs no peer, so ranks sharing a GPU cannot block each other through them.
//
// call_epilogue is the epilogue field of the call's signature: the epilogue the caller was asked for,
// where it runs another (the fused RMSNorm with y in the tensor's type runs the plain epilogue into y
// and finishes in its kernel of rows), so that a plain all-reduce on one rank against a fused one on
// another is still a mismatch.
//
// The last block of the grid also pushes a 16-byte header, the call's signature (signature.hpp),
// after the buffer's values, and its thread 0 reads the peers' headers, and a header unlike its own
// call is a call mismatch (flags.hpp): so different counts or types are an error on every rank, not
// a sum of the first values or of unlike data. Below a full grid that block has no values and only
// compares, beside the blocks that move the data (a header in every block's first pass cost 0.4-0.6
// us a call on 2x H200, `docs/results/2026-11-26-h200x2/`); with values it reads the headers with
// its first values.
//
// The cost: a call moves its data once over the link and once through each memory, and waits for
// nothing but the data itself: no release fence after the stores, no flag round trip. Against the
// flag-and-barrier one-shot it replaced: docs/design.md, "The one-shot carries its flag in its data".
#pragma once
#include <cstddef>
#include "../device/atomic.hpp"
#include "../device/tile.hpp"
#include "../transport/flags.hpp"
#include "../transport/peer_memory.hpp"
#include "../epilogue/epilogue.hpp"
#include "../epilogue/rmsnorm.hpp"
#include "signature.hpp"

namespace qreduce::algorithm {

// How a one-shot call is cut: block b takes values [b * per_block, (b + 1) * per_block) of the n;
// blocks from `blocks` on have none. The grid is always the communicator's one-shot grid (see above).
struct one_shot_plan {
  int blocks = 0;  // blocks with values
  std::size_t per_block = 0;  // values per block, a multiple of 8
};

inline one_shot_plan plan_one_shot(const workspace_layout& l, std::size_t n) {
  const std::size_t B = std::size_t(l.cfg.oneshot_blocks);
  auto ceil_div = [](std::size_t a, std::size_t b) { return a / b + (a % b != 0 ? 1 : 0); };
  one_shot_plan p;
  std::size_t blocks = ceil_div(n, codec::tile_values);
  blocks = blocks < 1 ? 1 : (blocks > B ? B : blocks);
  p.per_block = (ceil_div(n, blocks) + 7) / 8 * 8;
  p.blocks = n == 0 ? 0 : int(ceil_div(n, p.per_block));
  return p;
}

// The fused RMSNorm's one-shot (one_shot_rmsnorm_kernel): a block of this many threads takes whole
// rows, each thread this many vectors of 8 values of a row, in registers from the sums to y. It runs
// rows of at most 8192 values, at most oneshot_rows_per_block a block (shorter rows leave threads
// idle; a block finishes its rows one after another: one_shot_rows_fit). Other shapes go through
// the plain one-shot and a kernel of rows.
inline constexpr int oneshot_rows_threads = 512;
inline constexpr int oneshot_rows_vectors = 2;
inline constexpr std::size_t oneshot_rows_max_hidden = 8 * std::size_t(oneshot_rows_threads) * oneshot_rows_vectors;
inline constexpr std::size_t oneshot_rows_per_block = 4;

// World sizes it runs at: at 8 ranks the W - 1 peers' vectors a thread polls (64 registers) make
// it spill (ptxas: 230-280 bytes a thread); there the plain one-shot and the kernel of rows run.
template <int W>
inline constexpr bool one_shot_rows_world = W <= 4;

// Where it runs: 2 and 4 ranks, rows of at most 8192 values whose copies to the peers come to at most
// 16384 values ((W - 1) x hidden: one block moves a row, and at 4 ranks one row of 8192 took 8.2 us
// under CUDA graphs against 7.7 with the plain one-shot's four blocks; rows of 4096 there 1.1-1.2x
// faster than that; docs/results/2026-11-26e-h200x4/), at most oneshot_rows_per_block a block.
inline bool one_shot_rows_fit(const workspace_layout& l, std::size_t rows, std::size_t hidden) {
  return l.cfg.world <= 4 && hidden <= oneshot_rows_max_hidden && std::size_t(l.cfg.world - 1) * hidden <= 16384 &&
         rows <= oneshot_rows_per_block * std::size_t(l.cfg.oneshot_blocks);
}

// What an empty one-shot buffer holds: -0.0 in both 16-bit values of every word.
inline constexpr std::uint32_t empty_word = 0x80008000u;

}  // namespace qreduce::algorithm

#if !QR_BACKEND_HOST
namespace qreduce::algorithm {

namespace detail {
// A word with -0.0 (0x8000) in either half replaced by +0.0.
QR_DEVICE QR_FORCEINLINE std::uint32_t without_empty(std::uint32_t w) {
  const std::uint32_t lo = (w & 0xffffu) == 0x8000u ? 0x0000ffffu : 0u;
  const std::uint32_t hi = (w >> 16) == 0x8000u ? 0xffff0000u : 0u;
  return w & ~(lo | hi);
}
QR_DEVICE QR_FORCEINLINE uint4 without_empty(const uint4& v) {
  return make_uint4(without_empty(v.x), without_empty(v.y), without_empty(v.z), without_empty(v.w));
}
// A call's signature as a one-shot header: byte k in the low byte of 16-bit value k, whose high byte
// is 1, so that no value of a header is -0.0 (empty).
QR_DEVICE QR_FORCEINLINE uint4 header_of(std::uint64_t call) {
  std::uint32_t w[4];
  QR_UNROLL
  for (int k = 0; k < 4; ++k) w[k] = 0x01000100u | std::uint32_t(call >> (16 * k)) & 0xffu | (std::uint32_t(call >> (16 * k + 8)) & 0xffu) << 16;
  return make_uint4(w[0], w[1], w[2], w[3]);
}
QR_DEVICE QR_FORCEINLINE std::uint64_t call_of(const uint4& v) {
  const std::uint32_t w[4] = {v.x, v.y, v.z, v.w};
  std::uint64_t call = 0;
  QR_UNROLL
  for (int k = 0; k < 4; ++k) call |= std::uint64_t(w[k] & 0xffu | (w[k] >> 8) & 0xff00u) << (16 * k);
  return call;
}
// Whether every 16-bit value of the vector was written (none is -0.0).
// Whether every 16-bit value of the vector was written (none is -0.0).
QR_DEVICE QR_FORCEINLINE bool arrived(const uint4& v) {
  const auto full = [](std::uint32_t w) { return (w & 0xffffu) != 0x8000u && (w >> 16) != 0x8000u; };
  return full(v.x) && full(v.y) && full(v.z) && full(v.w);
}
// Thread 0 of the last block, with no values of its own: pushes this call's header to every peer,
// waits for theirs (bounded), compares and empties them. False after a fault (recorded).
template <int W>
QR_DEVICE inline bool compare_calls(const device_handle& h, int parity, std::uint64_t call) {
  const int r = h.rank, b = blockIdx.x;
  QR_UNROLL
  for (int p = 0; p < W; ++p)
    if (p != r) *reinterpret_cast<uint4*>(h.oneshot_header(p, parity, r, b)) = header_of(call);
  for (int s = 0; s < W; ++s) {
    if (s == r) continue;
    uint4 got = device::load_relaxed_v4<device::scope::system>(h.oneshot_header(r, parity, s, b));
    if (!arrived(got) && !device::wait_bounded(
                             h,
                             [&](std::uint32_t& seen) {
                               got = device::load_relaxed_v4<device::scope::system>(h.oneshot_header(r, parity, s, b));
                               seen = got.x;
                               return arrived(got) ? 1 : 0;
                             },
                             s, device::oneshot_phase, 0u))
      return false;
    *reinterpret_cast<uint4*>(h.oneshot_header(r, parity, s, b)) = make_uint4(empty_word, empty_word, empty_word, empty_word);
    const std::uint64_t theirs = call_of(got);
    if (theirs != call) {
      device::record_call_mismatch(h, s, device::oneshot_phase, 0u, call, theirs);
      return false;
    }
  }
  return true;
}
}  // namespace detail

// Empties a rank's one-shot buffers (every word empty_word): once, on its own workspace, before any
// call.
template <class Transport>
__global__ void __launch_bounds__(block_threads) one_shot_empty_kernel(std::byte* workspace, workspace_layout l) {
  auto* w = reinterpret_cast<std::uint32_t*>(workspace + l.oneshot_off);
  const std::size_t words = l.oneshot_bytes() / 4;
  for (std::size_t i = std::size_t(blockIdx.x) * block_threads + threadIdx.x; i < words; i += std::size_t(gridDim.x) * block_threads)
    w[i] = empty_word;
}

// Slices of 8 values a thread keeps in flight: the pushes and the first reads of this many are
// issued before waiting on any. 2 (4096 values a block a pass) at 2 ranks; 1 at 4 and 8, where a
// slice already has W - 1 reads in flight.
template <int W>
inline constexpr int oneshot_unroll = W == 2 ? 2 : 1;

template <class Transport, class T, int W, epilogue::epilogue_for<T> Epilogue>
__global__ void __launch_bounds__(block_threads) one_shot_kernel(device_handle h, const T* in, T* out, std::size_t n, std::size_t per_block,
                                                                 Epilogue ep, std::uint32_t call_epilogue, bool dependents) {
  using namespace device;
  constexpr int U = oneshot_unroll<W>;
  const int b = blockIdx.x, t = threadIdx.x, r = h.rank;
  const std::uint32_t calls = *h.oneshot_seq(b);
  const std::size_t lo = std::size_t(b) * per_block;
  const int parity = int(calls & 1u);
  const bool verifier = b == int(gridDim.x) - 1;  // the block that compares the ranks' calls
  const std::uint64_t call = call_signature(n, dtype_of<T>, 0u, one_shot_id, call_epilogue, false);
  if (lo >= n) {  // no values: count the call, so that every block's parity stays the same
    if (verifier && block_may_start(h) && t == 0) (void)detail::compare_calls<W>(h, parity, call);
    if (t == 0) *h.oneshot_seq(b) = calls + 1u;
    return;
  }
  const std::size_t hi = lo + per_block < n ? lo + per_block : n;
  const std::size_t stride = 8 * std::size_t(block_threads);
  const std::size_t first = lo + 8 * std::size_t(t);
  const bool single_pass = first + U * stride >= hi;  // else `mine` is read again in the second pass
  // The first input is read while thread 0 reads the abort word: one memory latency, not two.
  uint4 mine[U];
  QR_UNROLL
  for (int u = 0; u < U; ++u) {
    const std::size_t i = first + u * stride;
    if (i < hi) mine[u] = load8_bits(in, n, i);
  }
  if (!block_may_start(h)) return;  // this rank or a peer gave up: no remote write
  if (verifier && t == 0) {
    QR_UNROLL
    for (int p = 0; p < W; ++p)
      if (p != r) *reinterpret_cast<uint4*>(h.oneshot_header(p, parity, r, b)) = detail::header_of(call);
  }
  for (std::size_t i0 = first; i0 < hi; i0 += U * stride) {
    if (i0 != first) {
      QR_UNROLL
      for (int u = 0; u < U; ++u)
        if (i0 + u * stride < hi) mine[u] = load8_bits(in, n, i0 + u * stride);
    }
    QR_UNROLL
    for (int u = 0; u < U; ++u) {
      const std::size_t i = i0 + u * stride;
      if (i < hi) {
        const uint4 v = detail::without_empty(mine[u]);
        QR_UNROLL
        for (int p = 0; p < W; ++p)
          if (p != r) *reinterpret_cast<uint4*>(h.oneshot_buffer(p, parity, r) + 2 * i) = v;
      }
    }
  }
  bool ok = true;
  for (std::size_t i0 = first; i0 < hi; i0 += U * stride) {
    uint4 got[U][W];  // [u][r] unused: the own values are read from the input
    uint4 header[W];  // thread 0, first pass: the peers' headers ([r] unused)
    const bool headers = verifier && t == 0 && i0 == first;
    if (headers) {
      QR_UNROLL
      for (int s = 0; s < W; ++s)
        if (s != r) header[s] = load_relaxed_v4<scope::system>(h.oneshot_header(r, parity, s, b));
    }
    QR_UNROLL
    for (int u = 0; u < U; ++u) {
      const std::size_t i = i0 + u * stride;
      if (i < hi) {
        if (!single_pass) mine[u] = load8_bits(in, n, i);
        QR_UNROLL
        for (int s = 0; s < W; ++s)
          if (s != r) got[u][s] = load_relaxed_v4<scope::system>(h.oneshot_buffer(r, parity, s) + 2 * i);
      }
    }
    // Every vector of this pass arrived? Else poll the missing ones again, bounded (the spin stays
    // out of the unrolled loops: clang does not unroll a loop that holds one).
    int late = -1;  // a rank whose values have not all arrived
    QR_UNROLL
    for (int u = 0; u < U; ++u) {
      QR_UNROLL
      for (int s = 0; s < W; ++s)
        if (s != r && i0 + u * stride < hi && late < 0 && !detail::arrived(got[u][s])) late = s;
    }
    QR_UNROLL
    for (int s = 0; s < W; ++s)
      if (headers && s != r && late < 0 && !detail::arrived(header[s])) late = s;
    if (late >= 0)
      ok = wait_bounded(
          h,
          [&](std::uint32_t& seen) {
            // Every missing vector read again, all the loads issued before any is looked at (a
            // look waits for its load: one after each load would poll them one after another).
            QR_UNROLL
            for (int u = 0; u < U; ++u) {
              QR_UNROLL
              for (int s = 0; s < W; ++s)
                if (s != r && i0 + u * stride < hi && !detail::arrived(got[u][s]))
                  got[u][s] = load_relaxed_v4<scope::system>(h.oneshot_buffer(r, parity, s) + 2 * (i0 + u * stride));
            }
            QR_UNROLL
            for (int s = 0; s < W; ++s)
              if (headers && s != r && !detail::arrived(header[s])) header[s] = load_relaxed_v4<scope::system>(h.oneshot_header(r, parity, s, b));
            late = -1;  // the first rank still missing: the one a timeout names
            QR_UNROLL
            for (int u = 0; u < U; ++u) {
              QR_UNROLL
              for (int s = 0; s < W; ++s)
                if (s != r && i0 + u * stride < hi && late < 0 && !detail::arrived(got[u][s])) {
                  late = s;
                  seen = got[u][s].x;
                }
            }
            QR_UNROLL
            for (int s = 0; s < W; ++s)
              if (headers && s != r && late < 0 && !detail::arrived(header[s])) {
                late = s;
                seen = header[s].x;
              }
            return late < 0 ? 1 : 0;
          },
          late, oneshot_phase, 0u);
    if (ok && headers)  // every peer's call is this rank's: else nothing of theirs is added
      QR_UNROLL
    for (int s = 0; s < W; ++s)
      if (s != r) {
        *reinterpret_cast<uint4*>(h.oneshot_header(r, parity, s, b)) = make_uint4(empty_word, empty_word, empty_word, empty_word);
        const std::uint64_t theirs = detail::call_of(header[s]);
        if (theirs != call && ok) {
          record_call_mismatch(h, s, oneshot_phase, 0u, call, theirs);
          ok = false;
        }
      }
    if (!ok) break;
    QR_UNROLL
    for (int u = 0; u < U; ++u) {
      const std::size_t i = i0 + u * stride;
      if (i < hi) {
        float acc[8] = {};
        QR_UNROLL
        for (int s = 0; s < W; ++s) {
          float y[8];
          if (s == r) {
            unpack8<T>(mine[u], y);
          } else {
            *reinterpret_cast<uint4*>(h.oneshot_buffer(r, parity, s) + 2 * i) = make_uint4(empty_word, empty_word, empty_word, empty_word);
            unpack8<T>(got[u][s], y);
          }
          QR_UNROLL
          for (int j = 0; j < 8; ++j) acc[j] += y[j];
        }
        ep(out, n, i, acc);
      }
    }
  }
  if (dependents) {  // every thread past its waits: the kernel of rows after this one may start
    block_sync();
    trigger_dependents();
  }
  if (t == 0) *h.oneshot_seq(b) = calls + 1u;  // after a fault (recorded: check() throws) too
}

// The all-reduce fused with residual add and RMSNorm for rows that fit a block (one_shot_rows_fit):
// the one-shot above, cut by rows instead of by equal shares, with each row finished by the block
// that sums it. Block b takes rows b, b + gridDim.x, ... (a block past the last row has none; the grid
// is the one-shot grid, and every block counts every call, as above). Thread t pushes and sums values
// [k, k+8) of a row for k = 8 * (t + v * oneshot_rows_threads) and keeps the sums in registers: r' is
// formed, stored and squared there, one block reduction gives 1 / rms, and y goes to the output
// (epilogue/rmsnorm.hpp, finish_row). A block first pushes all its rows, then sums and finishes them
// one by one, so that a later row's values travel while an earlier one is finished; the residual and
// the weight of a row are loaded before its peers' values are looked at. One kernel where the plain
// one-shot needs a kernel of rows after it, and r' is never read back.
//
// The buffers, their emptiness and parity, are the plain one-shot's (value i at byte 2i): a peer
// running this kernel and one running the plain one-shot for the same n exchange the same words.
// Where the peer's call is a plain all-reduce, the signatures differ in the epilogue and the
// verifier (the grid's last block: its threads s < W poll peer s's header with its first row's
// values, or its thread 0 alone when it has no row) reports the mismatch on both; a fused call with
// other row lengths is not told apart (signature.hpp). A block with several rows bounds each row's
// wait by the timeout on its own.
template <class Transport, class T, int W, class Out>
__global__ void __launch_bounds__(oneshot_rows_threads)
    one_shot_rmsnorm_kernel(device_handle h, const T* in, std::size_t rows, epilogue::residual_rmsnorm<T, Out> ep) {
  using namespace device;
  constexpr int NT = oneshot_rows_threads, V = oneshot_rows_vectors;
  const int b = blockIdx.x, t = threadIdx.x, r = h.rank;
  const std::size_t hidden = ep.hidden, n = rows * hidden, first_row = std::size_t(b), row_step = gridDim.x;
  const std::uint32_t calls = *h.oneshot_seq(b);
  const int parity = int(calls & 1u);
  const bool verifier = b == int(gridDim.x) - 1;
  const std::uint64_t call = call_signature(n, dtype_of<T>, 0u, one_shot_id, epilogue_id<decltype(ep)>, false);
  if (first_row >= rows) {  // no row: count the call, so that every block's parity stays the same
    if (verifier && block_may_start(h) && t == 0) (void)detail::compare_calls<W>(h, parity, call);
    if (t == 0) *h.oneshot_seq(b) = calls + 1u;
    return;
  }
  std::uint32_t k[V];  // a row has at most oneshot_rows_max_hidden values
  bool valid[V];
  QR_UNROLL
  for (int v = 0; v < V; ++v) {
    k[v] = 8u * std::uint32_t(t + v * NT);
    valid[v] = k[v] < hidden;  // hidden is a multiple of 8: whole vectors
  }
  auto load_input = [&](std::size_t row, uint4(&x)[V]) {
    QR_UNROLL
    for (int v = 0; v < V; ++v)
      if (valid[v]) x[v] = *reinterpret_cast<const uint4*>(in + row * hidden + k[v]);
  };
  // The first row's input, residual and weight are read while thread 0 reads the abort word.
  uint4 mine[V];
  load_input(first_row, mine);
  typename epilogue::residual_rmsnorm<T, Out>::template row_inputs<V> inputs;
  ep.load_row_inputs(first_row, k, valid, inputs);
  if (!block_may_start(h)) return;  // this rank or a peer gave up: no remote write
  if (verifier && t == 0) {
    QR_UNROLL
    for (int p = 0; p < W; ++p)
      if (p != r) *reinterpret_cast<uint4*>(h.oneshot_header(p, parity, r, b)) = detail::header_of(call);
  }
  auto push = [&](std::size_t row, const uint4(&x)[V]) {
    QR_UNROLL
    for (int v = 0; v < V; ++v)
      if (valid[v]) {
        const uint4 w = detail::without_empty(x[v]);
        QR_UNROLL
        for (int p = 0; p < W; ++p)
          if (p != r) *reinterpret_cast<uint4*>(h.oneshot_buffer(p, parity, r) + 2 * (row * hidden + k[v])) = w;
      }
  };
  // Sums the row whose input is in `mine` and residual and weight in `inputs`, and finishes it. False
  // after a fault (recorded).
  auto finish = [&](std::size_t row) -> bool {
    const bool headers = verifier && row == first_row && t < W && t != r;  // this thread checks peer t's call
    auto slot = [&](int s, int v) { return h.oneshot_buffer(r, parity, s) + 2 * (row * hidden + k[v]); };
    uint4 got[V][W];  // [v][r] unused: the own values are the input's
    uint4 header = make_uint4(empty_word, empty_word, empty_word, empty_word);
    QR_UNROLL
    for (int v = 0; v < V; ++v) {
      QR_UNROLL
      for (int s = 0; s < W; ++s)
        if (s != r && valid[v]) got[v][s] = load_relaxed_v4<scope::system>(slot(s, v));
    }
    if (headers) header = load_relaxed_v4<scope::system>(h.oneshot_header(r, parity, t, b));
    // The first rank whose values (or header) this thread still misses, and what it saw there.
    auto missing = [&](std::uint32_t& seen) {
      int late = -1;
      QR_UNROLL
      for (int v = 0; v < V; ++v) {
        QR_UNROLL
        for (int s = 0; s < W; ++s)
          if (s != r && valid[v] && late < 0 && !detail::arrived(got[v][s])) {
            late = s;
            seen = got[v][s].x;
          }
      }
      if (headers && late < 0 && !detail::arrived(header)) {
        late = t;
        seen = header.x;
      }
      return late;
    };
    std::uint32_t seen = 0;
    int late = missing(seen);
    bool ok = true;
    if (late >= 0)
      ok = wait_bounded(
          h,
          [&](std::uint32_t& last) {
            // every missing vector read again, all loads issued before any is looked at
            QR_UNROLL
            for (int v = 0; v < V; ++v) {
              QR_UNROLL
              for (int s = 0; s < W; ++s)
                if (s != r && valid[v] && !detail::arrived(got[v][s])) got[v][s] = load_relaxed_v4<scope::system>(slot(s, v));
            }
            if (headers && !detail::arrived(header)) header = load_relaxed_v4<scope::system>(h.oneshot_header(r, parity, t, b));
            late = missing(last);
            return late < 0 ? 1 : 0;
          },
          late, oneshot_phase, 0u);
    if (ok && headers) {  // peer t's call is this rank's: else nothing of this call is added
      *reinterpret_cast<uint4*>(h.oneshot_header(r, parity, t, b)) = make_uint4(empty_word, empty_word, empty_word, empty_word);
      const std::uint64_t theirs = detail::call_of(header);
      if (theirs != call) {
        record_call_mismatch(h, t, oneshot_phase, 0u, call, theirs);
        ok = false;
      }
    }
    if (!block_all(ok)) return false;  // a fault (recorded); the block reductions below need every thread
    float x[V][8];
    QR_UNROLL
    for (int v = 0; v < V; ++v) {
      QR_UNROLL
      for (int j = 0; j < 8; ++j) x[v][j] = 0.0f;
      if (!valid[v]) continue;
      QR_UNROLL
      for (int s = 0; s < W; ++s) {
        float y[8];
        if (s == r) {
          unpack8<T>(mine[v], y);
        } else {
          *reinterpret_cast<uint4*>(slot(s, v)) = make_uint4(empty_word, empty_word, empty_word, empty_word);
          unpack8<T>(got[v][s], y);
        }
        QR_UNROLL
        for (int j = 0; j < 8; ++j) x[v][j] += y[j];
      }
    }
    ep.template finish_row<NT>(row, k, valid, x, inputs);
    return true;
  };
  push(first_row, mine);
  if (first_row + row_step >= rows) {  // one row (the decode sizes): straight-line code
    (void)finish(first_row);
  } else {  // push every row of this block, then sum and finish them in turn
    for (std::size_t row = first_row + row_step; row < rows; row += row_step) {
      uint4 x[V];
      load_input(row, x);
      push(row, x);
    }
    for (std::size_t row = first_row; row < rows; row += row_step) {
      if (row != first_row) {
        load_input(row, mine);
        ep.load_row_inputs(row, k, valid, inputs);
      }
      if (!finish(row)) break;
    }
  }
  if (t == 0) *h.oneshot_seq(b) = calls + 1u;  // after a fault (recorded: check() throws) too
}

}  // namespace qreduce::algorithm
#endif
