// 03_custom_epilogue: your own epilogue inside qreduce's all-reduce, and qreduce's device API in
// your own kernel.
//   1. `bias_gelu` receives the f32 sums of 8 values at a time and writes gelu(sum + bias): the
//      all-reduce's output never makes a round trip through memory before the activation.
//   2. `compress_kernel` uses the device API (qreduce::device::encode_lane / store_lane) to write a
//      tile it has just computed in the fp8 wire format, e.g. to stage it for a later exchange.
//   3. `my_all_reduce` is your own kernel that runs qreduce's two-shot all-reduce as a device
//      function (qreduce::algorithm::two_shot), on the communicator's workspace, with the epilogue of
//      step 1: the place to add work before or after it in one launch.
// Run one process per rank:
//   QREDUCE_RANK=0 QREDUCE_WORLD=2 ./03_custom_epilogue & QREDUCE_RANK=1 QREDUCE_WORLD=2 ./03_custom_epilogue
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "qreduce/qreduce.hpp"
#include "../common/rank.hpp"

using qreduce::f16;

struct bias_gelu {
  const f16* bias;
  std::size_t hidden;
  __device__ void operator()(f16* out, std::size_t n, std::size_t i, const float (&v)[8]) const {
    float y[8];
    for (int j = 0; j < 8; ++j) {
      const float b = i + j < n ? qreduce::numeric::to_float(bias[(i + j) % hidden]) : 0.0f;
      const float t = v[j] + b;
      y[j] = 0.5f * t * (1.0f + erff(t * 0.70710678f));
    }
    qreduce::device::store8(out, n, i, y);
  }
};

// One block of 256 threads per 2048-value tile: compute, then encode in the fp8 wire format.
__global__ void compress_kernel(const f16* in, std::size_t n, std::byte* out) {
  namespace qc = qreduce::codec;
  float x[8];
  qreduce::device::load8(in, n, blockIdx.x * std::size_t(qc::tile_values) + 8 * threadIdx.x, x);
  for (float& v : x) v *= 2.0f;  // "just computed"
  qreduce::device::store_lane<qc::fp8>(out + blockIdx.x * std::size_t(qc::tile_bytes<qc::fp8>), int(threadIdx.x),
                                       qreduce::device::encode_lane<qc::fp8, f16>(x));
}

// The two-shot body in a kernel of your own. Launch it with the plan's grid (every block resident:
// the launch bounds keep the registers the communicator's own kernels use) on the stream of the
// communicator's other calls; every rank launches it with the same plan.
template <int W>
__global__ void __launch_bounds__(qreduce::block_threads, qreduce::twoshot_blocks_per_sm(W))
    my_all_reduce(qreduce::device_handle h, const f16* in, f16* out, std::size_t n, int tiles_per_segment, bias_gelu ep) {
  qreduce::algorithm::two_shot<qreduce::transport::default_transport, qreduce::codec::int8, f16, W>(h, in, out, n, tiles_per_segment,
                                                                                                    /*rotate=*/false,  // int8 rotates anyway
                                                                                                    ep);
}

int main() {
  const example_rank me = example_setup("03_custom_epilogue");
  const int rank = me.rank, world = me.world;
  namespace rt = qreduce::rt;
  try {
    qreduce::socket_bootstrap bs(rank, world, "example-03");
    qreduce::communicator_for<qreduce::codec::int8> comm(bs);

    const std::size_t hidden = 4096, n = 8 * hidden;
    std::vector<f16> x(n, qreduce::numeric::to_f16(0.5f)), bias(hidden, qreduce::numeric::to_f16(-0.5f));
    auto* dx = static_cast<f16*>(rt::malloc_device(n * sizeof(f16)));
    auto* dbias = static_cast<f16*>(rt::malloc_device(hidden * sizeof(f16)));
    rt::memcpy_sync(dx, x.data(), n * sizeof(f16));
    rt::memcpy_sync(dbias, bias.data(), hidden * sizeof(f16));

    comm.all_reduce_with(dx, dx, n, bias_gelu{dbias, hidden}, {.codec = qreduce::codec_kind::int8});
    rt::device_synchronize();
    comm.check();
    rt::memcpy_sync(x.data(), dx, n * sizeof(f16));
    const float t = 0.5f * float(world) - 0.5f;
    std::printf("rank %d: gelu(sum + bias) = %g (expected %g)\n", rank, qreduce::numeric::to_float(x[0]),
                0.5f * t * (1.0f + std::erf(t / std::sqrt(2.0f))));

    // 3. the same all-reduce from a kernel of our own: a fresh input, the same epilogue
    rt::memcpy_sync(dx, std::vector<f16>(n, qreduce::numeric::to_f16(0.5f)).data(), n * sizeof(f16));
    const auto plan = qreduce::algorithm::plan_two_shot<qreduce::codec::int8>(comm.handle().layout, n);
    const auto launch = [&](auto kernel) {
      kernel<<<unsigned(plan.blocks), qreduce::block_threads>>>(comm.handle(), dx, dx, n, plan.tiles_per_segment, bias_gelu{dbias, hidden});
    };
    if (world == 2) launch(my_all_reduce<2>);
    else if (world == 4) launch(my_all_reduce<4>);
    else launch(my_all_reduce<8>);
    rt::check_launch("my_all_reduce");
    rt::device_synchronize();
    comm.check();
    f16 first{};
    rt::memcpy_sync(&first, dx, sizeof first);
    std::printf("rank %d: from my_all_reduce: %g (the same)\n", rank, qreduce::numeric::to_float(first));
    if (first.bits != x[0].bits) {
      std::fprintf(stderr, "rank %d: my_all_reduce differs from all_reduce_with\n", rank);
      return 1;
    }

    auto* enc = static_cast<std::byte*>(rt::malloc_device(qreduce::codec::encoded_bytes<qreduce::codec::fp8>(n)));
    compress_kernel<<<unsigned(n / qreduce::codec::tile_values), qreduce::block_threads>>>(dx, n, enc);
    rt::check_launch("compress_kernel");
    rt::device_synchronize();
    std::printf("rank %d: compressed %zu values into %zu bytes of fp8 tiles\n", rank, n, qreduce::codec::encoded_bytes<qreduce::codec::fp8>(n));
    rt::free_device(enc);
    rt::free_device(dx);
    rt::free_device(dbias);
  } catch (const qreduce::error& e) {
    std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
    return 1;
  }
  return 0;
}
