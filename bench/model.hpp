// bench/model.hpp: the performance model's limit for a measured row, from the machine's own
// bandwidths (measured at the start of the run, see measure_machine in bench.cu).
//
// Per rank, a two-shot all-reduce of S bytes with a codec of ratio c (encoded bytes / input bytes):
//   over the links:   2 c S (W-1)/W  bytes sent (reduce-scatter, then all-gather);
//   through its HBM:  2 S + 4 c S (W-1)/W  bytes (read the input, write the output; its scatter slots
//                     are written by its peers and read once, its gather slots the same, c S (W-1)/W
//                     each: its own segment is neither sent to itself nor gathered from itself).
// NCCL's ring sends 2 S (W-1)/W per rank. The limit is the slower of the two paths; ranks that
// share one GPU share its memory and have no link, so there only the memory term counts, once per
// rank on that GPU.
#pragma once
#include <algorithm>
#include <cstddef>

namespace bench {

struct machine_model {
  double copy_GBps = 0;  // device-local copy, read + write bytes per second
  double link_GBps = 0;  // stores into one peer's memory, every rank at once (per direction)
  int world = 2;
  int ranks_per_gpu = 1;
};

// Lower bound in microseconds for `bytes` with a codec of ratio `c` (1 for unquantized);
// nccl: NCCL's ring, which moves unquantized bytes and whose memory term is about 3 S.
inline double limit_us(const machine_model& m, double bytes, double c, bool nccl = false) {
  const double W = m.world;
  const double link = (nccl ? 2.0 : 2.0 * c) * bytes * (W - 1) / W;
  const double local = nccl ? 3.0 * bytes : 2.0 * bytes + 4.0 * c * bytes * (W - 1) / W;
  const double t_mem = m.ranks_per_gpu * local / (m.copy_GBps * 1e3);
  const double t_link = m.ranks_per_gpu > 1 || m.link_GBps <= 0 ? 0.0 : link / (m.link_GBps * 1e3);
  return std::max(t_mem, t_link);
}

}  // namespace bench
