// qreduce/transport/workspace.hpp: the layout of a rank's workspace, and the handle kernels get.
//
// Every rank allocates one workspace of the same size; peers write into it through their mapping.
// The layout depends only on the communicator's configuration (world size, grids, slot sizes),
// never on a call's message size, codec or grid, so calls of any sizes in any order cannot overlap.
//
//   flags    uint32 [2 phases][blocks][world]                 raised by the sender named by the last index:
//                                                             0 two-shot scatter, 1 two-shot gather
//   seq      uint32 [3][blocks]                               this rank's own per-block counters: two-shot
//                                                             rounds, one-shot calls (whose parity picks
//                                                             the one-shot slots), and the two-shot's next
//                                                             ring position (kept mod ring_slots)
//   abort    uint32, then uint32 [4]                          raised by the rank that gave up, on every rank (who, on whom, why),
//                                                             after the two call signatures of a call mismatch (its own, the other's)
//   calls    uint32 [ring_slots][blocks][world][2]            two-shot: the signature of the call whose round holds that ring
//                                                             slot, stored by the sender named by the third index beside its
//                                                             scatter flag (algorithm/signature.hpp)
//   scatter  [ring_slots][blocks][world - 1] slots of segment_bytes  two-shot reduce-scatter: the owner receives
//                                                             here, a slot per peer (the own segment is never sent)
//   gather   [ring_slots][blocks][world - 1] slots of segment_bytes  two-shot all-gather: the peers' reduced
//                                                             segments arrive here
//   oneshot  [2 parities][world] buffers of oneshot_buffer_bytes  one-shot inputs, value i of a call at
//                                                             byte 2i whichever block moves it, then a 16-byte
//                                                             header per block (the call's signature); the flag
//                                                             is in the data: -0.0 marks an empty value (one_shot.hpp)
//
// `blocks` is the two-shot's grid (several blocks per multiprocessor), `oneshot_blocks` the
// one-shot's (one per multiprocessor, at most `blocks`). Each algorithm has its own counters (the
// one-shot needs no flags): a flag is only ever compared with a counter that advances with it, so the modulo-2^32
// comparison stays exact however many calls of the other kind come in between (a shared counter
// would let a stale gather flag pass after 2^31 one-shot calls). Consecutive two-shot rounds use
// consecutive ring slots, from a ring position kept in device memory: three slots are what the
// pipelined two-shot's credit argument needs (algorithm/two_shot.hpp), and 3 does not divide 2^32, so
// the round number mod 3 would repeat a slot where the counter wraps.
//
// Each region starts on a 256-byte boundary.
#pragma once
#include <cstddef>
#include <cstdint>
#include "../codec/codec.hpp"
#include "../config.hpp"

namespace qreduce {

inline constexpr int max_world = 8;
inline constexpr int block_threads = 256;  // one codec tile (2048 values, 8 per thread) per pass
inline constexpr int ring_slots = 3;  // two-shot rounds a block keeps in flight per phase
// Two-shot blocks per multiprocessor for `world` ranks: the default grid, and the occupancy the
// kernels of that world size are compiled for (__launch_bounds__; on CDNA the second argument asks
// for as many waves per SIMD). The codecs' arithmetic waits on its own dependency chains and needs
// resident warps: at 2 ranks, 8 blocks (32 registers a thread, a full multiprocessor of 2048
// threads) with one tile a step in flight made, on 2x H200 against 4 blocks with two, INT4 8% and
// INT6 13% faster at 1 GiB and every codec 2-15% faster at 64 MiB (docs/design.md, "Two-shot and
// one-shot"). At 4 and 8 ranks a tile's W - 1 codes need more registers (at 32 the kernels spill
// 150-900 bytes a thread). At 4 ranks the kernels are compiled for 6 blocks (40 registers; FP4 spills
// 40 bytes a thread), of which the 64 MiB workspace holds 5 a multiprocessor on an H100 or H200 (660
// blocks): on 4x H200 against 3 blocks (80 registers) FP8 and INT8 8.5% faster at 1 GiB and 256 MiB,
// INT6 6.5%, INT4M 5%, the 4-bit codecs 1-4%, 4 MiB 2-3% slower; 4 blocks (64 registers) were between
// (docs/results/2026-11-26h-h200x4/occupancy/). At 8 ranks no link measurement has tuned them: 3
// blocks, 80 registers.
constexpr int twoshot_blocks_per_sm(int world) { return world == 2 ? 8 : world == 4 ? 6 : 3; }

struct workspace_config {
  int world = 0;
  int blocks = 0;  // the two-shot's persistent grid: fixed for the communicator's life
  int oneshot_blocks = 0;  // the one-shot's grid, at most `blocks`
  std::size_t round_bytes = 16384;  // two-shot: encoded bytes one block sends per phase per round
  int oneshot_values_per_block = 4096;  // one-shot: values per block (a multiple of 2048)
};

struct workspace_layout {
  workspace_config cfg{};
  std::size_t segment_bytes = 0, oneshot_buffer_bytes = 0;
  std::size_t flags_off = 0, seq_off = 0, abort_off = 0, calls_off = 0, scatter_off = 0, gather_off = 0, oneshot_off = 0, total = 0;

  static constexpr std::size_t align(std::size_t x) { return (x + 255) / 256 * 256; }

  static constexpr workspace_layout make(const workspace_config& c) {
    workspace_layout l{};
    l.cfg = c;
    const auto W = std::size_t(c.world), B = std::size_t(c.blocks);
    l.segment_bytes = c.round_bytes / W / 256 * 256;
    // the values, then a 16-byte header per block; whole 256-byte units, so that every buffer starts
    // on a 256-byte boundary like the regions
    l.oneshot_buffer_bytes = align(std::size_t(c.oneshot_blocks) * (std::size_t(c.oneshot_values_per_block) * 2 + 16));
    l.flags_off = 0;
    l.seq_off = align(l.flags_off + 2 * B * W * 4);
    l.abort_off = align(l.seq_off + 3 * B * 4);
    l.calls_off = align(l.abort_off + 5 * 4);
    l.scatter_off = align(l.calls_off + ring_slots * B * W * 8);
    l.gather_off = align(l.scatter_off + ring_slots * B * (W - 1) * l.segment_bytes);
    l.oneshot_off = align(l.gather_off + ring_slots * B * (W - 1) * l.segment_bytes);
    l.total = align(l.oneshot_off + l.oneshot_bytes());
    return l;
  }
  // Bytes each two-shot block adds to the workspace: how the communicator fits its grid into a budget.
  static constexpr std::size_t bytes_per_block(const workspace_config& c) {
    return 2 * std::size_t(ring_slots) * std::size_t(c.world - 1) * (c.round_bytes / std::size_t(c.world) / 256 * 256) +
           2 * std::size_t(c.world) * 4 + 3 * 4 + std::size_t(ring_slots) * std::size_t(c.world) * 8;  // its slots, flags, counters, call words
  }
  // Bytes of the one-shot slots (both parities).
  QR_HOST_DEVICE constexpr std::size_t oneshot_bytes() const { return 2 * std::size_t(cfg.world) * oneshot_buffer_bytes; }
  // Largest message (in values) the one-shot takes.
  constexpr std::size_t one_shot_max_values() const { return std::size_t(cfg.oneshot_blocks) * cfg.oneshot_values_per_block; }
  // Codec tiles per segment in one two-shot round: a segment slot holds this many tiles laid out
  // tile_stride bytes apart (a codec's codec::slot_tile_bytes).
  constexpr int max_tiles_per_segment(std::size_t tile_stride) const { return int(segment_bytes / tile_stride); }
};

// Why a kernel gave up.
enum class fault : std::uint32_t {
  timeout = 1,  // a peer's flag did not reach the round in time
  desync = 2,  // a peer's flag ran further ahead than any matching sequence of calls allows
  aborted = 3,  // a peer gave up and raised this rank's abort word
  bad_launch = 4,  // a kernel ran an algorithm with a grid or a slot use its workspace does not hold
  call_mismatch = 5,  // a peer's call signature is unlike this rank's (different counts, types, codecs, ...)
  host_abort = 6,  // the host of a rank called communicator::abort()
};

// The abort word a rank raises on every rank when it gives up: who gave up, on whom, and why.
QR_HOST_DEVICE QR_FORCEINLINE std::uint32_t abort_value(int reporter, int culprit, std::uint32_t cause) {
  return (std::uint32_t(reporter) + 1u) | ((std::uint32_t(culprit) + 1u) << 8) | (cause << 16);
}

// Written by the first block of a rank that gives up; read by the host. Lives in host-mapped memory.
struct error_record {
  std::uint32_t status;  // 0: fine, 2: being written, 1: written
  std::uint32_t reason;  // a fault
  std::uint32_t peer;  // the rank it waited for (timeout, desync) or that aborted (aborted)
  std::uint32_t phase;  // what was waited for: 0 two-shot scatter flags, 1 two-shot gather flags, 2 one-shot data
  std::uint32_t block;
  std::uint32_t seq;  // the round (per-block sequence number) it waited for
  std::uint32_t seen;  // the flag's value when it gave up (the peer's last round)
  std::uint32_t culprit;  // the rank at the root: `peer`, or for `aborted` the one the aborting peer gave up on
  std::uint32_t cause;  // the fault at the root: `reason`, or for `aborted` the aborting peer's reason
  std::uint32_t finder;  // call_mismatch at the root: the rank that compared the signatures
  std::uint32_t calls[4];  // and the two signatures (low, high words): the finder's call, then `culprit`'s
};

// What a kernel needs, passed by value.
struct device_handle {
  std::byte* peer[max_world];  // each rank's workspace as mapped in this process (peer[rank] is ours)
  error_record* err;  // device-side address of the host-mapped error record
  workspace_layout layout;
  std::uint64_t timeout_ns;
  int rank;

  QR_HOST_DEVICE std::uint32_t* flag(int r, int phase, int block, int src) const {
    const auto W = layout.cfg.world;
    return reinterpret_cast<std::uint32_t*>(peer[r] + layout.flags_off) + (std::size_t(phase) * layout.cfg.blocks + block) * W + src;
  }
  // This rank's counters of `block`: two-shot rounds, one-shot calls, the two-shot's ring position.
  QR_HOST_DEVICE std::uint32_t* seq(int block) const { return reinterpret_cast<std::uint32_t*>(peer[rank] + layout.seq_off) + block; }
  QR_HOST_DEVICE std::uint32_t* oneshot_seq(int block) const {
    return reinterpret_cast<std::uint32_t*>(peer[rank] + layout.seq_off) + layout.cfg.blocks + block;
  }
  QR_HOST_DEVICE std::uint32_t* ring_position(int block) const {
    return reinterpret_cast<std::uint32_t*>(peer[rank] + layout.seq_off) + 2 * layout.cfg.blocks + block;
  }
  QR_HOST_DEVICE std::uint32_t* abort_word(int r) const { return reinterpret_cast<std::uint32_t*>(peer[r] + layout.abort_off); }
  // The two call signatures (4 words) a rank that found a call mismatch stores on rank r before
  // raising its abort word.
  QR_HOST_DEVICE std::uint32_t* abort_calls(int r) const { return abort_word(r) + 1; }
  // Rank r's call signature words (2) of ring position `ring` of `block`, stored by `src`.
  QR_HOST_DEVICE std::uint32_t* call_words(int r, int ring, int block, int src) const {
    return reinterpret_cast<std::uint32_t*>(peer[r] + layout.calls_off) +
           ((std::size_t(ring) * layout.cfg.blocks + block) * layout.cfg.world + src) * 2;
  }
  // Rank r's slot in ring position `ring` of `block`, written by `src` (a peer: src != r). The slots of
  // a block's ring position hold its peers in the order r + 1, r + 2, ... (mod world).
  QR_HOST_DEVICE std::byte* scatter_slot(int r, int ring, int block, int src) const {
    return peer[r] + layout.scatter_off + slot_index(r, ring, block, src) * layout.segment_bytes;
  }
  QR_HOST_DEVICE std::byte* gather_slot(int r, int ring, int block, int src) const {
    return peer[r] + layout.gather_off + slot_index(r, ring, block, src) * layout.segment_bytes;
  }
  QR_HOST_DEVICE std::size_t slot_index(int r, int ring, int block, int src) const {
    const int W = layout.cfg.world, o = src > r ? src - r - 1 : src - r - 1 + W;
    return (std::size_t(ring) * layout.cfg.blocks + block) * std::size_t(W - 1) + std::size_t(o);
  }
  // Rank r's one-shot buffer of `parity` written by `src`: value i of a call at byte 2i.
  QR_HOST_DEVICE std::byte* oneshot_buffer(int r, int parity, int src) const {
    return peer[r] + layout.oneshot_off + (std::size_t(parity) * layout.cfg.world + src) * layout.oneshot_buffer_bytes;
  }
  // The 16-byte header of `block` in that buffer, after the values: the call's signature.
  QR_HOST_DEVICE std::byte* oneshot_header(int r, int parity, int src, int block) const {
    return oneshot_buffer(r, parity, src) + std::size_t(layout.cfg.oneshot_blocks) * std::size_t(layout.cfg.oneshot_values_per_block) * 2 +
           16 * std::size_t(block);
  }
};

}  // namespace qreduce
