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
//   * Every wait is bounded (h.timeout_ns); the first block to give up records why (timeout, a
//     peer's flag too far ahead, a peer's call unlike this rank's, or a peer's abort), which peer, in
//     which phase, and what it saw, and raises every peer's abort word; every other block of the
//     rank gives up after it, and every later kernel of this rank or of its peers stops at entry,
//     before any remote write.
//   * A call's signature (algorithm/signature.hpp) travels with the scatter flag of each round: the
//     sender stores it into the receiver's call words of the round's ring slot before the release
//     that raises the flag; the receiver starts reading it after the acquire that saw the flag
//     (fetch_calls: asynchronously where the target can, so no load latency is added to the round)
//     and compares it before it raises its next flag (signal_flags with the fetched words).
#pragma once
#include <cstdint>
#include "../device/atomic.hpp"
#include "../device/intrinsics.hpp"
#include "workspace.hpp"

#if !QR_BACKEND_HOST
namespace qreduce::device {

// The two signatures of a call mismatch as the error record and the abort words carry them: the
// finder's call (low, high word), then the culprit's.
struct call_pair {
  std::uint32_t w[4] = {};
  QR_DEVICE static call_pair of(std::uint64_t finder, std::uint64_t culprit) {
    return {{std::uint32_t(finder), std::uint32_t(finder >> 32), std::uint32_t(culprit), std::uint32_t(culprit >> 32)}};
  }
};

// Records why this rank gives up (the first block to give up wins), then raises every rank's abort
// word, its own included, so that every later kernel of any rank stops at entry, before writing
// anything, and every block still waiting gives up. A call mismatch's signatures (`calls`, with the
// rank that compared them, `finder`) go into the record and, before the abort word, to every rank.
QR_DEVICE inline void record_fault(const device_handle& h, fault why, int peer, int phase, std::uint32_t seq, std::uint32_t seen, int culprit,
                                   std::uint32_t cause, int finder = -1, const call_pair& calls = {}) {
  if (atomic_cas<scope::system>(&h.err->status, 0u, 2u)) {
    h.err->reason = std::uint32_t(why);
    h.err->peer = std::uint32_t(peer);
    h.err->phase = std::uint32_t(phase);
    h.err->block = blockIdx.x;
    h.err->seq = seq;
    h.err->seen = seen;
    h.err->culprit = std::uint32_t(culprit);
    h.err->cause = cause;
    h.err->finder = std::uint32_t(finder);
    for (int k = 0; k < 4; ++k) h.err->calls[k] = calls.w[k];
    atomic_store<order::release, scope::system>(&h.err->status, 1u);
    const bool mismatch = fault(cause) == fault::call_mismatch && why != fault::aborted;
    for (int p = 0; p < h.layout.cfg.world; ++p) {
      if (mismatch)
        for (int k = 0; k < 4; ++k) atomic_store<order::relaxed, scope::system>(h.abort_calls(p) + k, calls.w[k]);
      atomic_store<order::release, scope::system>(h.abort_word(p), abort_value(h.rank, culprit, cause));
    }
  }
}
QR_DEVICE inline void record_fault(const device_handle& h, fault why, int peer, int phase, std::uint32_t seq, std::uint32_t seen) {
  record_fault(h, why, peer, phase, seq, seen, peer, std::uint32_t(why));
}
// Records that `peer`'s call (theirs) is unlike this rank's (mine), this rank being the finder.
QR_DEVICE inline void record_call_mismatch(const device_handle& h, int peer, int phase, std::uint32_t seq, std::uint64_t mine, std::uint64_t theirs) {
  record_fault(h, fault::call_mismatch, peer, phase, seq, std::uint32_t(theirs), peer, std::uint32_t(fault::call_mismatch), h.rank,
               call_pair::of(mine, theirs));
}

// Whether this rank may go on: its abort word is down. Read by one thread. The word is in device
// memory (the host-mapped error record is only written, and read by the host): a kernel's entry
// check costs one load. A word raised by a peer is recorded here as `aborted`.
QR_DEVICE inline bool healthy(const device_handle& h) {
  const std::uint32_t a = atomic_load<order::acquire, scope::system>(h.abort_word(h.rank));
  if (a == 0u) return true;
  const int reporter = int(a & 0xffu) - 1;
  if (reporter != h.rank) {
    call_pair calls;  // a call mismatch: the signatures the reporter stored before raising the word
    if (fault(a >> 16) == fault::call_mismatch)
      for (int k = 0; k < 4; ++k) calls.w[k] = atomic_load<order::relaxed, scope::system>(h.abort_calls(h.rank) + k);
    record_fault(h, fault::aborted, reporter, 0, 0, 0, int((a >> 8) & 0xffu) - 1, a >> 16, reporter, calls);
  }
  return false;
}

// The verdicts of a block's waits (wait_flags), a word per phase (scatter_phase, gather_phase): 0
// until a wait of that phase failed. Cleared by block_may_start; a wait only ever sets its word,
// after which the block stops.
QR_DEVICE QR_FORCEINLINE int* wait_verdicts() {
  __shared__ int words[2];
  return words;
}

// Every thread of the block calls this at kernel entry (and a kernel that runs several all-reduces,
// before each), before any remote write; a block that gets false returns at once. So after a rank
// gave up, neither its later calls (a graph replays them without the host) nor its peers' write into
// anyone's slots or raise a flag. It clears the wait verdicts between its two barriers: after every
// thread has left the all-reduce before (and read its last verdict), before any wait of this one.
QR_DEVICE inline bool block_may_start(const device_handle& h) {
  __shared__ int go;
  if (threadIdx.x == 0) go = healthy(h) ? 1 : 0;
  block_sync();
  const bool ok = go != 0;
  if (threadIdx.x == 0) wait_verdicts()[0] = wait_verdicts()[1] = 0;
  block_sync();
  return ok;
}

// Spins until ready() (which loads with acquire semantics) returns 1. Bounded: returns false when
// ready() returns -1 (a fault it recorded), when h.timeout_ns passes (recorded, with `peer` as it is
// then, `phase` and what was last seen: ready() may update `peer` to the rank it still waits for), or
// when this rank stopped (another block gave up, or a peer aborted it).
template <class Ready>
QR_DEVICE inline bool wait_bounded(const device_handle& h, Ready ready, const int& peer, int phase, std::uint32_t seq) {
  std::uint32_t seen = 0;
  int r = ready(seen);
  if (r != 0) return r > 0;
  const std::uint64_t start = now_ns();
  for (std::uint32_t spins = 1;; ++spins) {
    if ((r = ready(seen)) != 0) return r > 0;
    if ((spins & 1023u) == 0u) {
      if (!healthy(h)) return false;
      if (now_ns() - start > h.timeout_ns) {
        record_fault(h, fault::timeout, peer, phase, seq, seen);
        return false;
      }
    }
  }
}

// How far a peer's flag can legitimately run ahead of the round a block waits for: one round in the
// two-shot's order of steps (two_shot.hpp), two allowed (the ring's depth less one). Further ahead,
// the ranks' calls do not match.
inline constexpr std::uint32_t max_flag_lead = ring_slots - 1;

// The flag arrays (workspace.hpp), and the phase number an error record gives the one-shot's data
// (which carries its own flag).
inline constexpr int scatter_phase = 0, gather_phase = 1, oneshot_phase = 2;

// Waits until *flag reaches seq (modulo 2^32), observed through the transport (acquire). A flag
// more than max_flag_lead rounds ahead is a desync: recorded, and the wait fails.
template <class Transport>
QR_DEVICE inline bool wait_flag(const device_handle& h, const std::uint32_t* flag, std::uint32_t seq, int peer, int phase) {
  return wait_bounded(
      h,
      [&](std::uint32_t& seen) {
        seen = Transport::observe(flag);
        const std::int32_t lead = static_cast<std::int32_t>(seen - seq);
        if (lead < 0) return 0;
        if (lead <= std::int32_t(max_flag_lead)) return 1;
        record_fault(h, fault::desync, peer, phase, seq, seen);
        return -1;
      },
      peer, phase, seq);
}

// Raises this block's flag for `phase` to `seq` on every rank (release, after the block's data
// stores: the block synchronizes first); every thread calls it. Its barrier is unconditional, as are
// wait_flags': the two-shot reuses one shared-memory image of scales across its steps on the strength
// of them (algorithm/two_shot.hpp, scale_image). With ring >= 0, the call's signature
// is stored into every rank's call words of that ring slot first, and the same release publishes it.
// With `fetched` (the peers' signatures fetch_calls read), each must be `call` first: the first unlike
// one is recorded (fault::call_mismatch, both signatures), no flag is raised, and every thread gets
// false.
template <class Transport, int W>
QR_DEVICE inline bool signal_flags(const device_handle& h, int phase, std::uint32_t seq, int ring = -1, std::uint64_t call = 0,
                                   const std::uint64_t* fetched = nullptr) {
  __shared__ int unlike[W];  // thread t's verdict on peer t (each writes its own: no reset needed)
  const int t = threadIdx.x;
  if (fetched != nullptr && t < W) {
    int u = 0;
    if (t != h.rank) {
      wait_async_copies();
      const std::uint64_t theirs = *static_cast<const volatile std::uint64_t*>(fetched + t);
      if (theirs != call) {
        record_call_mismatch(h, t, scatter_phase, seq, call, theirs);
        u = 1;
      }
    }
    unlike[t] = u;
  }
  block_sync();
  bool ok = true;
  if (fetched != nullptr)
    for (int s = 0; s < W; ++s) ok = ok && unlike[s] == 0;
  if (ok && t < W) {
    if (ring >= 0) {
      std::uint32_t* w = h.call_words(t, ring, blockIdx.x, h.rank);
      atomic_store<order::relaxed, scope::system>(w, std::uint32_t(call));
      atomic_store<order::relaxed, scope::system>(w + 1, std::uint32_t(call >> 32));
    }
    Transport::signal(h.flag(t, phase, blockIdx.x, h.rank), seq);
  }
  return ok;
}

// Starts reading each peer's call signature of ring slot `ring` into got[peer] (shared memory),
// right after wait_flags saw the peers' flags: thread t < W, which acquired peer t's flag, reads peer
// t's words (copy8_async: no wait where the target copies asynchronously; signal_flags waits).
template <int W>
QR_DEVICE inline void fetch_calls(const device_handle& h, int ring, std::uint64_t* got) {
  const int t = threadIdx.x;
  if (t < W && t != h.rank) copy8_async(got + t, h.call_words(h.rank, ring, blockIdx.x, t));
}

// Waits until every rank's flag for `phase` (scatter_phase or gather_phase) of this block reached
// `seq` (acquire); every thread calls it, after block_may_start, and reads the peers' data only after
// it returns true. Returns
// false if a peer did not arrive in time (recorded) or another block of this rank gave up; the value
// is the same on every thread of the block. A block's consecutive waits alternate between the two
// phases (the two-shot's do), so that one barrier a wait is enough: the waiting threads set their
// phase's word only on a failure, and a wait writes a word only after every thread passed the barrier
// of the wait before it, of the other phase, and so had read the word (three barriers a wait with
// one shared word, which had to be reset: at 2 ranks 4 of the 10 barriers of a two-shot round).
template <class Transport, int W>
QR_DEVICE inline bool wait_flags(const device_handle& h, int phase, std::uint32_t seq) {
  const int t = threadIdx.x;
  if (t < W && !wait_flag<Transport>(h, h.flag(h.rank, phase, blockIdx.x, t), seq, t, phase)) wait_verdicts()[phase] = 1;
  block_sync();
  return wait_verdicts()[phase] == 0;
}

}  // namespace qreduce::device
#endif
