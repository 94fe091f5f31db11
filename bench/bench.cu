// qreduce_bench: qreduce's all-reduce against NCCL, on the local GPUs.
//
//   qreduce_bench [allreduce options]     one process per GPU (default: every visible GPU)
//   qreduce_bench codecs [--bytes N]      encode/decode throughput of every codec on GPU 0
//
// All-reduce options:
//   --ranks N            N processes; more ranks than GPUs share GPUs (functional runs only: the
//                        GPU time-slices between processes, so such timings mean nothing)
//   --sizes a,b,..       message sizes in bytes (K/M/G suffixes); default 4K..1G, powers of two
//   --max-size S         largest default size
//   --dtypes fp16,bf16   --codecs none,fp8,...   --algorithms oneshot,twoshot,auto,nccl
//   --iters N --warmup N --graph (graph replays timed at every size; by default up to 1 MiB)
//   --threads            ranks as threads of one process (on a shared GPU their kernels run side by
//                        side: local costs compare, link speed does not)
//   --fused              residual + RMSNorm epilogue: plain all-reduce vs fused vs all-reduce followed
//                        by a separate add+RMSNorm kernel, bf16, 1..16384 tokens at hidden 4096/8192
//   --out DIR            CSV and JSON results (default build/bench)
// Timing: CUDA events around each call after warm-up, rotating among buffer sets larger than the L2,
// median with p10/p90 over the iterations, the slowest rank's median reported. algbw = bytes / time;
// busbw = algbw * 2(W-1)/W (nccl-tests' convention). Every configuration's output is checked in the
// same run against an fp64 sum of a sample of positions, and across ranks for bitwise identity.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <thread>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>
#include "codecs.hpp"
#include "common.hpp"
#include "fused.hpp"
#include "model.hpp"

namespace bench {

result run_config(rank_ctx& x, const options& o, const config& c, std::vector<void*>& ins, std::vector<void*>& outs, std::uint32_t& seed) {
  const std::size_t n = c.bytes / 2;
  const std::size_t sets = ins.size();
  for (std::size_t k = 0; k < sets; ++k) {
    if (c.type == dtype::f16) fill_kernel<f16><<<1024, 256, 0, x.s>>>(static_cast<f16*>(ins[k]), n, x.rank, seed + std::uint32_t(k));
    else fill_kernel<bf16><<<1024, 256, 0, x.s>>>(static_cast<bf16*>(ins[k]), n, x.rank, seed + std::uint32_t(k));
    rt::check_launch("fill_kernel");
  }
  // correctness: set 0, checked on a sample against the fp64 sum, and across ranks
  CK(cudaMemsetAsync(outs[0], 0xff, c.bytes, x.s));
  launch(x, c, ins[0], outs[0], n);
  const std::size_t samples = std::min<std::size_t>(n, 4096);
  const std::size_t stride = n / samples;
  CK(cudaStreamSynchronize(x.s));
  x.comm->check();
  std::uint16_t* sample = x.pinned;  // pinned: pageable copies can serialize against a peer's kernel
  CK(cudaMemcpy2DAsync(sample, 2, outs[0], 2 * stride, 2, samples, cudaMemcpyDeviceToHost, x.s));
  CK(cudaStreamSynchronize(x.s));
  double num = 0, den = 0;
  std::uint64_t h = 1469598103934665603ull;
  for (std::size_t j = 0; j < samples; ++j) {
    const std::size_t i = j * stride;
    double ref = 0;
    for (int r = 0; r < x.world; ++r) {
      const float v = input_value(r, seed, i);
      ref += c.type == dtype::f16 ? double(numeric::to_float(numeric::to_f16(v))) : double(numeric::to_float(numeric::to_bf16(v)));
    }
    const double g = c.type == dtype::f16 ? numeric::to_float(f16{sample[j]}) : numeric::to_float(bf16{sample[j]});
    num += (g - ref) * (g - ref);
    den += ref * ref;
    h = (h ^ sample[j]) * 1099511628211ull;
  }
  const auto hashes = gather(x, h);
  result res{
      c, c.algorithm, 0, 0, 0, std::sqrt(num / den), std::all_of(hashes.begin(), hashes.end(), [&](std::uint64_t v) { return v == hashes[0]; })};
  if (c.algorithm == "auto") res.ran = algorithm_name(x.comm->choice(c.bytes, c.codec).algorithm);

  // timing: each call between two events, median; then, for small messages (or --graph), the same calls
  // captured in one graph, whose replays are timed as a whole (median of 5, per call)
  std::vector<cudaEvent_t> ev(2 * std::size_t(o.iters));
  for (auto& e : ev) CK(cudaEventCreate(&e));
  for (int i = 0; i < o.warmup; ++i) launch(x, c, ins[std::size_t(i) % sets], outs[std::size_t(i) % sets], n);
  std::vector<float> ms(static_cast<std::size_t>(o.iters));
  for (int i = 0; i < o.iters; ++i) {
    CK(cudaEventRecord(ev[2 * std::size_t(i)], x.s));
    launch(x, c, ins[std::size_t(i) % sets], outs[std::size_t(i) % sets], n);
    CK(cudaEventRecord(ev[2 * std::size_t(i) + 1], x.s));
  }
  CK(cudaStreamSynchronize(x.s));
  for (int i = 0; i < o.iters; ++i) CK(cudaEventElapsedTime(&ms[std::size_t(i)], ev[2 * std::size_t(i)], ev[2 * std::size_t(i) + 1]));
  x.comm->check();
  const t3 mine{1e3 * percentile(ms, 0.5), 1e3 * percentile(ms, 0.1), 1e3 * percentile(ms, 0.9)};
  const auto all = gather(x, mine);
  const auto slowest = *std::max_element(all.begin(), all.end(), [](const t3& a, const t3& b) { return a.med < b.med; });
  res.median_us = slowest.med;
  res.p10_us = slowest.p10;
  res.p90_us = slowest.p90;
  if (o.graph || c.bytes <= graph_default_max_bytes)
    res.graph_us = graph_time_us(x, o, [&, i = std::size_t(0)]() mutable {
      launch(x, c, ins[i % sets], outs[i % sets], n);
      ++i;
    });
  for (auto& e : ev) CK(cudaEventDestroy(e));
  seed += 1000;
  return res;
}

// The bandwidths the model needs, measured here: the device-local copy (read + write), and, with one
// GPU per rank, the stores of every rank into the next rank's memory at once (through the
// communicator's mapping of its two-shot scatter slots, which no call uses meanwhile). Slowest rank's.
bench::machine_model measure_machine(rank_ctx& x, int ranks_per_gpu) {
  bench::machine_model m;
  m.world = x.world;
  m.ranks_per_gpu = ranks_per_gpu;
  auto time_ms = [&](auto&& body) { return median_ms(x.s, 10, body); };
  const std::size_t bytes = std::size_t(256) << 20;
  void* src = rt::malloc_device(bytes);
  void* dst = rt::malloc_device(bytes);
  // one rank at a time: ranks that share a GPU would otherwise measure half of its bandwidth each
  for (int r = 0; r < x.world; ++r) {
    gather(x, 0);
    if (r == x.rank) {
      const double copy_ms = time_ms([&] { CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, x.s)); });
      m.copy_GBps = 2.0 * double(bytes) / (copy_ms * 1e6);
    }
  }
  gather(x, 0);
  if (ranks_per_gpu == 1) {
    const auto& h = x.comm->handle();
    const std::size_t region = h.layout.gather_off - h.layout.scatter_off, reps = 8;
    auto* peer = reinterpret_cast<uint4*>(h.peer[(x.rank + 1) % x.world] + h.layout.scatter_off);
    const int grid = 4 * rt::multiprocessor_count(x.device);
    const double ms = time_ms([&] {
      store_kernel<<<grid, 256, 0, x.s>>>(peer, region / 16, int(reps));
      rt::check_launch("store_kernel");
    });
    m.link_GBps = double(region * reps) / (ms * 1e6);
  }
  CK(cudaStreamSynchronize(x.s));
  gather(x, 0);  // no call starts before every rank stopped writing into its peer's slots
  rt::free_device(src);
  rt::free_device(dst);
  const auto all = gather(x, m);
  for (const auto& o : all) {
    m.copy_GBps = std::min(m.copy_GBps, o.copy_GBps);
    m.link_GBps = std::min(m.link_GBps, o.link_GBps);
  }
  return m;
}

int rank_main(int rank, int world, const options& o, bootstrap& bs) {
  const int ndev = rt::device_count();
  const int dev = rank % ndev;
  rt::set_device(dev);
  comm_config cfg = config_from_env();
  // Threads sharing a GPU need every block of every rank resident at once; processes time-slice.
  if (world > ndev)
    cfg.max_blocks = cfg.max_blocks ? cfg.max_blocks : (o.threads ? rt::multiprocessor_count(dev) / (2 * ((world + ndev - 1) / ndev)) : 16);
  if (world > ndev) cfg.timeout_ms = std::max<std::uint64_t>(cfg.timeout_ms, 120000);
  bench_communicator comm(bs, cfg);
  nccl_api nccl;
  const bool have_nccl = nccl.load();
  rank_ctx x{rank, world, dev, &bs, &comm, &nccl, nullptr, nullptr, 0, nullptr};
  CK(cudaStreamCreateWithFlags(&x.s, cudaStreamNonBlocking));
  CK(cudaMallocHost(&x.pinned, 4096 * 2));
  int l2 = 0;
  CK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev));
  x.l2 = std::size_t(l2);
  // NCCL refuses two ranks on one GPU.
  const bool want_nccl = world <= ndev && std::find(o.algorithms.begin(), o.algorithms.end(), "nccl") != o.algorithms.end();
  int nccl_version = 0;
  if (want_nccl && have_nccl) {
    ncclUniqueId id{};
    if (rank == 0) nccl.check(nccl.get_unique_id(&id), "ncclGetUniqueId");
    std::vector<char> ids(sizeof id * static_cast<std::size_t>(world));
    bs.allgather(&id, ids.data(), sizeof id);
    std::memcpy(&id, ids.data(), sizeof id);  // rank 0's
    nccl.check(nccl.comm_init_rank(&x.ncomm, world, id, rank), "ncclCommInitRank");
    comm.set_fallback([&](const void* in, void* out, std::size_t n, dtype t, cudaStream_t s) {
      nccl.check(nccl.all_reduce(in, out, n, t == dtype::f16 ? ncclFloat16 : ncclBfloat16, ncclSum, x.ncomm, s), "ncclAllReduce");
    });
    nccl.get_version(&nccl_version);
  }
  const bench::machine_model model = measure_machine(x, (world + ndev - 1) / ndev);
  if (rank == 0) {
    std::printf("qreduce_bench: %d ranks on %d x %s, qreduce blocks %d (one-shot %d), workspace %.1f MiB/rank, NCCL %s\n", world,
                std::min(world, ndev), machine_name(dev).c_str(), comm.blocks(), comm.oneshot_blocks(), double(comm.workspace_bytes()) / (1 << 20),
                !have_nccl     ? "not found"
                : want_nccl    ? std::to_string(nccl_version).c_str()
                : world > ndev ? "not used (ranks share a GPU)"
                               : "not asked for (--algorithms)");
    if (model.ranks_per_gpu == 1)
      std::printf("model: device copy %.0f GB/s (read + write), peer stores %.0f GB/s per direction (every rank at once)\n", model.copy_GBps,
                  model.link_GBps);
    else
      std::printf("model: device copy %.0f GB/s (read + write), shared by the %d ranks on each GPU; no link\n", model.copy_GBps, model.ranks_per_gpu);
    if (world > ndev && !o.threads)
      std::printf(
          "WARNING: %d ranks share %d GPU(s): the GPU time-slices between processes, so these timings say\n"
          "         nothing about speed. This run checks function only.\n",
          world, ndev);
    if (world > ndev && o.threads)
      std::printf(
          "WARNING: %d ranks are threads sharing %d GPU(s): their kernels run side by side and the \"links\" are\n"
          "         the GPU's own memory. Local costs (codecs, epilogues) compare; link speed does not.\n",
          world, ndev);
    std::fflush(stdout);
  }

  if (o.fused) {
    const int rc = fused_bench(x, o);
    gather(x, rank);
    if (x.ncomm) nccl.comm_destroy(x.ncomm);
    return rc;
  }
  std::vector<config> configs;
  for (std::size_t b : o.sizes)
    for (dtype t : o.dtypes)
      for (const auto& a : o.algorithms) {
        if (a == "nccl") {
          if (x.ncomm) configs.push_back(config{a, codec_kind::none, t, b});
        } else if (a == "oneshot") {
          if (b / 2 <= comm.max_oneshot_values()) configs.push_back(config{a, codec_kind::none, t, b});
        } else {
          for (codec_kind k : o.codecs) configs.push_back(config{a, k, t, b});
        }
      }
  const std::size_t max_bytes = *std::max_element(o.sizes.begin(), o.sizes.end());
  const std::size_t sets = std::max<std::size_t>(1, std::min<std::size_t>(8, (3 * x.l2 + max_bytes - 1) / max_bytes));
  std::vector<void*> ins(sets), outs(sets);
  for (std::size_t k = 0; k < sets; ++k) {
    ins[k] = rt::malloc_device(max_bytes);
    outs[k] = rt::malloc_device(max_bytes);
  }
  std::vector<result> results;
  std::uint32_t seed = 1;
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < configs.size(); ++i) {
    const auto& c = configs[i];
    if (rank == 0) {
      const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "\r[%4zu/%zu] %-4s %-6s %-8s %-8s  %5.0f s elapsed   ", i + 1, configs.size(), dtype_name(c.type), codec_name(c.codec),
                   c.algorithm.c_str(), human(c.bytes).c_str(), el);
      std::fflush(stderr);
    }
    // rotation sets for this size: as many as fit in the allocation set count
    std::vector<void*> in_s(ins.begin(), ins.begin() + std::ptrdiff_t(std::max<std::size_t>(1, std::min(sets, (3 * x.l2 + c.bytes - 1) / c.bytes))));
    std::vector<void*> out_s(outs.begin(), outs.begin() + std::ptrdiff_t(in_s.size()));
    results.push_back(run_config(x, o, c, in_s, out_s, seed));
  }
  if (rank == 0) std::fprintf(stderr, "\n");

  if (rank == 0) {
    // NCCL time per (dtype, bytes) for the speedup column
    std::map<std::pair<int, std::size_t>, double> nccl_us, nccl_graph_us;
    for (const auto& r : results)
      if (r.c.algorithm == "nccl") {
        nccl_us[{int(r.c.type), r.c.bytes}] = r.median_us;
        nccl_graph_us[{int(r.c.type), r.c.bytes}] = r.graph_us;
      }
    std::printf("\n%-5s %-9s %-9s %-9s %10s %10s %10s %9s %9s %8s %9s %8s %9s %8s %10s %4s\n", "dtype", "size", "algorithm", "codec", "median_us",
                "p10_us", "p90_us", "algbw", "busbw", "vs_nccl", "graph_us", "vs_nccl", "limit_us", "of_limit", "rel_l2", "same");
    std::system(("mkdir -p '" + o.out + "'").c_str());
    const std::string stem = o.out + "/allreduce_w" + std::to_string(world);
    std::ofstream csv(stem + ".csv"), js(stem + ".json");
    csv << "dtype,bytes,algorithm,ran,codec,median_us,p10_us,p90_us,algbw_GBps,busbw_GBps,speedup_vs_nccl,graph_us,graph_speedup_vs_nccl,"
           "limit_us,of_limit,rel_l2,identical\n";
    js << "{\n  \"machine\": \"" << machine_name(dev) << "\",\n  \"gpus\": " << std::min(world, ndev) << ",\n  \"world\": " << world
       << ",\n  \"arch\": " << rt::device_arch(dev) << ",\n  \"date\": \"" << today() << "\",\n  \"nccl_version\": " << nccl_version
       << ",\n  \"copy_GBps\": " << model.copy_GBps << ",\n  \"link_GBps\": " << model.link_GBps
       << ",\n  \"timings_meaningful\": " << (world <= ndev ? "true" : "false")
       << ",\n  \"graph_max_bytes\": " << (o.graph ? std::string("null") : std::to_string(graph_default_max_bytes)) << ",\n  \"results\": [\n";
    for (std::size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      const double s = double(r.c.bytes) / (r.median_us * 1e3);  // GB/s
      const double bus = s * 2.0 * (world - 1) / world;
      const auto it = nccl_us.find({int(r.c.type), r.c.bytes});
      const double sp = it != nccl_us.end() ? it->second / r.median_us : 0.0;
      const auto ig = nccl_graph_us.find({int(r.c.type), r.c.bytes});
      const double gsp = ig != nccl_graph_us.end() && ig->second > 0 && r.graph_us > 0 ? ig->second / r.graph_us : 0.0;
      // the model's limit: for the two-shot and NCCL (the one-shot's is not modelled)
      const double ratio =
          visit_codec(r.c.codec, [](auto tag) { return double(codec::tile_bytes<typename decltype(tag)::type>) / (2.0 * codec::tile_values); });
      const bool modelled = r.c.algorithm == "nccl" || r.ran == "twoshot";
      const double lim = modelled ? bench::limit_us(model, double(r.c.bytes), ratio, r.c.algorithm == "nccl") : 0.0;
      const double of = lim > 0 ? lim / r.median_us : 0.0;
      std::printf("%-5s %-9s %-9s %-9s %10.1f %10.1f %10.1f %9.1f %9.1f %8.2f %9.1f %8.2f %9.1f %8.2f %10.2e %4s\n", dtype_name(r.c.type),
                  human(r.c.bytes).c_str(), r.c.algorithm == "auto" ? ("auto:" + r.ran).c_str() : r.c.algorithm.c_str(),
                  r.c.algorithm == "nccl" ? "-" : codec_name(r.c.codec), r.median_us, r.p10_us, r.p90_us, s, bus, sp, r.graph_us, gsp, lim, of,
                  r.rel_l2, r.identical ? "yes" : "NO");
      csv << dtype_name(r.c.type) << "," << r.c.bytes << "," << r.c.algorithm << "," << r.ran << "," << codec_name(r.c.codec) << "," << r.median_us
          << "," << r.p10_us << "," << r.p90_us << "," << s << "," << bus << "," << sp << "," << r.graph_us << "," << gsp << "," << lim << "," << of
          << "," << r.rel_l2 << "," << (r.identical ? 1 : 0) << "\n";
      js << "    {\"dtype\": \"" << dtype_name(r.c.type) << "\", \"bytes\": " << r.c.bytes << ", \"algorithm\": \"" << r.c.algorithm
         << "\", \"ran\": \"" << r.ran << "\", \"codec\": \"" << codec_name(r.c.codec) << "\", \"median_us\": " << r.median_us
         << ", \"p10_us\": " << r.p10_us << ", \"p90_us\": " << r.p90_us << ", \"algbw_GBps\": " << s << ", \"busbw_GBps\": " << bus
         << ", \"speedup_vs_nccl\": " << sp << ", \"graph_us\": " << r.graph_us << ", \"graph_speedup_vs_nccl\": " << gsp << ", \"limit_us\": " << lim
         << ", \"rel_l2\": " << r.rel_l2 << ", \"identical\": " << (r.identical ? "true" : "false") << "}" << (i + 1 < results.size() ? "," : "")
         << "\n";
    }
    js << "  ]\n}\n";
    std::printf("\nwrote %s.csv and %s.json\n", stem.c_str(), stem.c_str());
  }
  int bad = 0;
  for (const auto& r : results) bad += r.identical ? 0 : 1;
  for (std::size_t k = 0; k < sets; ++k) {
    rt::free_device(ins[k]);
    rt::free_device(outs[k]);
  }
  if (x.ncomm) nccl.comm_destroy(x.ncomm);
  gather(x, rank);  // nobody frees its workspace while a peer still runs
  CK(cudaFreeHost(x.pinned));
  return bad == 0 ? 0 : 3;
}

int usage(std::FILE* to = stderr, int status = 2) {
  std::fprintf(to,
               "usage: qreduce_bench [--ranks N] [--sizes a,b,..] [--max-size S] [--dtypes fp16,bf16] [--codecs none,fp8,...]\n"
               "                     [--algorithms oneshot,twoshot,auto,nccl] [--iters N] [--warmup N] [--graph] [--threads]\n"
               "                     [--fused] [--out DIR]\n"
               "       qreduce_bench codecs [--bytes N] [--out DIR]\n"
               "Sizes take K, M, G suffixes. Every row is checked against an fp64 sum and across ranks, and printed\n"
               "beside NCCL (same run) and the model's limit from the bandwidths measured at the start. Messages up to\n"
               "1 MiB are also timed as CUDA graph replays (graph_us, vs NCCL's graph replays); --graph does so at every size.\n");
  return status;
}

}  // namespace bench

using namespace bench;

int main(int argc, char** argv) {
  options o;
  std::size_t codec_bytes = std::size_t(1) << 30;
  bool codecs_mode = argc > 1 && std::string(argv[1]) == "codecs";
  bool sizes_given = false, iters_given = false, codecs_given = false;
  for (int i = codecs_mode ? 2 : 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    try {
      if (a == "--ranks") o.ranks = parse_count(a, next(), 1, 64);
      else if (a == "--sizes") {
        for (auto& s : split(next())) o.sizes.push_back(parse_size(a, s));
        sizes_given = true;
      } else if (a == "--max-size") o.max_size = parse_size(a, next(), 4096);
      else if (a == "--dtypes") {
        o.dtypes.clear();
        for (auto& s : split(next())) {
          if (s != "fp16" && s != "bf16") throw std::runtime_error("unknown dtype " + s);
          o.dtypes.push_back(s == "fp16" ? dtype::f16 : dtype::bf16);
        }
      } else if (a == "--codecs") {
        codecs_given = true;
        o.codecs.clear();
        for (auto& s : split(next())) {
          auto k = parse_codec(s);
          if (!k) throw std::runtime_error("unknown codec " + s);
          o.codecs.push_back(*k);
        }
      } else if (a == "--algorithms") {
        o.algorithms = split(next());
        for (auto& s : o.algorithms)
          if (s != "oneshot" && s != "twoshot" && s != "auto" && s != "nccl") throw std::runtime_error("unknown algorithm " + s);
      } else if (a == "--iters") {
        o.iters = parse_count(a, next(), 1, 100000);
        iters_given = true;
      } else if (a == "--warmup") o.warmup = parse_count(a, next(), 0, 100000);
      else if (a == "--graph") o.graph = true;
      else if (a == "--threads") o.threads = true;
      else if (a == "--fused") {
        o.fused = true;
        if (!codecs_given) o.codecs = {codec_kind::none, codec_kind::fp8, codec_kind::fp4};
      } else if (a == "--out") o.out = next();
      else if (a == "--bytes") codec_bytes = parse_size(a, next(), 1 << 20);
      else if (a == "--help" || a == "-h") return usage(stdout, 0);
      else throw std::runtime_error("unknown option " + a);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "qreduce_bench: %s\n", e.what());
      return usage();
    }
  }
  if (codecs_mode) return codec_throughput(codec_bytes, o.out);

  // The parent makes no CUDA call (forked children could not use it); nvidia-smi-free GPU count:
  // a child probes it.
  int ngpu = 0;
  {
    int fd[2];
    if (pipe(fd) != 0) return 1;
    const pid_t p = fork();
    if (p == 0) {
      const int n = rt::device_count();
      (void)!write(fd[1], &n, sizeof n);
      std::_Exit(0);
    }
    (void)!read(fd[0], &ngpu, sizeof ngpu);
    waitpid(p, nullptr, 0);
    close(fd[0]);
    close(fd[1]);
  }
  if (ngpu == 0) {
    std::printf("qreduce_bench: no GPU visible; nothing to measure (tools/run.sh runs the CPU accuracy table)\n");
    return 0;
  }
  const int world = o.ranks > 0 ? o.ranks : ngpu;
  if (!all_worlds::contains(world)) {
    std::fprintf(stderr, "qreduce_bench: %d ranks: qreduce runs %s ranks (use --ranks N to run N ranks on fewer GPUs)\n", world,
                 all_worlds::names().c_str());
    return 2;
  }
  if (!bench_communicator::worlds::contains(world)) {
    std::fprintf(stderr, "qreduce_bench: %d ranks: this build runs %s ranks only (built with QREDUCE_BENCH_WORLDS)\n", world,
                 bench_communicator::worlds::names().c_str());
    return 2;
  }
  const bool shared = world > ngpu;
  if (!sizes_given) {
    const std::size_t top = shared ? std::min<std::size_t>(o.max_size, 4u << 20) : o.max_size;
    for (std::size_t b = 4096; b <= top; b *= 2) o.sizes.push_back(b);
  }
  if (shared && !iters_given && !o.threads) {
    o.iters = 5;
    o.warmup = 1;
  }
  for (std::size_t b : o.sizes)
    if (b < 16 || b % 16) {
      std::fprintf(stderr, "qreduce_bench: sizes must be multiples of 16 bytes\n");
      return 2;
    }
  if (o.threads) {
    // ranks as threads: their kernels spin on each other, so no stream may share a hardware queue
    // and every kernel is loaded up front (docs/design.md)
    ::setenv("CUDA_DEVICE_MAX_CONNECTIONS", "32", 0);
    ::setenv("CUDA_MODULE_LOADING", "EAGER", 0);
    auto group = std::make_shared<thread_group>(world);
    std::vector<std::thread> th;
    std::vector<int> rcs(static_cast<std::size_t>(world), 1);
    for (int r = 0; r < world; ++r)
      th.emplace_back([&, r] {
        try {
          thread_bootstrap bs(group, r);
          rcs[std::size_t(r)] = rank_main(r, world, o, bs);
        } catch (const std::exception& e) {
          std::fprintf(stderr, "\nqreduce_bench: rank %d: %s\n", r, e.what());
        }
      });
    for (auto& t : th) t.join();
    return std::count(rcs.begin(), rcs.end(), 0) == world ? 0 : 1;
  }
  const std::string name = "bench-" + std::to_string(getpid());
  std::vector<pid_t> kids;
  for (int r = 0; r < world; ++r) {
    const pid_t p = fork();
    if (p == 0) {
      int rc = 1;
      try {
        socket_bootstrap bs(r, world, name, std::chrono::seconds(120));
        rc = rank_main(r, world, o, bs);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "\nqreduce_bench: rank %d: %s\n", r, e.what());
      }
      std::fflush(stdout);
      std::_Exit(rc);
    }
    kids.push_back(p);
  }
  int failed = 0;
  for (pid_t p : kids) {
    int st = 0;
    waitpid(p, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) ++failed;
  }
  if (failed) std::fprintf(stderr, "qreduce_bench: %d rank(s) failed\n", failed);
  return failed ? 1 : 0;
}
