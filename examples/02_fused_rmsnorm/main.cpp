// 02_fused_rmsnorm: all-reduce fused with residual add and RMSNorm, as after a row-parallel linear:
//   residual = allreduce(x) + residual;  y = rmsnorm(residual) * weight
// One kernel instead of an all-reduce plus an add+norm kernel; then the same with y quantized to FP8
// per token for an FP8 GEMM (one kernel instead of three). Run one process per rank:
//   QREDUCE_RANK=0 QREDUCE_WORLD=2 ./02_fused_rmsnorm & QREDUCE_RANK=1 QREDUCE_WORLD=2 ./02_fused_rmsnorm
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "qreduce/qreduce.hpp"
#include "../common/rank.hpp"

int main() {
  const example_rank me = example_setup("02_fused_rmsnorm");
  const int rank = me.rank, world = me.world;
  namespace rt = qreduce::rt;
  using qreduce::bf16;
  try {
    qreduce::socket_bootstrap bs(rank, world, "example-02");
    qreduce::communicator_for<qreduce::codec::fp8> comm(bs);

    const std::size_t tokens = 32, hidden = 5120, n = tokens * hidden;
    // every rank holds x = 1 (its partial sum), the same residual = 1 and weight = 2
    std::vector<bf16> ones(n, qreduce::numeric::to_bf16(1.0f)), twos(hidden, qreduce::numeric::to_bf16(2.0f));
    auto* x = static_cast<bf16*>(rt::malloc_device(n * sizeof(bf16)));
    auto* residual = static_cast<bf16*>(rt::malloc_device(n * sizeof(bf16)));
    auto* weight = static_cast<bf16*>(rt::malloc_device(hidden * sizeof(bf16)));
    rt::memcpy_sync(x, ones.data(), n * sizeof(bf16));
    rt::memcpy_sync(residual, ones.data(), n * sizeof(bf16));
    rt::memcpy_sync(weight, twos.data(), hidden * sizeof(bf16));

    // residual updated in place, y written over x
    comm.all_reduce_rmsnorm(x, residual, weight, residual, x, tokens, hidden, 1e-6f, qreduce::dtype::bf16, {.codec = qreduce::codec_kind::fp8});
    rt::device_synchronize();
    comm.check();

    std::vector<bf16> r(n), y(n);
    rt::memcpy_sync(r.data(), residual, n * sizeof(bf16));
    rt::memcpy_sync(y.data(), x, n * sizeof(bf16));
    // residual = world + 1 everywhere, so each row normalizes to 1, times the weight 2
    std::printf("rank %d: residual[0] = %g (expected %d), y[0] = %g (expected 2)\n", rank, qreduce::numeric::to_float(r[0]), world + 1,
                qreduce::numeric::to_float(y[0]));

    // again, y as FP8 E4M3 codes with one f32 scale per token (epilogue/outputs.hpp)
    auto* q = static_cast<std::uint8_t*>(rt::malloc_device(n));
    auto* scale = static_cast<float*>(rt::malloc_device(tokens * sizeof(float)));
    rt::memcpy_sync(x, ones.data(), n * sizeof(bf16));
    comm.all_reduce_rmsnorm(x, residual, weight, residual, qreduce::epilogue::out_fp8_per_token{q, scale}, tokens, hidden, 1e-6f,
                            qreduce::dtype::bf16, {.codec = qreduce::codec_kind::fp8});
    rt::device_synchronize();
    comm.check();
    std::vector<std::uint8_t> codes(n);
    float s0 = 0;
    rt::memcpy_sync(codes.data(), q, n);
    rt::memcpy_sync(&s0, scale, sizeof s0);
    std::printf("rank %d: fp8 y[0] = code 0x%02x x scale %g = %g (expected 2)\n", rank, codes[0], s0,
                qreduce::numeric::e4m3fn::decode_soft(codes[0]) * s0);
    rt::free_device(q);
    rt::free_device(scale);
    rt::free_device(x);
    rt::free_device(residual);
    rt::free_device(weight);
  } catch (const qreduce::error& e) {
    std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
    return 1;
  }
  return 0;
}
