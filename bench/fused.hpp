// bench/fused.hpp: qreduce_bench --fused: the all-reduce fused with residual add + RMSNorm against
// the all-reduce followed by separate kernels, as an unfused model runs it.
#pragma once
#include <functional>
#include <fstream>
#include "common.hpp"

namespace bench {

// The unfused baseline's second kernel: residual += sum; y = rmsnorm(residual) * weight (one block a row;
// restrict-qualified pointers, as vLLM's fused_add_rms_norm has them, so that the compiler may keep
// several loads in flight across the store of the residual).
template <class T>
__global__ void add_rmsnorm_kernel(const T* __restrict__ sum, T* __restrict__ residual, const T* __restrict__ weight, T* __restrict__ y,
                                   std::size_t hidden, float eps) {
  const std::size_t row = blockIdx.x;
  float ss = 0.0f;
  for (std::size_t k = 8 * threadIdx.x; k < hidden; k += 8 * block_threads) {
    float a[8], r[8];
    device::load8(sum + row * hidden, hidden, k, a);
    device::load8(residual + row * hidden, hidden, k, r);
    for (int j = 0; j < 8; ++j) {
      r[j] += a[j];
      ss += r[j] * r[j];
    }
    device::store8(residual + row * hidden, hidden, k, r);
  }
  ss = device::block_sum(ss);
  const float inv = 1.0f / sqrtf(ss / float(hidden) + eps);
  for (std::size_t k = 8 * threadIdx.x; k < hidden; k += 8 * block_threads) {
    float r[8], g[8];
    device::load8(residual + row * hidden, hidden, k, r);
    device::load8(weight, hidden, k, g);
    for (int j = 0; j < 8; ++j) r[j] = r[j] * inv * g[j];
    device::store8(y + row * hidden, hidden, k, r);
  }
}

// The unfused baseline's third kernel for an FP8 next GEMM: per-token E4M3 quantization of y (one
// block a row), the layout of epilogue::out_fp8_per_token.
__global__ void fp8_quant_kernel(const bf16* __restrict__ y, std::size_t hidden, std::uint8_t* __restrict__ q, float* __restrict__ scale) {
  const std::size_t row = blockIdx.x;
  std::uint32_t am = 0u;
  for (std::size_t k = 8 * threadIdx.x; k < hidden; k += 8 * block_threads) {
    float v[8];
    device::load8(y + row * hidden, hidden, k, v);
    const std::uint32_t a = codec::absmax_bits8(v);
    am = a > am ? a : am;
  }
  const float s = epilogue::detail::fp8_scale(device::block_max(am));
  for (std::size_t k = 8 * threadIdx.x; k < hidden; k += 8 * block_threads) {
    float v[8];
    std::uint32_t w[2];
    device::load8(y + row * hidden, hidden, k, v);
    epilogue::detail::fp8_codes(v, s, w);
    *reinterpret_cast<uint2*>(q + row * hidden + k) = make_uint2(w[0], w[1]);
  }
  if (threadIdx.x == 0) scale[row] = s;
}

double time_us(rank_ctx& x, const options& o, const std::function<void()>& body) {
  for (int i = 0; i < o.warmup; ++i) body();
  std::vector<cudaEvent_t> ev(2 * std::size_t(o.iters));
  for (auto& e : ev) CK(cudaEventCreate(&e));
  for (int i = 0; i < o.iters; ++i) {
    CK(cudaEventRecord(ev[2 * std::size_t(i)], x.s));
    body();
    CK(cudaEventRecord(ev[2 * std::size_t(i) + 1], x.s));
  }
  CK(cudaStreamSynchronize(x.s));
  x.comm->check();
  std::vector<float> ms(static_cast<std::size_t>(o.iters));
  for (int i = 0; i < o.iters; ++i) CK(cudaEventElapsedTime(&ms[std::size_t(i)], ev[2 * std::size_t(i)], ev[2 * std::size_t(i) + 1]));
  for (auto& e : ev) CK(cudaEventDestroy(e));
  const double mine = 1e3 * percentile(ms, 0.5);
  const auto all = gather(x, mine);
  return *std::max_element(all.begin(), all.end());
}

// Token counts up to this many are timed under CUDA graphs too (the decode sizes).
constexpr std::size_t fused_graph_max_tokens = 256;

// Plain all-reduce vs all-reduce fused with residual + RMSNorm vs all-reduce then a separate
// add+RMSNorm kernel, bf16, for decode-sized and prefill-sized token counts at hidden 4096 and 8192;
// and the same with y quantized to FP8 per token for the next GEMM (fused output vs a third kernel).
int fused_bench(rank_ctx& x, const options& o) {
  const std::size_t tokens_list[] = {1, 16, 32, 64, 128, 256, 1024, 4096, 16384};
  const std::size_t hiddens[] = {4096, 8192};
  const std::size_t max_n = 16384 * 8192;
  auto* in = static_cast<bf16*>(rt::malloc_device(max_n * 2));
  auto* out = static_cast<bf16*>(rt::malloc_device(max_n * 2));
  auto* res = static_cast<bf16*>(rt::malloc_device(max_n * 2));
  auto* y = static_cast<bf16*>(rt::malloc_device(max_n * 2));
  auto* w = static_cast<bf16*>(rt::malloc_device(8192 * 2));
  auto* q = static_cast<std::uint8_t*>(rt::malloc_device(max_n));
  auto* qs = static_cast<float*>(rt::malloc_device(16384 * 4));
  fill_kernel<bf16><<<1024, 256, 0, x.s>>>(in, max_n, x.rank, 7);
  fill_kernel<bf16><<<1024, 256, 0, x.s>>>(res, max_n, 0, 8);
  fill_kernel<bf16><<<64, 256, 0, x.s>>>(w, 8192, 0, 9);
  rt::check_launch("fill");
  std::ofstream csv;
  if (x.rank == 0) {
    std::system(("mkdir -p '" + o.out + "'").c_str());
    csv.open(o.out + "/fused_w" + std::to_string(x.world) + ".csv");
    csv << "tokens,hidden,codec,algorithm,plain_us,fused_us,unfused_us,epilogue_cost_us,fused_speedup,fused_fp8_us,unfused_fp8_us,"
           "fused_fp8_speedup,graph_fused_us,graph_unfused_us,graph_fused_speedup,graph_fused_fp8_us,graph_unfused_fp8_us,"
           "graph_fused_fp8_speedup\n";
    std::printf("\n%-7s %-6s %-6s %-8s %10s %10s %11s %10s %8s %10s %11s %8s | %-12s %8s %8s %8s %8s %8s %8s\n", "tokens", "hidden", "codec", "ran",
                "plain_us", "fused_us", "unfused_us", "epilogue", "speedup", "fused+fp8", "unfused+fp8", "speedup", "under graphs:", "fused",
                "unfused", "speedup", "f+fp8", "u+fp8", "speedup");
  }
  for (std::size_t hidden : hiddens)
    for (std::size_t tokens : tokens_list)
      for (codec_kind k : o.codecs) {
        const std::size_t n = tokens * hidden;
        const allreduce_options opts{k, algorithm_kind::automatic, false};
        const char* ran =
            algorithm_name(x.comm->choice(n * 2, k).algorithm == algorithm_kind::one_shot ? algorithm_kind::one_shot : algorithm_kind::two_shot);
        const auto fused_call = [&] { x.comm->all_reduce_rmsnorm(in, res, w, res, y, tokens, hidden, 1e-6f, dtype::bf16, opts, x.s); };
        const auto unfused_call = [&] {
          x.comm->all_reduce(in, out, n, dtype::bf16, opts, x.s);
          add_rmsnorm_kernel<bf16><<<unsigned(tokens), block_threads, 0, x.s>>>(out, res, w, y, hidden, 1e-6f);
        };
        const auto fused8_call = [&] {
          x.comm->all_reduce_rmsnorm(in, res, w, res, epilogue::out_fp8_per_token{q, qs}, tokens, hidden, 1e-6f, dtype::bf16, opts, x.s);
        };
        const auto unfused8_call = [&] {
          unfused_call();
          fp8_quant_kernel<<<unsigned(tokens), block_threads, 0, x.s>>>(y, hidden, q, qs);
        };
        const double plain = time_us(x, o, [&] { x.comm->all_reduce(in, out, n, dtype::bf16, opts, x.s); });
        const double fused = time_us(x, o, fused_call), unfused = time_us(x, o, unfused_call);
        const double fused8 = time_us(x, o, fused8_call), unfused8 = time_us(x, o, unfused8_call);
        double g[4] = {};  // fused, unfused, fused8, unfused8 under graphs
        if (tokens <= fused_graph_max_tokens) {
          g[0] = graph_time_us(x, o, fused_call);
          g[1] = graph_time_us(x, o, unfused_call);
          g[2] = graph_time_us(x, o, fused8_call);
          g[3] = graph_time_us(x, o, unfused8_call);
        }
        const bool graphed = tokens <= fused_graph_max_tokens;
        const double gv[6] = {g[0], g[1], graphed ? g[1] / g[0] : 0.0, g[2], g[3], graphed ? g[3] / g[2] : 0.0};
        if (x.rank == 0) {
          std::printf("%-7zu %-6zu %-6s %-8s %10.1f %10.1f %11.1f %10.1f %8.2f %10.1f %11.1f %8.2f | %-12s", tokens, hidden, codec_name(k), ran,
                      plain, fused, unfused, fused - plain, unfused / fused, fused8, unfused8, unfused8 / fused8, "");
          csv << tokens << "," << hidden << "," << codec_name(k) << "," << ran << "," << plain << "," << fused << "," << unfused << ","
              << fused - plain << "," << unfused / fused << "," << fused8 << "," << unfused8 << "," << unfused8 / fused8;
          for (int j = 0; j < 6; ++j) {  // not timed under graphs: "-" and empty CSV fields
            if (graphed) std::printf(j % 3 == 2 ? " %8.2f" : " %8.1f", gv[j]);
            else std::printf(" %8s", "-");
            csv << ",";
            if (graphed) csv << gv[j];
          }
          std::printf("\n");
          csv << "\n";
          std::fflush(stdout);
        }
      }
  CK(cudaStreamSynchronize(x.s));
  gather(x, x.rank);
  for (void* p : {static_cast<void*>(in), static_cast<void*>(out), static_cast<void*>(res), static_cast<void*>(y), static_cast<void*>(w),
                  static_cast<void*>(q), static_cast<void*>(qs)})
    rt::free_device(p);
  if (x.rank == 0) std::printf("wrote %s/fused_w%d.csv\n", o.out.c_str(), x.world);
  return 0;
}

std::string machine_name(int dev) { return rt::device_name(dev); }

// Stores 16 bytes a thread into `dst` (bytes, a multiple of 16), `reps` times over.
__global__ void store_kernel(uint4* dst, std::size_t words, int reps) {
  const uint4 v = make_uint4(threadIdx.x, blockIdx.x, 1u, 2u);
  for (int r = 0; r < reps; ++r)
    for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < words; i += std::size_t(gridDim.x) * blockDim.x) dst[i] = v;
}

}  // namespace bench
