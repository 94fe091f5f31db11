// bench/common.hpp: what every part of qreduce_bench shares: the communicator it is built with, its
// options, deterministic inputs, a rank's context, timing helpers. Included by bench.cu only (one
// translation unit: the kernels are compiled once).
#pragma once
#include <algorithm>
#include <cstdio>
#include <functional>
#include <ctime>
#include <sstream>
#include <string>
#include <vector>
#include "nccl_loader.hpp"
#include "qreduce/qreduce.hpp"

// The world sizes the benchmark is built for: every size qreduce runs by default. Building with
// -DQREDUCE_BENCH_WORLDS=2 compiles the kernels of 2 ranks only, for quick runs on two GPUs (1.7
// instead of about 4.5 minutes for sm_90 on 2 cores); a run with other ranks then stops at once
// saying which sizes the build has.
#ifndef QREDUCE_BENCH_WORLDS
#define QREDUCE_BENCH_WORLDS 2, 4, 8
#endif

namespace bench {

using namespace qreduce;
using bench_communicator = basic_communicator<transport::default_transport, all_codecs_set, world_set<QREDUCE_BENCH_WORLDS>>;

#define CK(call) rt::check((call), #call)

// Deterministic inputs: rank r's value i, on device and host alike (Box-Muller on hashed uniforms).
QR_HOST_DEVICE inline std::uint32_t hash32(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return std::uint32_t(x);
}
QR_HOST_DEVICE inline float input_value(int rank, std::uint32_t seed, std::size_t i) {
  const std::uint64_t k = (std::uint64_t(seed) << 40) ^ (std::uint64_t(rank) << 56) ^ i;
  const float u1 = (float(hash32(2 * k) >> 8) + 1.0f) * (1.0f / 16777216.0f);
  const float u2 = float(hash32(2 * k + 1) >> 8) * (1.0f / 16777216.0f);
  float g = sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
  if (i % 997 == 13) g *= 20.0f;  // outlier channels
  return g;
}

template <class T>
__global__ void fill_kernel(T* x, std::size_t n, int rank, std::uint32_t seed) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x)
    x[i] = numeric::from_float<T>(input_value(rank, seed, i));
}

// A size in bytes (K/M/G suffixes) or a count, for option `opt`; throws naming the option and value.
std::size_t parse_size(const std::string& opt, const std::string& s, std::uint64_t lo = 1, std::uint64_t hi = std::uint64_t(1) << 40) {
  const auto v = parse_unsigned(s, true);
  if (!v || *v < lo || *v > hi)
    throw std::runtime_error(opt + " " + s + ": expected a size in bytes in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                             "] (K, M, G suffixes allowed)");
  return std::size_t(*v);
}
int parse_count(const std::string& opt, const std::string& s, int lo, int hi) {
  const auto v = parse_unsigned(s);
  if (!v || *v < std::uint64_t(lo) || *v > std::uint64_t(hi))
    throw std::runtime_error(opt + " " + s + ": expected a whole number in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return int(*v);
}
std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');)
    if (!t.empty()) out.push_back(t);
  return out;
}
std::string human(std::size_t b) {
  char buf[32];
  if (b >= (1u << 30)) std::snprintf(buf, sizeof buf, "%zu GiB", b >> 30);
  else if (b >= (1u << 20)) std::snprintf(buf, sizeof buf, "%zu MiB", b >> 20);
  else std::snprintf(buf, sizeof buf, "%zu KiB", b >> 10);
  return buf;
}

struct options {
  int ranks = 0;
  std::vector<std::size_t> sizes;
  std::size_t max_size = std::size_t(1) << 30;
  std::vector<dtype> dtypes = {dtype::f16, dtype::bf16};
  std::vector<codec_kind> codecs = {codec_kind::none, codec_kind::fp8, codec_kind::int8,  codec_kind::int6,
                                    codec_kind::int4, codec_kind::fp4, codec_kind::mxfp4, codec_kind::int4m};
  std::vector<std::string> algorithms = {"oneshot", "twoshot", "auto", "nccl"};
  int iters = 50, warmup = 10;
  bool graph = false;
  bool threads = false;  // ranks as threads of one process
  bool fused = false;  // the residual + RMSNorm epilogue: plain vs fused vs unfused
  std::string out = "build/bench";
};

struct config {
  std::string algorithm;  // oneshot | twoshot | auto | nccl
  codec_kind codec;
  dtype type;
  std::size_t bytes;
};

struct result {
  config c;
  std::string ran;  // what auto chose
  double median_us, p10_us, p90_us;
  double rel_l2;
  bool identical;
  double graph_us = 0;  // median per call in graph replays (0: not measured)
};

// Messages up to this size are timed under CUDA graphs too (decode runs under graphs in serving
// engines); --graph times every size both ways.
constexpr std::size_t graph_default_max_bytes = std::size_t(1) << 20;

struct t3 {
  double med, p10, p90;
};

struct rank_ctx {
  int rank, world, device;
  bootstrap* bs;
  bench_communicator* comm;
  nccl_api* nccl;
  ncclComm_t ncomm = nullptr;
  cudaStream_t s;
  std::size_t l2;
  std::uint16_t* pinned;  // 4096 values
};

template <class V>
std::vector<V> gather(rank_ctx& x, const V& v) {
  std::vector<V> all(static_cast<std::size_t>(x.world));
  x.bs->allgather(&v, all.data(), sizeof(V));
  return all;
}

void launch(rank_ctx& x, const config& c, const void* in, void* out, std::size_t n) {
  if (c.algorithm == "nccl") {
    x.nccl->check(x.nccl->all_reduce(in, out, n, c.type == dtype::f16 ? ncclFloat16 : ncclBfloat16, ncclSum, x.ncomm, x.s), "ncclAllReduce");
    return;
  }
  allreduce_options o;
  o.codec = c.codec;
  o.algorithm = c.algorithm == "oneshot" ? algorithm_kind::one_shot : c.algorithm == "twoshot" ? algorithm_kind::two_shot : algorithm_kind::automatic;
  x.comm->all_reduce(in, out, n, c.type, o, x.s);
}

double percentile(std::vector<float> v, double p) {
  std::sort(v.begin(), v.end());
  const double k = p * double(v.size() - 1);
  const std::size_t lo = std::size_t(k), hi = std::min(lo + 1, v.size() - 1);
  return double(v[lo]) + (k - double(lo)) * double(v[hi] - v[lo]);
}

// o.iters calls of body captured in one CUDA graph, whose replays are timed as a whole: the median
// of 5 replays, per call, the slowest rank's (decode runs under graphs in serving engines).
double graph_time_us(rank_ctx& x, const options& o, const std::function<void()>& body) {
  cudaGraph_t g;
  cudaGraphExec_t ge;
  CK(cudaStreamBeginCapture(x.s, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < o.iters; ++i) body();
  CK(cudaStreamEndCapture(x.s, &g));
  CK(cudaGraphInstantiate(&ge, g, 0));
  CK(cudaGraphLaunch(ge, x.s));  // warm
  cudaEvent_t ev[2];
  for (auto& e : ev) CK(cudaEventCreate(&e));
  std::vector<float> per_call;
  for (int rep = 0; rep < 5; ++rep) {
    CK(cudaEventRecord(ev[0], x.s));
    CK(cudaGraphLaunch(ge, x.s));
    CK(cudaEventRecord(ev[1], x.s));
    CK(cudaEventSynchronize(ev[1]));
    float t = 0;
    CK(cudaEventElapsedTime(&t, ev[0], ev[1]));
    per_call.push_back(t / float(o.iters));
  }
  for (auto& e : ev) CK(cudaEventDestroy(e));
  CK(cudaGraphExecDestroy(ge));
  CK(cudaGraphDestroy(g));
  x.comm->check();
  const auto all = gather(x, 1e3 * percentile(per_call, 0.5));
  return *std::max_element(all.begin(), all.end());
}

// Median over `reps` runs of body() on stream s, in milliseconds by device events, after one warm-up run.
template <class F>
double median_ms(cudaStream_t s, int reps, F&& body) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  body();
  std::vector<float> v;
  for (int i = 0; i < reps; ++i) {
    CK(cudaEventRecord(a, s));
    body();
    CK(cudaEventRecord(b, s));
    CK(cudaEventSynchronize(b));
    float t;
    CK(cudaEventElapsedTime(&t, a, b));
    v.push_back(t);
  }
  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));
  return percentile(v, 0.5);
}

std::string today() {
  char buf[32];
  const std::time_t t = std::time(nullptr);
  std::strftime(buf, sizeof buf, "%Y-%m-%d", std::gmtime(&t));
  return buf;
}

}  // namespace bench
