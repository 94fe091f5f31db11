// GPU test of the all-reduce through the communicator: N ranks as threads of one process
// (--mode threads) or as separate processes (--mode procs, socket bootstrap, IPC-mapped memory),
// on however many GPUs there are (ranks share GPUs round-robin; on one GPU they all share it).
//
// For every codec, fp16 and bf16, one-shot and two-shot, and sizes from 1 value up:
//   * every rank's output is bitwise equal to the host reference of the same algorithm (and so to
//     every other rank's);
//   * the error against the fp64 sum stays inside the codec's documented bound;
// then: stress (alternating sizes, algorithms and codecs, several calls in flight, fresh inputs per
// call), graph capture with replays on fresh data, argument validation, a rank that never arrives
// (the others fail with a timeout naming it), a late rank, and ranks whose calls differ (every rank
// fails with a mismatch describing both calls). --soak N runs only the stress test with N calls and
// the graph test with N / 5 replays (then the missing-rank test), for long runs.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include "common.hpp"
#include "qreduce/qreduce.hpp"

using namespace qreduce;

namespace {

// Documented relative-L2 bounds against the fp64 sum (docs/accuracy.md), for the test's inputs.
double bound_for(codec_kind k, dtype t) {
  switch (k) {
    case codec_kind::none: return t == dtype::f16 ? 2e-3 : 1e-2;
    case codec_kind::fp8:
    case codec_kind::fp8_fnuz: return 0.08;
    case codec_kind::int8: return 0.02;
    case codec_kind::int6: return 0.08;
    case codec_kind::int4: return 0.3;
    case codec_kind::fp4: return 0.3;
    case codec_kind::mxfp4: return 0.35;
    case codec_kind::int4m: return 0.15;
  }
  return 0;
}

// Buffers are allocated once per rank: cudaFree synchronizes the whole device, and with ranks as
// threads on one GPU that would wait for a peer's kernel that waits for this rank.
struct ctx {
  int rank, world;
  bootstrap* bs;
  communicator* comm;
  cudaStream_t stream;
  bool quick;
  void* a;  // capacity: max_values 16-bit values each (+16 bytes)
  void* b;
  std::size_t max_values;
  void* pinned;  // host staging of the same capacity: copies from pageable memory may serialize

  template <class T>
  void upload(T* dst, const std::vector<T>& src) {
    std::memcpy(pinned, src.data(), src.size() * sizeof(T));
    QR_CUDA(cudaMemcpyAsync(dst, pinned, src.size() * sizeof(T), cudaMemcpyHostToDevice, stream));
    QR_CUDA(cudaStreamSynchronize(stream));  // the staging buffer is reused by the next upload
  }
  template <class T>
  void download(std::vector<T>& dst, const T* src) {
    QR_CUDA(cudaMemcpyAsync(pinned, src, dst.size() * sizeof(T), cudaMemcpyDeviceToHost, stream));
    QR_CUDA(cudaStreamSynchronize(stream));
    std::memcpy(dst.data(), pinned, dst.size() * sizeof(T));
  }
};

void barrier(ctx& c) {
  std::vector<int> all(static_cast<std::size_t>(c.world));
  c.bs->allgather(&c.rank, all.data(), sizeof(int));
}

// All ranks run the same sequence of cases; each checks its own output.
template <class T>
void run_case(ctx& c, std::size_t n, allreduce_options o, bool in_place, std::uint64_t seed, bool edge = false) {
  std::vector<std::vector<T>> inputs;
  for (int r = 0; r < c.world; ++r) inputs.push_back(edge ? qrtest::make_edge_input<T>(n, r, seed) : qrtest::make_input<T>(n, r, seed));
  std::vector<T> want;
  const bool one = o.algorithm == algorithm_kind::one_shot;
  if (one) want = qrtest::reference_one_shot(inputs);
  else
    visit_codec(o.codec, [&](auto tag) {
      want = qrtest::reference_two_shot<typename decltype(tag)::type, T>(inputs, o.rotate, c.comm->two_shot_segment_values(o.codec, n));
    });

  T* din = static_cast<T*>(c.a);
  T* dout = in_place ? din : static_cast<T*>(c.b);
  c.upload(din, inputs[std::size_t(c.rank)]);
  if (!in_place) QR_CUDA(cudaMemsetAsync(dout, 0xff, n * sizeof(T), c.stream));  // poison: every value must be written
  c.comm->all_reduce(din, dout, n, o, c.stream);
  std::vector<T> got(n);
  c.download(got, dout);
  c.comm->check();
  std::size_t diff = 0;
  QR_EXPECT(qrtest::same_bits(got, want, &diff), "rank %d %s/%s %s n=%zu%s%s%s: output differs from the host reference at %zu (%g vs %g)", c.rank,
            codec_name(o.codec), dtype_name(dtype_of<T>), algorithm_name(o.algorithm), n, in_place ? " in-place" : "", o.rotate ? " rotated" : "",
            edge ? " edge inputs" : "", diff, double(numeric::to_float(got[diff])), double(numeric::to_float(want[diff])));
  if (edge) return;  // the error bound below is for Gaussian data
  // The bounds are statistical: they hold for messages of many groups, not for a handful of values.
  const double e = qrtest::rel_l2_vs_fp64(inputs, got);
  if (n >= 100000)
    QR_EXPECT(e <= bound_for(o.codec, dtype_of<T>), "rank %d %s/%s n=%zu: relative L2 error %.3g above the bound %.3g", c.rank, codec_name(o.codec),
              dtype_name(dtype_of<T>), n, e, bound_for(o.codec, dtype_of<T>));
  if (c.rank == 0 && n >= 100000 && !one)
    std::printf("  %-8s %s n=%-9zu%s rel.L2 vs fp64 %.3e\n", codec_name(o.codec), dtype_name(dtype_of<T>), n, o.rotate ? " rot" : "    ", e);
}

void correctness(ctx& c) {
  std::vector<std::size_t> sizes = {1, 7, 8, 2047, 2048 + 5, 100003, (1u << 20) + 17};
  if (!c.quick) sizes.push_back(std::size_t(1) << 25);  // 64 MiB of fp16
  std::uint64_t seed = 100;
  for (std::size_t n : sizes) {
    for (codec_kind k : all_codecs) {
      if (n == (std::size_t(1) << 25) && k != codec_kind::fp4 && k != codec_kind::none) continue;
      allreduce_options o{k, algorithm_kind::two_shot, false};
      run_case<f16>(c, n, o, false, ++seed);
      run_case<bf16>(c, n, o, n % 2 == 1, ++seed);
      if (k == codec_kind::int4 || k == codec_kind::fp4) {  // rotation asked for (int8 and int4m always rotate)
        o.rotate = true;
        run_case<f16>(c, n, o, false, ++seed);
      }
    }
    if (n <= c.comm->max_oneshot_values()) {
      run_case<f16>(c, n, {codec_kind::none, algorithm_kind::one_shot, false}, false, ++seed);
      run_case<bf16>(c, n, {codec_kind::none, algorithm_kind::one_shot, false}, true, ++seed);
    }
  }
  // edge inputs (signed zeros, sums near FLT_MAX, NaN and infinity groups) through every codec
  const std::size_t n_edge = 12 * 2048 + 96;
  for (codec_kind k : all_codecs) {
    run_case<bf16>(c, n_edge, {k, algorithm_kind::two_shot, false}, false, ++seed, true);
    run_case<f16>(c, n_edge, {k, algorithm_kind::two_shot, false}, false, ++seed, true);
  }
  run_case<bf16>(c, n_edge, {codec_kind::none, algorithm_kind::one_shot, false}, false, ++seed, true);
}

// Inputs of a fused RMSNorm case (every rank's x, the residual, the weight) and the expected
// residual_out: the algorithm's f32 sum plus the residual, rounded once; with sum_in_t (y in the
// tensor's type: the all-reduce leaves its sums in y) the sum rounded to T first, as an all-reduce
// followed by a separate add rounds it.
template <class T>
struct rmsnorm_case_inputs {
  std::vector<std::vector<T>> inputs;
  std::vector<T> residual, weight, want_r;
};

template <class T>
rmsnorm_case_inputs<T> rmsnorm_inputs(const ctx& c, std::size_t rows, std::size_t hidden, allreduce_options o, bool sum_in_t, std::uint64_t seed) {
  const std::size_t n = rows * hidden;
  rmsnorm_case_inputs<T> in;
  for (int r = 0; r < c.world; ++r) in.inputs.push_back(qrtest::make_input<T>(n, r, seed));
  in.residual = qrtest::make_input<T>(n, 99, seed + 1);
  in.weight = qrtest::make_input<T>(hidden, 98, seed + 2, 0.5f);
  std::vector<float> sum;
  if (o.algorithm == algorithm_kind::one_shot) sum = qrtest::reference_one_shot_f32(in.inputs);
  else
    visit_codec(o.codec, [&](auto tag) {
      sum = qrtest::reference_two_shot_f32<typename decltype(tag)::type, T>(in.inputs, o.rotate, c.comm->two_shot_segment_values(o.codec, n));
    });
  in.want_r.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const float s = sum_in_t ? numeric::to_float(numeric::from_float<T>(sum[i])) : sum[i];
    in.want_r[i] = numeric::from_float<T>(s + numeric::to_float(in.residual[i]));
  }
  return in;
}

// The fused residual + RMSNorm: residual_out must equal the reference bit for bit (rmsnorm_inputs); y
// must match an fp64 RMSNorm of it closely and be the same on every rank.
template <class T>
void run_rmsnorm_case(ctx& c, std::size_t rows, std::size_t hidden, allreduce_options o, bool in_place, std::uint64_t seed) {
  const std::size_t n = rows * hidden;
  const auto [inputs, residual, weight, want_r] = rmsnorm_inputs<T>(c, rows, hidden, o, true, seed);

  // device buffers: x in a, residual (then residual_out, in place or not) and weight and y in b
  T* x = static_cast<T*>(c.a);
  T* res = static_cast<T*>(c.b);
  T* res_out = in_place ? res : res + n + 64;
  T* w = res + 2 * n + 128;
  T* y = in_place ? x : w + hidden + 64;
  c.upload(x, inputs[std::size_t(c.rank)]);
  c.upload(res, residual);
  c.upload(w, weight);
  if (!in_place) QR_CUDA(cudaMemsetAsync(res_out, 0xff, n * sizeof(T), c.stream));
  c.comm->all_reduce_rmsnorm(x, res, w, res_out, y, rows, hidden, 1e-6f, dtype_of<T>, o, c.stream);
  std::vector<T> got_r(n), got_y(n);
  c.download(got_r, res_out);
  c.download(got_y, y);
  c.comm->check();
  std::size_t diff = 0;
  QR_EXPECT(qrtest::same_bits(got_r, want_r, &diff), "rank %d rmsnorm %s/%s %s %zux%zu: residual_out differs at %zu", c.rank, codec_name(o.codec),
            dtype_name(dtype_of<T>), algorithm_name(o.algorithm), rows, hidden, diff);
  const double tol = std::is_same_v<T, f16> ? 2e-3 : 1.6e-2;
  std::size_t bad = 0;
  std::uint64_t h = 1469598103934665603ull;
  for (std::size_t row = 0; row < rows; ++row) {
    double ss = 0;
    for (std::size_t k = 0; k < hidden; ++k) {
      const double v = numeric::to_float(got_r[row * hidden + k]);
      ss += v * v;
    }
    const double inv = 1.0 / std::sqrt(ss / double(hidden) + 1e-6);
    for (std::size_t k = 0; k < hidden; ++k) {
      const std::size_t i = row * hidden + k;
      const double ref = double(numeric::to_float(got_r[i])) * inv * double(numeric::to_float(weight[k]));
      const double g = numeric::to_float(got_y[i]);
      if (!(std::fabs(g - ref) <= tol * std::fabs(ref) + 1e-5)) ++bad;
      h = (h ^ got_y[i].bits) * 1099511628211ull;
    }
  }
  QR_EXPECT(bad == 0, "rank %d rmsnorm %s/%s %zux%zu: %zu values of y off the fp64 RMSNorm", c.rank, codec_name(o.codec), dtype_name(dtype_of<T>),
            rows, hidden, bad);
  std::vector<std::uint64_t> all(static_cast<std::size_t>(c.world));
  c.bs->allgather(&h, all.data(), sizeof h);
  bool same = true;
  for (auto v : all) same = same && v == all[0];
  QR_EXPECT(same, "rank %d rmsnorm %zux%zu: y differs between ranks", c.rank, rows, hidden);
}

// The fused residual + RMSNorm with y quantized (epilogue/outputs.hpp): residual_out bit for bit as
// above; the dequantized y within the format's rounding of the fp64 RMSNorm; the same bytes on every
// rank.
template <class T, class Out>
void run_rmsnorm_quant_case(ctx& c, std::size_t rows, std::size_t hidden, allreduce_options o, std::uint64_t seed) {
  const std::size_t n = rows * hidden;
  const auto [inputs, residual, weight, want_r] = rmsnorm_inputs<T>(c, rows, hidden, o, false, seed);

  // y from the expected residual in fp64: the reference, and the NVFP4 global scale a calibration
  // would choose (448 * 6 / amax)
  std::vector<double> ref(n);
  double amax = 0;
  for (std::size_t row = 0; row < rows; ++row) {
    double ss = 0;
    for (std::size_t k = 0; k < hidden; ++k) {
      const double v = numeric::to_float(want_r[row * hidden + k]);
      ss += v * v;
    }
    const double inv = 1.0 / std::sqrt(ss / double(hidden) + 1e-6);
    for (std::size_t k = 0; k < hidden; ++k) {
      ref[row * hidden + k] = double(numeric::to_float(want_r[row * hidden + k])) * inv * double(numeric::to_float(weight[k]));
      amax = std::max(amax, std::fabs(ref[row * hidden + k]));
    }
  }
  constexpr bool fp8 = std::is_same_v<Out, epilogue::out_fp8_per_token>;
  const std::size_t group = fp8 ? hidden : std::size_t(Out::group);
  const std::size_t q_bytes = fp8 ? n : n / 2, s_bytes = fp8 ? rows * 4 : n / group;
  // x in a, then the codes and scales (and the global scale); residual, residual_out, weight in b
  T* x = static_cast<T*>(c.a);
  std::uint8_t* q = reinterpret_cast<std::uint8_t*>(x + n + 64);
  std::uint8_t* sc = q + (q_bytes + 255) / 256 * 256;
  float* dglobal = reinterpret_cast<float*>(sc + (s_bytes + 255) / 256 * 256);
  T* res = static_cast<T*>(c.b);
  T* res_out = res + n + 64;
  T* w = res + 2 * n + 128;
  const float global = float(448.0 * 6.0 / amax);
  c.upload(x, inputs[std::size_t(c.rank)]);
  c.upload(res, residual);
  c.upload(w, weight);
  c.upload(reinterpret_cast<std::uint8_t*>(dglobal),
           std::vector<std::uint8_t>(reinterpret_cast<const std::uint8_t*>(&global), reinterpret_cast<const std::uint8_t*>(&global) + 4));
  QR_CUDA(cudaMemsetAsync(q, 0xcd, q_bytes, c.stream));
  QR_CUDA(cudaMemsetAsync(sc, 0xcd, s_bytes, c.stream));
  Out dev{};
  dev.q = q;
  if constexpr (fp8) dev.scale = reinterpret_cast<float*>(sc);
  else dev.scale = sc;
  if constexpr (std::is_same_v<Out, epilogue::out_nvfp4>) dev.global_scale = dglobal;
  c.comm->all_reduce_rmsnorm(x, res, w, res_out, dev, rows, hidden, 1e-6f, dtype_of<T>, o, c.stream);
  std::vector<T> got_r(n);
  std::vector<std::uint8_t> got_q(q_bytes), got_s(s_bytes);
  c.download(got_r, res_out);
  c.download(got_q, q);
  c.download(got_s, sc);
  c.comm->check();
  std::size_t diff = 0;
  QR_EXPECT(qrtest::same_bits(got_r, want_r, &diff), "rank %d rmsnorm->%s %s/%s %s %zux%zu: residual_out differs at %zu", c.rank, Out::name,
            codec_name(o.codec), dtype_name(dtype_of<T>), algorithm_name(o.algorithm), rows, hidden, diff);
  Out host{};
  host.q = got_q.data();
  if constexpr (fp8) host.scale = reinterpret_cast<float*>(got_s.data());
  else host.scale = got_s.data();
  if constexpr (std::is_same_v<Out, epilogue::out_nvfp4>) host.global_scale = &global;
  std::size_t bad = 0, first = n;
  for (std::size_t row = 0; row < rows; ++row) {
    for (std::size_t g0 = row * hidden; g0 < (row + 1) * hidden; g0 += group) {
      double gmax = 0;
      for (std::size_t k = g0; k < g0 + group; ++k) gmax = std::max(gmax, std::fabs(ref[k]));
      for (std::size_t k = g0; k < g0 + group; ++k) {
        // fp8: half an E4M3 step (1/16 relative) or half the smallest subnormal step; fp4: one scale
        // (E2M1's widest gap is two), the scale being at most gmax / 6 rounded up a binade (MX) or
        // an E4M3 rounding of it (NV)
        double tol;
        if constexpr (fp8) tol = std::fabs(ref[k]) / 16 + gmax / 448 / 512;
        else if constexpr (std::is_same_v<Out, epilogue::out_mxfp4>) tol = gmax / 6 * 2;
        else tol = gmax / 6 * 1.07;
        tol = tol * 1.001 + 1e-6 * gmax + 1e-30;
        const double d = host.dequantize(row, hidden, k - row * hidden);
        if (!(std::fabs(d - ref[k]) <= tol) && bad++ == 0) first = k;
      }
    }
  }
  QR_EXPECT(bad == 0, "rank %d rmsnorm->%s %s/%s %s %zux%zu: %zu values of y off the fp64 RMSNorm (first at %zu)", c.rank, Out::name,
            codec_name(o.codec), dtype_name(dtype_of<T>), algorithm_name(o.algorithm), rows, hidden, bad, first);
  std::uint64_t h = 1469598103934665603ull;
  for (auto b : got_q) h = (h ^ b) * 1099511628211ull;
  for (auto b : got_s) h = (h ^ b) * 1099511628211ull;
  std::vector<std::uint64_t> all(static_cast<std::size_t>(c.world));
  c.bs->allgather(&h, all.data(), sizeof h);
  bool same = true;
  for (auto v : all) same = same && v == all[0];
  QR_EXPECT(same, "rank %d rmsnorm->%s %zux%zu: the quantized y differs between ranks", c.rank, Out::name, rows, hidden);
}

template <class Out>
void rmsnorm_quant(ctx& c, std::uint64_t& seed) {
  // rows that do or do not fill a two-shot segment (2880, 5120), short and long (16384), few and
  // many per call
  const std::size_t shapes[][2] = {{1, 4096}, {3, 2880}, {16, 8192}, {64, 5120}, {2, 16384}, {200, 2048}};
  for (const auto& sh : shapes) {
    const std::size_t rows = sh[0], hidden = sh[1];
    if (3 * rows * hidden + hidden + 512 > c.max_values) continue;
    run_rmsnorm_quant_case<bf16, Out>(c, rows, hidden, {codec_kind::none, algorithm_kind::two_shot, false}, ++seed);
    run_rmsnorm_quant_case<f16, Out>(c, rows, hidden, {codec_kind::fp4, algorithm_kind::two_shot, false}, ++seed);
    if (rows * hidden <= c.comm->max_oneshot_values())
      run_rmsnorm_quant_case<bf16, Out>(c, rows, hidden, {codec_kind::none, algorithm_kind::one_shot, false}, ++seed);
  }
}

void rmsnorm(ctx& c) {
  std::uint64_t seed = 7000;
  // one_shot_rows_fit: rows of up to 8192 values, one or several a block (200 x 2048 and 150 x 2880
  // where the grid has fewer blocks); rows too long (16384) or too many (600 x 512) for it
  const std::size_t shapes[][2] = {{1, 4096}, {3, 2880}, {16, 8192}, {64, 5120}, {1, 16384}, {200, 2048}, {150, 2880}, {600, 512}};
  for (const auto& sh : shapes) {
    const std::size_t rows = sh[0], hidden = sh[1];
    if (3 * rows * hidden + hidden + 512 > c.max_values) continue;
    for (codec_kind k : {codec_kind::none, codec_kind::fp8, codec_kind::int4, codec_kind::fp4}) {
      run_rmsnorm_case<bf16>(c, rows, hidden, {k, algorithm_kind::two_shot, false}, false, ++seed);
      run_rmsnorm_case<f16>(c, rows, hidden, {k, algorithm_kind::two_shot, k == codec_kind::int4}, true, ++seed);
    }
    if (rows * hidden <= c.comm->max_oneshot_values()) {
      run_rmsnorm_case<bf16>(c, rows, hidden, {codec_kind::none, algorithm_kind::one_shot, false}, true, ++seed);
      run_rmsnorm_case<f16>(c, rows, hidden, {codec_kind::none, algorithm_kind::one_shot, false}, false, ++seed);
    }
  }
  // Many rows: the kernel of rows has more blocks than a device holds at once, and it is launched as a
  // programmatic dependent of the all-reduce. With ranks sharing a GPU (4 or 8 ranks on fewer GPUs),
  // its waiting blocks must not keep a peer's all-reduce off the device (one_shot.hpp, two_shot.hpp).
  if (3 * 4096 * 1024 + 1024 + 512 <= c.max_values) {
    run_rmsnorm_case<bf16>(c, 4096, 1024, {codec_kind::none, algorithm_kind::two_shot, false}, false, ++seed);
    run_rmsnorm_case<bf16>(c, 4096, 1024, {codec_kind::fp4, algorithm_kind::two_shot, false}, true, ++seed);
  }
  rmsnorm_quant<epilogue::out_fp8_per_token>(c, seed);
  rmsnorm_quant<epilogue::out_mxfp4>(c, seed);
  rmsnorm_quant<epilogue::out_nvfp4>(c, seed);
  // bad shapes and outputs are refused before anything is written
  auto refused = [&](const char* what, auto&& call) {
    try {
      call();
      QR_EXPECT(false, "rank %d: %s was accepted", c.rank, what);
    } catch (const error& e) {
      QR_EXPECT(e.code() == errc::invalid_argument, "rank %d: %s: %s", c.rank, what, e.what());
    }
  };
  auto* qa = static_cast<std::uint8_t*>(c.a);
  refused("hidden 100", [&] { c.comm->all_reduce_rmsnorm(c.a, c.b, c.b, c.b, c.a, 2, 100, 1e-6f, dtype::bf16, {}, c.stream); });
  refused("y overlapping the residual", [&] {
    c.comm->all_reduce_rmsnorm(c.a, c.b, c.b, static_cast<std::byte*>(c.b) + 8192 * 2, static_cast<std::byte*>(c.b) + 4096, 2, 4096, 1e-6f,
                               dtype::bf16, {}, c.stream);
  });
  refused("mxfp4 with hidden 2888", [&] {
    c.comm->all_reduce_rmsnorm(c.a, c.b, c.b, c.b, epilogue::out_mxfp4{qa, qa}, 2, 2888, 1e-6f, dtype::bf16, {}, c.stream);
  });
  refused("nvfp4 without a global scale", [&] {
    c.comm->all_reduce_rmsnorm(c.a, c.b, c.b, c.b, epilogue::out_nvfp4{qa, qa, nullptr}, 2, 2048, 1e-6f, dtype::bf16, {}, c.stream);
  });
  refused("fp8 scales misaligned", [&] {
    c.comm->all_reduce_rmsnorm(c.a, c.b, c.b, c.b, epilogue::out_fp8_per_token{qa, reinterpret_cast<float*>(qa + 2)}, 2, 2048, 1e-6f, dtype::bf16, {},
                               c.stream);
  });
}

void stress(ctx& c, int calls) {
  // Alternating sizes, algorithms and codecs, every call with inputs of its own (a seed per call, from
  // a pool of `variants` per combination), launched in batches of `depth` calls with no host sync in
  // between, each into buffers of its own: a call that read an earlier call's data or slots, or wrote
  // into a later one's, gives bits that differ from its reference.
  constexpr int depth = 4, variants = 3;
  const std::size_t sizes[] = {4096, 77, 300000, 2048 * 3 + 1, 65536, 1000};
  const allreduce_options opts[] = {{codec_kind::int4, algorithm_kind::two_shot, false},
                                    {codec_kind::none, algorithm_kind::one_shot, false},
                                    {codec_kind::fp8, algorithm_kind::two_shot, false},
                                    {codec_kind::none, algorithm_kind::automatic, false},
                                    {codec_kind::fp4, algorithm_kind::automatic, true}};
  struct combo {
    std::size_t n;
    allreduce_options o;
    std::vector<f16> in[variants], want[variants];
  };
  std::vector<combo> combos;
  for (std::size_t n : sizes)
    for (const auto& o : opts) {
      const auto ran = c.comm->choice(n * 2, o.codec);
      const auto alg = o.algorithm == algorithm_kind::automatic ? ran.algorithm : o.algorithm;
      if (alg == algorithm_kind::one_shot && n > c.comm->max_oneshot_values()) continue;
      combo cb{n, o, {}, {}};
      for (int v = 0; v < variants; ++v) {
        std::vector<std::vector<f16>> inputs;
        for (int r = 0; r < c.world; ++r) inputs.push_back(qrtest::make_input<f16>(n, r, 7 + n + 1000003ull * std::uint64_t(v + 1) + combos.size()));
        cb.in[v] = inputs[std::size_t(c.rank)];
        if (alg == algorithm_kind::one_shot) cb.want[v] = qrtest::reference_one_shot(inputs);
        else
          visit_codec(o.codec, [&](auto tag) {
            cb.want[v] = qrtest::reference_two_shot<typename decltype(tag)::type, f16>(inputs, o.rotate, c.comm->two_shot_segment_values(o.codec, n));
          });
      }
      combos.push_back(std::move(cb));
    }
  std::size_t most = 0;
  for (std::size_t n : sizes) most = n > most ? n : most;
  f16* in[depth];
  f16* out[depth];
  for (int k = 0; k < depth; ++k) {
    QR_CUDA(cudaMalloc(&in[k], most * 2 + 16));
    QR_CUDA(cudaMalloc(&out[k], most * 2 + 16));
  }
  barrier(c);  // allocations can wait for the device: none while a peer's kernel spins for this rank
  std::vector<f16> got;
  int bad = 0;
  for (int i0 = 0; i0 < calls; i0 += depth) {
    auto pick = [&](int i) -> std::pair<const combo&, int> { return {combos[std::size_t(i) % combos.size()], (i / int(combos.size())) % variants}; };
    for (int k = 0; k < depth && i0 + k < calls; ++k) c.upload(in[k], pick(i0 + k).first.in[pick(i0 + k).second]);
    for (int k = 0; k < depth && i0 + k < calls; ++k) {  // back to back on the stream
      const combo& cb = pick(i0 + k).first;
      c.comm->all_reduce(in[k], out[k], cb.n, cb.o, c.stream);
    }
    for (int k = 0; k < depth && i0 + k < calls; ++k) {
      const auto [cb, v] = pick(i0 + k);
      got.resize(cb.n);
      c.download(got, out[k]);
      if (!qrtest::same_bits(got, cb.want[v])) ++bad;
    }
    if (c.rank == 0 && calls >= 10000 && (i0 + depth) % 10000 < depth)
      std::printf("rank 0: stress: %d of %d calls, %d wrong so far\n", i0 + depth, calls, bad);
  }
  QR_CUDA(cudaStreamSynchronize(c.stream));
  barrier(c);
  for (int k = 0; k < depth; ++k) {
    QR_CUDA(cudaFree(in[k]));
    QR_CUDA(cudaFree(out[k]));
  }
  c.comm->check();
  QR_EXPECT(bad == 0, "rank %d: %d of %d stress calls differ from the reference", c.rank, bad, calls);
}

void graphs(ctx& c, int replays) {
  const std::size_t n = 123457;
  f16* din = static_cast<f16*>(c.a);
  f16* dout = static_cast<f16*>(c.b);
  cudaGraph_t g;
  cudaGraphExec_t ge;
  QR_CUDA(cudaStreamBeginCapture(c.stream, cudaStreamCaptureModeThreadLocal));
  c.comm->all_reduce(din, dout, n, {codec_kind::int6, algorithm_kind::two_shot, false}, c.stream);
  c.comm->all_reduce(dout, dout, 1000, {codec_kind::none, algorithm_kind::one_shot, false}, c.stream);
  QR_CUDA(cudaStreamEndCapture(c.stream, &g));
  QR_CUDA(cudaGraphInstantiate(&ge, g, 0));
  int bad = 0;
  for (int i = 0; i < replays; ++i) {
    std::vector<std::vector<f16>> inputs;
    for (int r = 0; r < c.world; ++r) inputs.push_back(qrtest::make_input<f16>(n, r, 5000 + std::uint64_t(i)));
    auto want = qrtest::reference_two_shot<codec::int6, f16>(inputs, false, c.comm->two_shot_segment_values(codec_kind::int6, n));
    std::vector<std::vector<f16>> heads;
    for (int r = 0; r < c.world; ++r) heads.emplace_back(want.begin(), want.begin() + 1000);
    const auto head = qrtest::reference_one_shot(heads);
    std::copy(head.begin(), head.end(), want.begin());
    c.upload(din, inputs[std::size_t(c.rank)]);
    QR_CUDA(cudaGraphLaunch(ge, c.stream));
    std::vector<f16> got(n);
    c.download(got, dout);
    if (!qrtest::same_bits(got, want)) ++bad;
  }
  c.comm->check();
  QR_EXPECT(bad == 0, "rank %d: %d of %d graph replays differ from the reference", c.rank, bad, replays);
  barrier(c);
  QR_CUDA(cudaGraphExecDestroy(ge));
  QR_CUDA(cudaGraphDestroy(g));
}

void validation(ctx& c) {
  f16* d = static_cast<f16*>(c.a);
  auto expect_invalid = [&](const char* what, auto&& call) {
    try {
      call();
      QR_EXPECT(false, "rank %d: %s was accepted", c.rank, what);
    } catch (const error& e) {
      QR_EXPECT(e.code() == errc::invalid_argument, "rank %d: %s: wrong error %s", c.rank, what, e.what());
    }
  };
  expect_invalid("a null pointer", [&] { c.comm->all_reduce<f16>(nullptr, d, 10, {}, c.stream); });
  expect_invalid("a misaligned pointer", [&] { c.comm->all_reduce<f16>(d + 1, d + 1, 10, {}, c.stream); });
  expect_invalid("overlapping in/out", [&] { c.comm->all_reduce<f16>(d, d + 8, 100, {}, c.stream); });
  expect_invalid("one-shot above its capacity", [&] {
    c.comm->all_reduce<f16>(d, d, c.comm->max_oneshot_values() + 1, {codec_kind::none, algorithm_kind::one_shot}, c.stream);
  });
  expect_invalid("host memory", [&] {
    static f16 host[64] alignas(16);
    c.comm->all_reduce<f16>(host, host, 64, {}, c.stream);
  });
  expect_invalid("a bad dtype", [&] { c.comm->all_reduce(d, d, 10, dtype(7), {}, c.stream); });
}

// Counters near the wrap: every rank sets its two-shot round counters and the scatter and gather
// flags in its workspace to 2^32 - 3 (as if that many rounds had run), its one-shot counters to 2^32 -
// 2 (whose parity picks the one-shot slots, and must keep alternating where the counter wraps), and
// the two-shot's ring position apart from the round number, since the number mod 3 repeats a slot
// where it wraps. Then one-shot and two-shot calls alternate across the wrap; every result must still
// equal the host reference bitwise.
void counter_wrap(ctx& c) {
  QR_CUDA(cudaStreamSynchronize(c.stream));
  barrier(c);  // nobody is calling
  const device_handle& h = c.comm->handle();
  const std::uint32_t two = 0xffffffffu - 2u, one = 0xffffffffu - 1u;
  const std::size_t B = std::size_t(h.layout.cfg.blocks), W = std::size_t(c.world);
  std::vector<std::uint32_t> words((h.layout.abort_off - h.layout.flags_off) / 4, 0u);
  for (std::size_t i = 0; i < 2 * B * W; ++i) words[i] = two;  // flags [phase][block][src]
  const std::size_t seq = (h.layout.seq_off - h.layout.flags_off) / 4;
  for (std::size_t b = 0; b < B; ++b) {
    words[seq + b] = two;  // two-shot rounds
    words[seq + B + b] = one;  // one-shot calls
    words[seq + 2 * B + b] = 2u;  // the two-shot's ring position, any of the 3 (the same on every rank)
  }
  c.upload(reinterpret_cast<std::uint32_t*>(h.peer[h.rank] + h.layout.flags_off), words);
  barrier(c);  // every rank seeded before anyone calls
  std::uint64_t seed = 9000;
  for (int k = 0; k < 4; ++k) {
    run_case<f16>(c, 4096 * 3 + 8, {codec_kind::none, algorithm_kind::one_shot, false}, false, ++seed);
    run_case<bf16>(c, (std::size_t(1) << 20) + 17, {codec_kind::fp4, algorithm_kind::two_shot, false}, k % 2 == 1, ++seed);
  }
}

// Rounds of 64 KiB on a grid of 8 blocks: the codecs that stage their scales in shared memory take
// their most tiles a step (algorithm::max_step_tiles, 16 at 2 ranks, where the default rounds give
// them at most 7), a partly filled image (12 tiles, the last chunk short), and the others alike; every
// result bitwise the host reference's. Then (2 ranks) a launch with one tile a step more than the
// image holds (it fits the segment slot): the kernel must refuse it before any store, and check()
// report it.
void big_rounds(ctx& c) {
  std::uint64_t seed = 7000;
  const std::size_t full = std::size_t(1) << 21, partial = 12 * std::size_t(8 * c.world) * codec::tile_values - 1000;
  for (codec_kind k : {codec_kind::fp4, codec_kind::mxfp4, codec_kind::int4, codec_kind::int4m, codec_kind::fp8, codec_kind::none}) {
    const allreduce_options o{k, algorithm_kind::two_shot, false};
    if (c.world == 2 && k != codec_kind::fp8 && k != codec_kind::none) {
      QR_EXPECT(c.comm->two_shot_segment_values(k, full) == 16 * codec::tile_values, "rank %d %s: %zu values a segment, not 16 tiles", c.rank,
                codec_name(k), c.comm->two_shot_segment_values(k, full));
      QR_EXPECT(c.comm->two_shot_segment_values(k, partial) == 12 * codec::tile_values, "rank %d %s: %zu values a segment, not 12 tiles", c.rank,
                codec_name(k), c.comm->two_shot_segment_values(k, partial));
    }
    run_case<bf16>(c, full, o, false, ++seed);
    run_case<f16>(c, partial, o, true, ++seed);
  }
  if (c.world != 2) return;
  barrier(c);
  constexpr int too_many = algorithm::max_step_tiles<codec::fp4> + 1;
  const device_handle& h = c.comm->handle();
  QR_EXPECT(std::size_t(too_many) * codec::slot_tile_bytes<codec::fp4> <= h.layout.segment_bytes, "rank %d: the slot does not hold %d tiles", c.rank,
            too_many);
  bf16* d = static_cast<bf16*>(c.a);
  algorithm::two_shot_kernel<transport::default_transport, codec::fp4, bf16, 2, epilogue::identity>
      <<<1, block_threads, 0, c.stream>>>(h, d, d, full, too_many, false, epilogue::identity{}, algorithm::epilogue_id<epilogue::identity>, false);
  QR_CUDA(cudaGetLastError());
  QR_CUDA(cudaStreamSynchronize(c.stream));
  try {
    c.comm->check();
    QR_EXPECT(false, "rank %d: a two-shot launch of %d tiles a step was accepted", c.rank, too_many);
  } catch (const error& e) {
    // its own refusal ("... and 17 tiles per segment"), or the peer's, where that came first
    QR_EXPECT(e.code() == errc::invalid_argument && std::strstr(e.what(), "tiles per segment"), "rank %d: a launch of %d tiles a step: %s", c.rank,
              too_many, e.what());
  }
}

using rank_fn = std::function<void(ctx&)>;

// Runs fn(rank, bootstrap) on `world` threads that share one bootstrap group, and waits for all of
// them; an exception escaping fn fails the test, naming the rank.
template <class F>
void run_ranks_as_threads(int world, F fn) {
  auto group = std::make_shared<thread_group>(world);
  std::vector<std::thread> th;
  std::mutex mu;
  for (int r = 0; r < world; ++r)
    th.emplace_back([&, r] {
      try {
        thread_bootstrap bs(group, r);
        fn(r, bs);
      } catch (const std::exception& e) {
        std::lock_guard l(mu);
        QR_EXPECT(false, "rank %d threw: %s", r, e.what());
      }
    });
  for (auto& t : th) t.join();
}

// One rank's whole run, in a thread or a child process.
void rank_main(int rank, int world, bootstrap& bs, const comm_config& cfg, bool quick, const rank_fn& body) {
  const int ndev = rt::device_count();
  rt::set_device(rank % ndev);
  communicator comm(bs, cfg);
  cudaStream_t s;
  QR_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  const std::size_t max_values = quick ? (std::size_t(1) << 21) : (std::size_t(1) << 25) + 64;
  void *a, *b, *pinned;
  QR_CUDA(cudaMalloc(&a, max_values * 2 + 16));
  QR_CUDA(cudaMalloc(&b, max_values * 2 + 16));
  QR_CUDA(cudaMallocHost(&pinned, max_values * 2 + 16));
  ctx c{rank, world, &bs, &comm, s, quick, a, b, max_values, pinned};
  barrier(c);
  body(c);
  barrier(c);
  QR_CUDA(cudaFree(a));
  QR_CUDA(cudaFree(b));
  QR_CUDA(cudaFreeHost(pinned));
  QR_CUDA(cudaStreamDestroy(s));
}

}  // namespace

int main(int argc, char** argv) {
  // Ranks that are threads on one GPU spin-wait on each other's kernels: their streams must not
  // share a hardware queue, or one rank's kernel waits behind another's forever (until the timeout).
  ::setenv("CUDA_DEVICE_MAX_CONNECTIONS", "32", 0);
  ::setenv("CUDA_MODULE_LOADING", "EAGER", 0);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string mode = "threads";
  int world = 2;
  bool quick = false;
  int soak = 0;  // --soak N: only the stress test with N calls and the graph test with N / 5 replays
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--mode" && i + 1 < argc) mode = argv[++i];
    else if (a == "--ranks" && i + 1 < argc) world = std::atoi(argv[++i]);
    else if (a == "--quick") quick = true;
    else if (a == "--soak" && i + 1 < argc) soak = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: test_allreduce [--mode threads|procs] [--ranks N] [--quick] [--soak CALLS]\n");
      return 2;
    }
  }
  comm_config cfg;
  cfg.timeout_ms = mode == "threads" ? 20000 : 60000;
  int ndev = 0;
  if (mode == "threads") {
    qrtest::require_gpu("test_allreduce");
    ndev = rt::device_count();
    // Ranks sharing a GPU in one process spin-wait on each other's blocks, so every block of every
    // rank must be resident at once: each rank gets half of its share of the multiprocessors.
    cfg.max_blocks = rt::multiprocessor_count(0) / (2 * ((world + ndev - 1) / ndev));
    std::printf("test_allreduce: %d ranks as threads on %d GPU(s) (%s), %d blocks each%s\n", world, ndev, rt::device_name(0).c_str(), cfg.max_blocks,
                quick ? ", quick" : "");
  } else {
    cfg.max_blocks = 16;  // processes time-slice a shared GPU anyway
    // The parent makes no CUDA call: a forked child cannot use a CUDA context its parent created.
    std::printf("test_allreduce: %d ranks as processes%s\n", world, quick ? ", quick" : "");
  }

  const rank_fn body = [&](ctx& c) {
    auto done = [&](const char* what) {
      if (c.rank == 0) std::printf("rank 0: %s done\n", what);
    };
    if (soak > 0) {
      const auto t0 = std::chrono::steady_clock::now();
      auto secs = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
      stress(c, soak);
      if (c.rank == 0) std::printf("rank 0: soak: %d calls in %.1f s\n", soak, secs());
      graphs(c, soak / 5);
      if (c.rank == 0) std::printf("rank 0: soak: %d graph replays, %.1f s in all\n", soak / 5, secs());
      return;
    }
    correctness(c);
    done("correctness");
    rmsnorm(c);
    done("rmsnorm");
    validation(c);
    counter_wrap(c);
    done("counter wrap");
    stress(c, mode == "threads" ? 2000 : 300);
    done("stress");
    graphs(c, mode == "threads" ? 50 : 10);
    done("graphs");
  };

  if (mode == "threads") {
    std::mutex mu;  // the scenarios' QR_EXPECTs from several threads
    run_ranks_as_threads(world, [&](int r, thread_bootstrap& bs) { rank_main(r, world, bs, cfg, quick, body); });

    comm_config big = cfg;  // the most tiles a step (big_rounds)
    big.round_bytes = 65536;
    big.max_blocks = 8;
    run_ranks_as_threads(world, [&](int r, thread_bootstrap& bs) {
      rank_main(r, world, bs, big, quick, [](ctx& c) {
        big_rounds(c);
        if (c.rank == 0) std::printf("rank 0: big rounds done\n");
      });
    });

    // A rank that never arrives: the others' kernels give up and report it.
    comm_config short_cfg = cfg;
    short_cfg.timeout_ms = 300;
    run_ranks_as_threads(world, [&](int r, thread_bootstrap& bs) {
      rt::set_device(r % ndev);
      f16* d;
      QR_CUDA(cudaMalloc(&d, 1 << 20));
      cudaStream_t s;  // not the legacy stream: it would serialize the ranks' kernels
      QR_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
      communicator comm(bs, short_cfg);
      int token = r;
      std::vector<int> all(static_cast<std::size_t>(world));
      if (r == world - 1) {  // never calls; keeps its workspace alive until the others are done
        bs.allgather(&token, all.data(), sizeof token);
        return;
      }
      try {
        comm.all_reduce<f16>(d, d, 100000, {codec_kind::fp4, algorithm_kind::two_shot}, s);
        QR_CUDA(cudaStreamSynchronize(s));
        comm.check();
        std::lock_guard l(mu);
        QR_EXPECT(false, "rank %d: the call without rank %d did not time out", r, world - 1);
      } catch (const error& e) {
        std::lock_guard l(mu);
        QR_EXPECT(e.code() == errc::timeout && std::strstr(e.what(), ("rank " + std::to_string(world - 1) + " did not arrive").c_str()),
                  "rank %d: expected a timeout naming rank %d, got: %s", r, world - 1, e.what());
        try {
          comm.all_reduce<f16>(d, d, 100, {}, s);
          QR_EXPECT(false, "rank %d: a call after a timeout was accepted", r);
        } catch (const error& e2) {
          QR_EXPECT(e2.code() == errc::timeout, "rank %d: a call after a timeout: %s", r, e2.what());
        }
      }
      bs.allgather(&token, all.data(), sizeof token);
      QR_CUDA(cudaFree(d));
    });

    // A late rank: ranks 0..W-2 make three one-shot calls with distinct data (directly, then as three
    // replays of a captured graph) while rank W-1 arrives only after they timed out. The late rank
    // must get an error naming itself as the rank that did not arrive, and its output must stay as
    // it was: never a sum of another call's data. The early ranks' later calls fail too.
    for (const bool graph : {false, true}) {
      run_ranks_as_threads(world, [&](int r, thread_bootstrap& bs) {
        rt::set_device(r % ndev);
        const std::size_t n = 4096;
        f16* d;
        QR_CUDA(cudaMalloc(&d, n * 2));
        cudaStream_t s;
        QR_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
        communicator comm(bs, short_cfg);
        const allreduce_options one_shot{codec_kind::none, algorithm_kind::one_shot};
        cudaGraphExec_t exec = nullptr;
        if (graph) {
          cudaGraph_t g;
          QR_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
          comm.all_reduce<f16>(d, d, n, one_shot, s);
          QR_CUDA(cudaStreamEndCapture(s, &g));
          QR_CUDA(cudaGraphInstantiate(&exec, g, 0));
          QR_CUDA(cudaGraphDestroy(g));
        }
        auto call = [&] {
          if (graph) QR_CUDA(cudaGraphLaunch(exec, s));
          else comm.all_reduce<f16>(d, d, n, one_shot, s);
          QR_CUDA(cudaStreamSynchronize(s));
          comm.check();
        };
        int token = r;
        std::vector<int> all(static_cast<std::size_t>(world));
        const std::string late = "rank " + std::to_string(world - 1) + " did not arrive";
        if (r != world - 1) {
          int errors = 0;
          for (int k = 0; k < 3; ++k) {
            QR_CUDA(cudaMemset(d, 0x10 + k, n * 2));  // distinct data per call
            try {
              call();
            } catch (const error& e) {
              ++errors;
              std::lock_guard l(mu);
              QR_EXPECT(e.code() == errc::timeout && std::strstr(e.what(), late.c_str()), "rank %d (%s): call %d: %s", r, graph ? "graph" : "direct",
                        k, e.what());
            }
          }
          std::lock_guard l(mu);
          QR_EXPECT(errors == 3, "rank %d (%s): %d of 3 calls without rank %d failed", r, graph ? "graph" : "direct", errors, world - 1);
        }
        bs.allgather(&token, all.data(), sizeof token);  // the late rank starts after the others gave up
        if (r == world - 1) {
          QR_CUDA(cudaMemset(d, 0x77, n * 2));
          try {
            call();
            std::lock_guard l(mu);
            QR_EXPECT(false, "rank %d (%s): a late call succeeded", r, graph ? "graph" : "direct");
          } catch (const error& e) {
            std::lock_guard l(mu);
            QR_EXPECT(e.code() == errc::timeout && std::strstr(e.what(), late.c_str()), "rank %d (%s): late call: %s", r, graph ? "graph" : "direct",
                      e.what());
          }
          std::vector<std::uint16_t> back(n);
          QR_CUDA(cudaMemcpy(back.data(), d, n * 2, cudaMemcpyDeviceToHost));
          std::lock_guard l(mu);
          QR_EXPECT(std::all_of(back.begin(), back.end(), [](std::uint16_t v) { return v == 0x7777; }),
                    "rank %d (%s): the late call wrote its output", r, graph ? "graph" : "direct");
        }
        bs.allgather(&token, all.data(), sizeof token);
        if (exec) QR_CUDA(cudaGraphExecDestroy(exec));
        QR_CUDA(cudaStreamDestroy(s));
        QR_CUDA(cudaFree(d));
      });
    }

    // Mismatched calls: rank 0 calls with another codec, count, type or epilogue than the others.
    // Every rank must get errc::mismatch describing both calls (never a sum, never a timeout), and a
    // later call on the same communicator must fail too.
    struct mismatch_case {
      const char* name;
      std::size_t n0, n;  // rank 0's count, the others'
      bool bf16_on_0;  // rank 0 calls with bf16, the others with fp16
      allreduce_options o0, o;
      const char *says0, *says;  // what the message must say of rank 0's call and of the others'
      bool fused_on_0 = false;  // rank 0 calls the fused residual + RMSNorm (one row of n0, y in fp16)
    };
    const mismatch_case cases[] = {
        {"two-shot codecs",
         100000,
         100000,
         false,
         {codec_kind::fp8, algorithm_kind::two_shot},
         {codec_kind::fp4, algorithm_kind::two_shot},
         "codec fp8",
         "codec fp4"},
        {"two-shot counts",
         4096,
         4104,
         false,
         {codec_kind::none, algorithm_kind::two_shot},
         {codec_kind::none, algorithm_kind::two_shot},
         "4096 fp16 values",
         "4104 fp16 values"},
        {"one-shot counts",
         4096,
         4104,
         false,
         {codec_kind::none, algorithm_kind::one_shot},
         {codec_kind::none, algorithm_kind::one_shot},
         "4096 fp16 values",
         "4104 fp16 values"},
        {"one-shot types",
         4096,
         4096,
         true,
         {codec_kind::none, algorithm_kind::one_shot},
         {codec_kind::none, algorithm_kind::one_shot},
         "4096 bf16 values",
         "4096 fp16 values"},
        {"one-shot fused against plain",
         4096,
         4096,
         false,
         {codec_kind::none, algorithm_kind::one_shot},
         {codec_kind::none, algorithm_kind::one_shot},
         "epilogue residual + RMSNorm",
         "epilogue identity",
         true},
    };
    for (const auto& mc : cases) {
      run_ranks_as_threads(world, [&](int r, thread_bootstrap& bs) {
        rt::set_device(r % ndev);
        const std::size_t n = r == 0 ? mc.n0 : mc.n;
        f16* d;  // x (n), then for the fused call the residual (n), y (n) and the weight (n)
        QR_CUDA(cudaMalloc(&d, 4 * n * 2));
        QR_CUDA(cudaMemset(d, 0x3c, 4 * n * 2));
        cudaStream_t s;
        QR_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
        {
          communicator comm(bs, short_cfg);
          auto call = [&] {
            if (r == 0 && mc.bf16_on_0) comm.all_reduce<bf16>(reinterpret_cast<bf16*>(d), reinterpret_cast<bf16*>(d), n, mc.o0, s);
            else if (r == 0 && mc.fused_on_0)
              comm.all_reduce_rmsnorm(d, d + n, d + 3 * n, d + n, epilogue::out_native<f16>{d + 2 * n}, 1, n, 1e-6f, dtype::f16, mc.o0, s);
            else comm.all_reduce<f16>(d, d, n, r == 0 ? mc.o0 : mc.o, s);
            QR_CUDA(cudaStreamSynchronize(s));
            comm.check();
          };
          try {
            call();
            std::lock_guard l(mu);
            QR_EXPECT(false, "rank %d (%s): a mismatched call succeeded", r, mc.name);
          } catch (const error& e) {
            std::lock_guard l(mu);
            QR_EXPECT(e.code() == errc::mismatch && std::strstr(e.what(), "calls differ") && std::strstr(e.what(), mc.says0) &&
                          std::strstr(e.what(), mc.says),
                      "rank %d (%s): expected a mismatch describing '%s' and '%s', got: %s", r, mc.name, mc.says0, mc.says, e.what());
          }
          try {
            call();
            std::lock_guard l(mu);
            QR_EXPECT(false, "rank %d (%s): a call after a mismatch was accepted", r, mc.name);
          } catch (const error& e) {
            std::lock_guard l(mu);
            QR_EXPECT(e.code() == errc::mismatch, "rank %d (%s): a call after a mismatch: %s", r, mc.name, e.what());
          }
          int token = r;
          std::vector<int> all(static_cast<std::size_t>(world));
          bs.allgather(&token, all.data(), sizeof token);  // nobody frees a workspace a peer may still read
        }
        QR_CUDA(cudaStreamDestroy(s));
        QR_CUDA(cudaFree(d));
      });
    }

    // Creation is collective: a rank that fails while creating (a configuration only it has, before
    // the first all-gather; an allocation that fails on its device, after the agreement) makes every
    // rank throw, naming it, where the others used to wait in an all-gather it never joined.
    for (const bool late : {false, true}) {
      if (late && (world != 2 || ndev < 2)) continue;  // the full device must be the failing rank's alone
      const int bad = world - 1;
      run_ranks_as_threads(world, [&](int r, thread_bootstrap& bs) {
        rt::set_device(r % ndev);
        comm_config mine = cfg;
        std::vector<void*> hog;  // the failing rank's device, filled up
        if (r == bad && !late) mine.timeout_ms = 0;
        if (r == bad && late) {
          std::size_t free_b = 0, total_b = 0;
          QR_CUDA(cudaMemGetInfo(&free_b, &total_b));
          for (std::size_t chunk = std::size_t(1) << 30; chunk >= (std::size_t(1) << 20); chunk /= 2)
            for (void* p; cudaMalloc(&p, chunk) == cudaSuccess;) hog.push_back(p);
          (void)cudaGetLastError();
        }
        try {
          communicator comm(bs, mine);
          std::lock_guard l(mu);
          QR_EXPECT(false, "rank %d: created a communicator while rank %d failed (%s)", r, bad, late ? "allocation" : "configuration");
        } catch (const error& e) {
          std::lock_guard l(mu);
          const std::string named = "rank " + std::to_string(bad) + " could not create the communicator";
          if (r == bad)
            QR_EXPECT(late ? e.code() == errc::runtime : (e.code() == errc::invalid_argument && std::strstr(e.what(), "timeout_ms")),
                      "rank %d: its own failure (%s): %s", r, late ? "allocation" : "configuration", e.what());
          else
            QR_EXPECT(e.code() == (late ? errc::runtime : errc::invalid_argument) && std::strstr(e.what(), named.c_str()),
                      "rank %d: expected an error naming rank %d (%s), got: %s", r, bad, late ? "allocation" : "configuration", e.what());
        }
        for (void* p : hog) QR_CUDA(cudaFree(p));
      });
    }

    // abort() from one rank's host stops every rank's kernels at once (not at the 20 s timeout), every
    // rank's check() names the aborting rank, and a new communicator created collectively works.
    {
      run_ranks_as_threads(world, [&](int r, thread_bootstrap& bs) {
        rt::set_device(r % ndev);
        const std::size_t n = 100000;
        f16* d;
        QR_CUDA(cudaMalloc(&d, n * 2));
        cudaStream_t s;
        QR_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
        int token = r;
        std::vector<int> all(static_cast<std::size_t>(world));
        {
          communicator comm(bs, cfg);  // timeout 20 s
          const auto t0 = std::chrono::steady_clock::now();
          if (r != world - 1) {  // the last rank does not call: the others wait for it
            comm.all_reduce<f16>(d, d, n, {codec_kind::fp4, algorithm_kind::two_shot}, s);
            if (r == 0) {
              std::this_thread::sleep_for(std::chrono::milliseconds(300));
              comm.abort();
            }
            QR_CUDA(cudaStreamSynchronize(s));
          }
          bs.allgather(&token, all.data(), sizeof token);  // every rank's kernels have stopped
          if (r == world - 1) {  // idle through the abort: its next call stops at entry
            comm.all_reduce<f16>(d, d, n, {codec_kind::fp4, algorithm_kind::two_shot}, s);
            QR_CUDA(cudaStreamSynchronize(s));
          }
          // That call, stopping, raises every rank's abort word: no rank frees its workspace before
          // it is done (destroying a communicator is collective, after every rank's calls ended).
          bs.allgather(&token, all.data(), sizeof token);
          const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          try {
            comm.check();
            std::lock_guard l(mu);
            QR_EXPECT(false, "rank %d: check() passed after rank 0's abort()", r);
          } catch (const error& e) {
            std::lock_guard l(mu);
            QR_EXPECT(e.code() == errc::failed_state && std::strstr(e.what(), "rank 0 aborted the communicator"),
                      "rank %d: after rank 0's abort(): %s", r, e.what());
          }
          std::lock_guard l(mu);
          QR_EXPECT(secs < 5.0, "rank %d: the aborted call took %.1f s (timeout 20 s)", r, secs);
          QR_EXPECT(comm.dead_peers().empty(), "rank %d: ranks of this process reported dead", r);
        }
        // recovery: a new communicator, created on every rank together, sums correctly
        communicator again(bs, cfg);
        std::vector<std::uint16_t> ones(n, 0x3c00);  // 1.0
        QR_CUDA(cudaMemcpy(d, ones.data(), n * 2, cudaMemcpyHostToDevice));
        again.all_reduce<f16>(d, d, n, {codec_kind::none, algorithm_kind::two_shot}, s);
        QR_CUDA(cudaStreamSynchronize(s));
        again.check();
        QR_CUDA(cudaMemcpy(ones.data(), d, n * 2, cudaMemcpyDeviceToHost));
        std::lock_guard l(mu);
        QR_EXPECT(numeric::to_float(f16{ones[0]}) == float(world) && numeric::to_float(f16{ones[n - 1]}) == float(world),
                  "rank %d: after recreating, the sum is %g, want %d", r, numeric::to_float(f16{ones[0]}), world);
        QR_CUDA(cudaStreamDestroy(s));
        QR_CUDA(cudaFree(d));
      });
    }

    // A communicator compiled for one codec and two ranks: other codecs are refused with the list of
    // its codecs and nothing written; other world sizes are refused at creation, on every rank.
    using int8_pair = basic_communicator<transport::default_transport, codec_set<codec::int8>, world_set<2>>;
    run_ranks_as_threads(world, [&](int r, thread_bootstrap& bs) {
      rt::set_device(r % ndev);
      try {
        int8_pair comm(bs, cfg);
        QR_EXPECT(world == 2, "rank %d: a communicator compiled for 2 ranks was created with %d", r, world);
        f16* d;
        QR_CUDA(cudaMalloc(&d, 1 << 20));
        QR_CUDA(cudaMemset(d, 0x3c, 1 << 20));
        cudaStream_t s;
        QR_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
        try {
          comm.all_reduce<f16>(d, d, 100000, {codec_kind::fp4, algorithm_kind::two_shot}, s);
          QR_EXPECT(false, "rank %d: fp4 accepted by a communicator compiled for int8", r);
        } catch (const error& e) {
          QR_EXPECT(e.code() == errc::invalid_argument && std::strstr(e.what(), "codec fp4 is not compiled") && std::strstr(e.what(), "none, int8"),
                    "rank %d: fp4 on an int8 communicator: %s", r, e.what());
        }
        std::vector<std::uint16_t> back(100000);
        QR_CUDA(cudaMemcpy(back.data(), d, back.size() * 2, cudaMemcpyDeviceToHost));
        QR_EXPECT(std::all_of(back.begin(), back.end(), [](std::uint16_t v) { return v == 0x3c3c; }), "rank %d: a refused call wrote", r);
        comm.all_reduce<f16>(d, d, 100000, {codec_kind::int8, algorithm_kind::two_shot}, s);  // 1.0586 on every rank
        QR_CUDA(cudaStreamSynchronize(s));
        comm.check();
        QR_CUDA(cudaMemcpy(back.data(), d, back.size() * 2, cudaMemcpyDeviceToHost));
        const float want = 2.0f * numeric::to_float(f16{std::uint16_t(0x3c3c)});
        QR_EXPECT(std::abs(numeric::to_float(f16{back[0]}) - want) < 0.02f, "rank %d: int8 sum %g, want %g", r, numeric::to_float(f16{back[0]}),
                  want);
        QR_CUDA(cudaStreamDestroy(s));
        QR_CUDA(cudaFree(d));
      } catch (const error& e) {
        QR_EXPECT(world != 2 && e.code() == errc::unsupported && std::strstr(e.what(), "compiled for 2 ranks"),
                  "rank %d: creating a 2-rank communicator with %d ranks: %s", r, world, e.what());
      }
    });
    return qrtest::finish("test_allreduce");
  }

  // procs: fork before any CUDA call in the children
  const std::string name = "test-" + std::to_string(::getpid());
  std::vector<pid_t> kids;
  for (int r = 0; r < world; ++r) {
    const pid_t p = ::fork();
    if (p == 0) {
      if (rt::device_count() == 0) {
        std::printf("rank %d: SKIPPED: no GPU visible\n", r);
        std::_Exit(0);
      }
      try {
        socket_bootstrap bs(r, world, name, std::chrono::seconds(120));
        rank_main(r, world, bs, cfg, quick, body);
      } catch (const std::exception& e) {
        QR_EXPECT(false, "rank %d threw: %s", r, e.what());
      }
      std::printf("rank %d: %d passed, %d failed\n", r, qrtest::passes.load(), qrtest::failures.load());
      std::fflush(stdout);
      std::_Exit(qrtest::failures == 0 ? 0 : 1);
    }
    kids.push_back(p);
  }
  int failed_ranks = 0;
  for (pid_t p : kids) {
    int st = 0;
    ::waitpid(p, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) ++failed_ranks;
  }
  QR_EXPECT(failed_ranks == 0, "%d of %d rank processes failed", failed_ranks, world);

  // A peer whose process dies after creation: the others' host sees it (dead_peers), and their call
  // that waited for it fails naming its exited process, not a late rank.
  const std::string dead_name = "dead-" + std::to_string(::getpid());
  std::vector<pid_t> kids2;
  for (int r = 0; r < world; ++r) {
    const pid_t p = ::fork();
    if (p == 0) {
      if (rt::device_count() == 0) std::_Exit(0);
      int failures = 0;
      try {
        socket_bootstrap bs(r, world, dead_name, std::chrono::seconds(120));
        rt::set_device(r % rt::device_count());
        comm_config short_cfg = cfg;
        short_cfg.timeout_ms = 2000;
        communicator comm(bs, short_cfg);
        int token = r;
        std::vector<int> all(static_cast<std::size_t>(world));
        bs.allgather(&token, all.data(), sizeof token);  // every rank created it
        if (r == world - 1) std::_Exit(0);  // dies without closing anything
        for (int i = 0; i < 400 && comm.dead_peers().empty(); ++i) ::usleep(5000);
        const std::vector<int> dead = comm.dead_peers();
        if (dead.size() != 1 || dead[0] != world - 1) {
          std::printf("rank %d: FAIL dead_peers() did not name rank %d alone\n", r, world - 1);
          ++failures;
        }
        f16* d;
        QR_CUDA(cudaMalloc(&d, 1 << 20));
        cudaStream_t s;
        QR_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
        comm.all_reduce<f16>(d, d, 4096, {codec_kind::none, algorithm_kind::one_shot}, s);
        QR_CUDA(cudaStreamSynchronize(s));
        try {
          comm.check();
          std::printf("rank %d: FAIL a call with rank %d dead passed\n", r, world - 1);
          ++failures;
        } catch (const error& e) {
          const std::string want = "rank " + std::to_string(world - 1) + "'s process (pid ";
          if (e.code() != errc::timeout || !std::strstr(e.what(), want.c_str()) || !std::strstr(e.what(), ") has exited")) {
            std::printf("rank %d: FAIL expected a timeout naming rank %d's exited process, got: %s\n", r, world - 1, e.what());
            ++failures;
          }
        }
      } catch (const std::exception& e) {
        std::printf("rank %d: FAIL threw: %s\n", r, e.what());
        ++failures;
      }
      failures += qrtest::failures.load();
      std::printf("rank %d: dead peer: %s\n", r, failures == 0 ? "passed" : "FAILED");
      std::fflush(stdout);
      std::_Exit(failures == 0 ? 0 : 1);
    }
    kids2.push_back(p);
  }
  int failed2 = 0;
  for (pid_t p : kids2) {
    int st = 0;
    ::waitpid(p, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) ++failed2;
  }
  QR_EXPECT(failed2 == 0, "a dead peer: %d of %d rank processes failed", failed2, world);
  return qrtest::finish("test_allreduce");
}
