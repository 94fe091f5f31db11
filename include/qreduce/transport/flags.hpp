// qreduce/transport/flags.hpp: the flag protocol of the algorithms, on a transport's verbs.
//
// Memory-ordering contract (both backends):
//   * A sender makes its data stores to a peer, then the block synchronizes (block_sync), then one
//     thread per destination raises that destination's flag with Transport::signal (release at
//     system scope). Release is cumulative: it orders every store the block made before the barrier,
//     across NVLink / XGMI / PCIe, and across processes mapping the memory through IPC.
//   * A receiver's thread waits with Transport::observe (acquire at system scope) until the flag
//     reaches the round's number, then the block synchronizes, then every thread reads the data.
//     Acquire also drops stale cached copies, so lines read in an earlier round are fetched again.
//   * Flags are per-block round numbers that only grow (compared modulo 2^32), held in device
//     memory, so a captured graph replays with fresh values and never needs a reset between calls.
//   * Every wait is bounded (h.timeout_ns); the first block to give up records which peer it waited
//     for, in which phase, and what it saw, and every other block of the rank gives up after it.
#pragma once
#include <cstdint>
#include "../device/atomic.hpp"
#include "../device/intrinsics.hpp"
#include "workspace.hpp"

#if !QR_BACKEND_HOST
namespace qreduce::device {

// Records a timeout (the first one wins) in the host-visible error record.
QR_DEVICE inline void record_timeout(const device_handle& h, int peer, int phase, std::uint32_t seq, std::uint32_t seen) {
  if (atomic_cas<scope::system>(&h.err->status, 0u, 2u)) {
    h.err->peer = std::uint32_t(peer);
    h.err->phase = std::uint32_t(phase);
    h.err->block = blockIdx.x;
    h.err->seq = seq;
    h.err->seen = seen;
    atomic_store<order::release, scope::system>(&h.err->status, 1u);
  }
}

// Spins until ready() (which loads with acquire semantics) holds. Bounded: returns false when
// h.timeout_ns passes (after recording `peer`, `phase` and what was last seen) or when another block
// of this rank already gave up.
template <class Ready>
QR_DEVICE inline bool wait_bounded(const device_handle& h, Ready ready, int peer, int phase, std::uint32_t seq) {
  std::uint32_t seen = 0;
  if (ready(seen)) return true;
  const std::uint64_t start = now_ns();
  for (std::uint32_t spins = 1;; ++spins) {
    if (ready(seen)) return true;
    if ((spins & 1023u) == 0u) {
      if (atomic_load<order::relaxed, scope::system>(&h.err->status) != 0u) return false;
      if (now_ns() - start > h.timeout_ns) {
        record_timeout(h, peer, phase, seq, seen);
        return false;
      }
    }
  }
}

// Waits until *flag reaches seq (modulo 2^32), observed through the transport (acquire).
template <class Transport>
QR_DEVICE inline bool wait_flag(const device_handle& h, const std::uint32_t* flag, std::uint32_t seq, int peer, int phase) {
  return wait_bounded(
      h,
      [&](std::uint32_t& seen) {
        seen = Transport::observe(flag);
        return static_cast<std::int32_t>(seen - seq) >= 0;
      },
      peer, phase, seq);
}

// Raises this block's flag for `phase` to `seq` on every rank (release, after the block's data
// stores: the block synchronizes first); every thread calls it.
template <class Transport, int W>
QR_DEVICE inline void signal_flags(const device_handle& h, int phase, std::uint32_t seq) {
  const int t = threadIdx.x;
  block_sync();
  if (t < W) Transport::signal(h.flag(t, phase, blockIdx.x, h.rank), seq);
}

// Waits until every rank's flag for `phase` of this block reached `seq` (acquire); every thread
// calls it and reads the peers' data only after it returns true. Returns false if a peer did not
// arrive in time (recorded) or another block of this rank gave up; the value is the same on every
// thread of the block.
template <class Transport, int W>
QR_DEVICE inline bool wait_flags(const device_handle& h, int phase, std::uint32_t seq) {
  __shared__ int give_up;
  const int t = threadIdx.x;
  if (t == 0) give_up = 0;
  block_sync();
  if (t < W && !wait_flag<Transport>(h, h.flag(h.rank, phase, blockIdx.x, t), seq, t, phase)) give_up = 1;
  block_sync();
  const bool ok = give_up == 0;
  block_sync();  // nobody resets give_up (next call) before everyone read it
  return ok;
}

// The flag protocol of one phase: signal, then wait for every rank's flag.
template <class Transport, int W>
QR_DEVICE inline bool exchange_flags(const device_handle& h, int phase, std::uint32_t seq) {
  signal_flags<Transport, W>(h, phase, seq);
  return wait_flags<Transport, W>(h, phase, seq);
}

// Barrier over this rank's grid (all its blocks are resident: the grid never exceeds the device's
// multiprocessors). Arrivals count up with acquire-release atomics; the last block resets the count
// and releases a new generation; the state lives in the workspace, so graphs replay it. Every thread
// of the block calls it; returns false on timeout.
QR_DEVICE inline bool grid_barrier(const device_handle& h) {
  __shared__ int ok;
  block_sync();
  if (threadIdx.x == 0) {
    std::uint32_t* count = h.grid_barrier();
    std::uint32_t* gen = count + 1;
    const std::uint32_t g = atomic_load<order::acquire, scope::gpu>(gen);
    ok = 1;
    if (atomic_fetch_add<order::acq_rel, scope::gpu>(count, 1u) == gridDim.x - 1) {
      *count = 0u;
      atomic_store<order::release, scope::gpu>(gen, g + 1u);
    } else {
      ok = wait_bounded(
          h,
          [&](std::uint32_t& seen) {
            seen = atomic_load<order::acquire, scope::gpu>(gen);
            return seen != g;
          },
          h.rank, 2, g + 1u);
    }
  }
  block_sync();
  return ok != 0;
}

}  // namespace qreduce::device
#endif
