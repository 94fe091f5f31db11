// Shared helpers of the GPU tests: skip when no GPU, deterministic inputs, the bit-exact host
// reference of the all-reduce, and a tiny check/report layer (the tests print "N passed, N failed").
#pragma once
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>
// The codecs, outputs and device API only: the communicator (qreduce.hpp) instantiates every kernel
// it can launch, which only the all-reduce test needs.
#include "qreduce/device/tile.hpp"
#include "qreduce/codec/all.hpp"
#include "qreduce/epilogue/outputs.hpp"
#include "qreduce/runtime.hpp"

namespace qrtest {

// Atomic: ranks that are threads count into the same totals at once.
inline std::atomic<int> failures{0}, passes{0};

#define QR_EXPECT(cond, ...)                                               \
  do {                                                                     \
    if (cond) {                                                            \
      ++qrtest::passes;                                                    \
    } else {                                                               \
      ++qrtest::failures;                                                  \
      std::fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                   \
      std::fprintf(stderr, "\n");                                          \
    }                                                                      \
  } while (0)

#define QR_CUDA(call) qreduce::rt::check((call), #call)

inline int finish(const char* name) {
  std::printf("%s: %d passed, %d failed\n", name, passes.load(), failures.load());
  return failures == 0 ? 0 : 1;
}

// Exits 0 with a clear message where no GPU can run the test.
inline void require_gpu(const char* name) {
  if (qreduce::rt::device_count() == 0) {
    std::printf("%s: SKIPPED: no GPU visible (run it on a machine with an NVIDIA GPU)\n", name);
    std::exit(0);
  }
}

// Inputs like tensor-parallel partial sums: Gaussian, a few outlier channels, per-rank seeds.
template <class T>
std::vector<T> make_input(std::size_t n, int rank, std::uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed * 1000003ull + std::uint64_t(rank) * 7919ull + n);
  std::normal_distribution<float> g(0.0f, scale);
  std::vector<T> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    float x = g(rng);
    if (i % 997 == 13) x *= 30.0f;
    v[i] = qreduce::numeric::from_float<T>(x);
  }
  return v;
}

// Inputs at the edges, by group of 32 (a 6-group cycle): zeros of both signs on every rank (sums of
// -0 and -0, and of -0 and +0), small values among exact -0s, one rank's values near 3e38 beside the
// others' small ones (sums whose power-of-two scale hits its upper clamp), every rank near 1.6e38
// (sums near FLT_MAX), and groups holding a NaN or an infinity on one rank. The large values are bf16
// only: as fp16 they are infinities (groups of their own kind).
template <class T>
std::vector<T> make_edge_input(std::size_t n, int rank, std::uint64_t seed) {
  std::mt19937_64 rng(seed * 1000003ull + std::uint64_t(rank) * 7919ull + n);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<T> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t group = i / 32, kind = group % 6;
    float x = 0.0f;
    switch (kind) {
      case 0: x = -0.0f; break;
      case 1: x = (i + std::size_t(rank)) % 2 ? -0.0f : 0.0f; break;
      case 2: x = i % 3 == 0 ? -0.0f : 1e-3f * g(rng); break;
      case 3: x = rank == 0 ? (i % 5 == 0 ? 3e38f : 3e35f) * (i % 2 ? -1.0f : 1.0f) : g(rng); break;
      case 4: x = (i % 2 ? -1.6e38f : 1.6e38f) * (i % 7 == 0 ? 1.0f : 0.5f); break;
      default: x = rank == 1 && i % 32 == 5 ? (group % 12 == 5 ? NAN : -INFINITY) : g(rng); break;
    }
    v[i] = qreduce::numeric::from_float<T>(x);
  }
  return v;
}

// The exact result every rank must produce: per group of 32, the owner's values as they are (rank
// (i / seg) % W owns value i: seg is the call's two-shot segment), the other ranks' values encoded and
// decoded, added in rank order (f32); the sum encoded, decoded, rounded to T. rotate: the
// Walsh-Hadamard variant (the sum is formed in the rotated basis).
template <class C, class T>
std::vector<float> reference_two_shot_f32(const std::vector<std::vector<T>>& in, bool rotate, std::size_t seg) {
  using namespace qreduce;
  const std::size_t n = in[0].size(), W = in.size();
  std::vector<float> out(n);
  std::byte payload[C::payload_bytes], scale[C::scale_bytes > 0 ? C::scale_bytes : 1];
  rotate = rotate || codec::always_rotated<C>;
  for (std::size_t g0 = 0; g0 < n; g0 += codec::group_size) {
    float acc[codec::group_size] = {};
    for (std::size_t r = 0; r < W; ++r) {
      float v[codec::group_size], y[codec::group_size];
      for (int i = 0; i < codec::group_size; ++i) v[i] = g0 + i < n ? numeric::to_float(in[r][g0 + i]) : 0.0f;
      if (rotate) codec::rotate_group<C>(v);
      if ((g0 / seg) % W == r) {
        for (int i = 0; i < codec::group_size; ++i) acc[i] += v[i];
        continue;
      }
      codec::encode_group<C, T>(v, payload, scale);
      codec::decode_group<C, T>(payload, scale, y);  // the owner decodes without un-rotating
      for (int i = 0; i < codec::group_size; ++i) acc[i] += y[i];
    }
    float y[codec::group_size];
    codec::encode_group<C, T>(acc, payload, scale);
    if (rotate) codec::decode_rotated_group<C, T>(payload, scale, y);
    else codec::decode_group<C, T>(payload, scale, y);
    for (int i = 0; i < codec::group_size && g0 + i < n; ++i) out[g0 + i] = y[i];
  }
  return out;
}

template <class T>
std::vector<T> round_to(const std::vector<float>& v) {
  std::vector<T> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = qreduce::numeric::from_float<T>(v[i]);
  return out;
}

template <class C, class T>
std::vector<T> reference_two_shot(const std::vector<std::vector<T>>& in, bool rotate, std::size_t seg) {
  return round_to<T>(reference_two_shot_f32<C, T>(in, rotate, seg));
}

template <class T>
std::vector<float> reference_one_shot_f32(const std::vector<std::vector<T>>& in) {
  const std::size_t n = in[0].size();
  std::vector<float> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    float acc = 0.0f;
    for (const auto& x : in) acc += qreduce::numeric::to_float(x[i]);
    out[i] = acc;
  }
  return out;
}

template <class T>
std::vector<T> reference_one_shot(const std::vector<std::vector<T>>& in) {
  return round_to<T>(reference_one_shot_f32(in));
}

// Relative L2 error of `got` against the exact (fp64) sum of the inputs.
template <class T>
double rel_l2_vs_fp64(const std::vector<std::vector<T>>& in, const std::vector<T>& got) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    double s = 0;
    for (const auto& x : in) s += double(qreduce::numeric::to_float(x[i]));
    const double d = double(qreduce::numeric::to_float(got[i])) - s;
    num += d * d;
    den += s * s;
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b, std::size_t* first_diff = nullptr) {
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].bits != b[i].bits) {
      if (first_diff) *first_diff = i;
      return false;
    }
  return true;
}

}  // namespace qrtest
