// 01_allreduce: the shortest complete qreduce program. Run one process per rank:
//   QREDUCE_RANK=0 QREDUCE_WORLD=2 ./01_allreduce & QREDUCE_RANK=1 QREDUCE_WORLD=2 ./01_allreduce
// Each rank fills a bf16 tensor with its rank number + 1 and all-reduces it with the FP4 codec;
// every rank then holds 1 + 2 + ... + world in every element, to within FP4's error (the scale is
// rounded up, so a group's largest value can come back up to 0.8% larger per quantization).
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "qreduce/qreduce.hpp"
#include "../common/rank.hpp"

int main() {
  const example_rank me = example_setup("01_allreduce");
  const int rank = me.rank, world = me.world;
  namespace rt = qreduce::rt;
  try {
    qreduce::socket_bootstrap bs(rank, world, "example-01");  // same-user processes on this host
    qreduce::communicator_for<qreduce::codec::fp4> comm(bs);  // the fp4 kernels only

    const std::size_t n = 1 << 20;
    std::vector<qreduce::bf16> host(n, qreduce::numeric::to_bf16(float(rank + 1)));
    auto* x = static_cast<qreduce::bf16*>(rt::malloc_device(n * sizeof(qreduce::bf16)));
    rt::memcpy_sync(x, host.data(), n * sizeof(qreduce::bf16));

    comm.all_reduce(x, x, n, {.codec = qreduce::codec_kind::fp4});  // in place, default stream
    rt::device_synchronize();
    comm.check();

    rt::memcpy_sync(host.data(), x, n * sizeof(qreduce::bf16));
    std::printf("rank %d: x[0] = %g (expected about %d)\n", rank, qreduce::numeric::to_float(host[0]), world * (world + 1) / 2);
    rt::free_device(x);
  } catch (const qreduce::error& e) {
    std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
    return 1;
  }
  return 0;
}
