// qreduce/comm.hpp: the communicator: owns a rank's workspace and its peers' mappings, checks
// every call, and launches the all-reduce `auto` or the caller picks.
//
//   qreduce::socket_bootstrap bs(rank, world, "job-42");
//   qreduce::communicator comm(bs);                      // on the current device
//   comm.all_reduce(x, x, n, qreduce::dtype::bf16, {.codec = qreduce::codec_kind::fp4}, stream);
//
// Calls are asynchronous on the stream and can be captured in a CUDA/HIP graph: the flags are
// sequence numbers kept in device memory, so replays never see stale values. Every wait for a peer
// is bounded by the configured timeout; a kernel that gives up records the peer it waited for, and
// the next call (or check()) throws errc::timeout naming it. The communicator is then unusable.
#pragma once
#include <unistd.h>

#include <array>
#include <cstdint>
#include <random>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>
#include "algorithm/one_shot.hpp"
#include "algorithm/two_shot.hpp"
#include "bootstrap/bootstrap.hpp"
#include "bootstrap/process.hpp"
#include "dispatch.hpp"
#include "epilogue/identity.hpp"
#include "epilogue/rmsnorm.hpp"
#include "options.hpp"
#include "runtime.hpp"
#include "transport/peer_memory.hpp"

namespace qreduce {

// The communicator over a transport (transport/peer_memory.hpp), compiled for a set of codecs
// (codec/all.hpp; `none` is always in) and of world sizes: a program instantiates the kernels of
// those only. `communicator` has every codec and world size; `communicator_for<codec::fp4>` one codec.
template <transport::transport_policy Transport = transport::default_transport, class Codecs = all_codecs_set, class Worlds = all_worlds>
class basic_communicator {
 public:
  using transport_type = Transport;
  using codecs = typename with_passthrough<Codecs>::type;
  using worlds = Worlds;
  using fallback_fn = std::function<void(const void* in, void* out, std::size_t count, dtype t, rt::stream_t s)>;

  // Collective: every rank of the bootstrap constructs together, and a failure on any rank (a bad
  // configuration, an allocation, a peer's mapping) is thrown on every rank, naming that rank: each
  // creation all-gather carries the failures before it (creation_status), so no rank waits for one
  // that gave up.
  // Configured by `cfg`; by the environment (config_from_env) when none is given; or by `configure`,
  // called inside the collective creation, so that what it throws (a malformed variable on one rank)
  // fails every rank like any other creation failure.
  explicit basic_communicator(bootstrap& bs) : basic_communicator(bs, std::function<comm_config()>([] { return config_from_env(); })) {}
  basic_communicator(bootstrap& bs, comm_config cfg) : basic_communicator(bs, std::function<comm_config()>([cfg] { return cfg; })) {}
  basic_communicator(bootstrap& bs, const std::function<comm_config()>& configure) : rank_(bs.rank()), world_(bs.size()) {
    std::exception_ptr failure;  // this rank's, carried by the next all-gather
    rank_info mine;
    comm_config cfg;
    try {
      cfg = configure();
      validate_config(cfg, world_);
      if (!Worlds::contains(world_))
        throw error(errc::unsupported, "world size " + std::to_string(world_) + ": this communicator is compiled for " + Worlds::names() + " ranks");
      device_ = rt::get_device();
      arch_ = rt::device_arch(device_);
      overrides_ = dispatch_overrides::from_env();
      mine.proposed = propose_grids(cfg, world_, rt::multiprocessor_count(device_), arch_);
      mine.round_bytes = round_bytes_for(cfg, world_);
      mine.oneshot_values_per_block = oneshot_values_for(cfg, world_, arch_);
      mine.timeout_ms = cfg.timeout_ms;
      mine.arch = arch_;
      if (overrides_.codec) mine.codec_override = std::uint8_t(*overrides_.codec);
      if (overrides_.algorithm) mine.algorithm_override = std::uint8_t(*overrides_.algorithm);
      mine.quant_min_bytes = overrides_.quant_min_bytes;
      mine.quant_max_bytes = overrides_.quant_max_bytes;
    } catch (...) {
      failure = std::current_exception();
      mine.status = creation_status::of(failure);
    }
    mine.rank = rank_;
    mine.world = world_;
    std::vector<rank_info> all(static_cast<std::size_t>(world_));
    bs.allgather(&mine, all.data(), sizeof mine);
    throw_first_failure(all.data(), world_, rank_, failure);
    const grids g = check_agreement(all.data(), world_);
    // after the agreement: every rank has the same override, so every rank throws here or none does
    if (overrides_.codec && !set_contains<codecs>(*overrides_.codec))
      throw error(errc::invalid_argument, std::string("QREDUCE_CODEC=") + codec_name(*overrides_.codec) +
                                              ": this communicator is compiled for the codecs " + codec_names<codecs>());

    workspace_config wc;
    wc.world = world_;
    wc.blocks = g.two_shot;
    wc.oneshot_blocks = g.one_shot;
    wc.round_bytes = round_bytes_for(cfg, world_);
    wc.oneshot_values_per_block = oneshot_values_for(cfg, world_, arch_);
    h_.layout = workspace_layout::make(wc);
    h_.rank = rank_;
    h_.timeout_ns = cfg.timeout_ms * 1000000ull;

    try {
      workspace_ = static_cast<std::byte*>(Transport::allocate(h_.layout.total));
      rt::memset_device(workspace_, 0, h_.layout.total);
      algorithm::one_shot_empty_kernel<Transport><<<64, block_threads>>>(workspace_, h_.layout);
      rt::check_launch("one_shot_empty_kernel");
      err_host_ = static_cast<error_record*>(rt::malloc_host_mapped(sizeof(error_record)));
      *err_host_ = error_record{};
      h_.err = static_cast<error_record*>(rt::host_device_pointer(err_host_));
      preload_kernels();
      rt::device_synchronize();
    } catch (...) {
      failure = std::current_exception();
    }
    try {
      map_peers(bs, failure);
    } catch (...) {
      release();
      throw;
    }
  }

  ~basic_communicator() { release(); }
  basic_communicator(const basic_communicator&) = delete;
  basic_communicator& operator=(const basic_communicator&) = delete;

  int rank() const { return rank_; }
  int world() const { return world_; }
  int device() const { return device_; }
  int blocks() const { return h_.layout.cfg.blocks; }  // the two-shot's grid
  int oneshot_blocks() const { return h_.layout.cfg.oneshot_blocks; }
  std::size_t workspace_bytes() const { return h_.layout.total; }
  std::size_t max_oneshot_values() const { return h_.layout.one_shot_max_values(); }
  const device_handle& handle() const { return h_; }
  // The values of one two-shot segment for a call of n values with this codec (with or without an
  // epilogue): rank s owns segments s, s + W, s + 2W, ... of the message and adds its own
  // contribution to them unquantized. Tests and accuracy models need it to reproduce the exact result.
  std::size_t two_shot_segment_values(codec_kind codec, std::size_t n) const {
    return visit_codec(codec, [&](auto tag) {
      return std::size_t(algorithm::plan_two_shot<typename decltype(tag)::type>(h_.layout, n).tiles_per_segment) * codec::tile_values;
    });
  }

  // The collective used when `auto` (or the caller) picks the fallback: e.g. ncclAllReduce (sum).
  void set_fallback(fallback_fn f) { fallback_ = std::move(f); }

  // What `auto` would run for a message of `bytes` bytes with this codec.
  dispatch_choice choice(std::size_t bytes, codec_kind codec) const {
    return choose(arch_, world_, codec, bytes, bool(fallback_), max_oneshot_values() * 2, overrides_);
  }

  // Sums `count` values of every rank's `in` into every rank's `out` (in == out is allowed).
  // Returns the algorithm that ran. Throws errc::invalid_argument (nothing written) for bad input.
  algorithm_kind all_reduce(const void* in, void* out, std::size_t count, dtype type, allreduce_options opts = {}, rt::stream_t stream = nullptr) {
    usable("all_reduce");
    const auto prepared = prepare("all_reduce", {in, out, count, type, opts}, {in, out}, false, stream);
    if (!prepared) return opts.algorithm;
    const dispatch_choice c = *prepared;
    if (c.algorithm == algorithm_kind::fallback) {
      fallback_(in, out, count, type, stream);
      return c.algorithm;
    }
    if (type == dtype::f16) launch(c, static_cast<const f16*>(in), static_cast<f16*>(out), count, opts.rotate, stream, epilogue::identity{});
    else launch(c, static_cast<const bf16*>(in), static_cast<bf16*>(out), count, opts.rotate, stream, epilogue::identity{});
    return c.algorithm;
  }

  // The all-reduce fused with residual add and RMSNorm (epilogue/rmsnorm.hpp), over rows x hidden:
  //   residual_out = allreduce(x) + residual;  y = residual_out / rms(row) * weight
  // residual_out may be residual, y may be x. hidden: a multiple of 8, at most 65536. The fallback is
  // never used here (it cannot fuse): `auto` picks the one-shot or the two-shot.
  algorithm_kind all_reduce_rmsnorm(const void* x, const void* residual, const void* weight, void* residual_out, void* y, std::size_t rows,
                                    std::size_t hidden, float eps, dtype type, allreduce_options opts = {}, rt::stream_t stream = nullptr) {
    if (auto why = check_args({x, y, rows * hidden, type, opts}, false)) throw error(errc::invalid_argument, "all_reduce_rmsnorm: " + *why);
    if (type == dtype::f16)
      return all_reduce_rmsnorm(x, residual, weight, residual_out, epilogue::out_native<f16>{static_cast<f16*>(y)}, rows, hidden, eps, type, opts,
                                stream);
    return all_reduce_rmsnorm(x, residual, weight, residual_out, epilogue::out_native<bf16>{static_cast<bf16*>(y)}, rows, hidden, eps, type, opts,
                              stream);
  }

  // The same with y quantized for the next GEMM (epilogue/outputs.hpp): `out` is an
  // epilogue::out_fp8_per_token, out_mxfp4 or out_nvfp4 (hidden a multiple of 8, 32 or 16); its
  // buffers must not overlap the inputs. The same all-reduce kernels run every output (chosen at run
  // time); the kernel of rows is compiled for each.
  template <epilogue::norm_output Out>
  algorithm_kind all_reduce_rmsnorm(const void* x, const void* residual, const void* weight, void* residual_out, const Out& out, std::size_t rows,
                                    std::size_t hidden, float eps, dtype type, allreduce_options opts = {}, rt::stream_t stream = nullptr) {
    static_assert(
        requires { epilogue::any_output<f16>::of(out); } || requires { epilogue::any_output<bf16>::of(out); },
        "all_reduce_rmsnorm: the output must be one that epilogue::any_output holds (epilogue/outputs.hpp)");
    usable("all_reduce_rmsnorm");
    if (hidden == 0 || hidden % 8 != 0 || hidden % Out::group != 0 || hidden > 65536)
      throw error(errc::invalid_argument, std::string("all_reduce_rmsnorm: hidden must be a positive multiple of ") +
                                              std::to_string(Out::group < 8 ? 8 : Out::group) + " up to 65536 for the " + Out::name +
                                              " output, not " + std::to_string(hidden));
    if (!(eps >= 0.0f)) throw error(errc::invalid_argument, "all_reduce_rmsnorm: eps must be non-negative");
    const std::size_t n = rows * hidden;
    if (auto why = check_args({residual, residual_out, n, type, opts}, false))
      throw error(errc::invalid_argument, "all_reduce_rmsnorm: residual: " + *why);
    std::vector<const void*> tensors = {x, residual, weight, residual_out};
    if (auto why = check_output(out, type, tensors)) throw error(errc::invalid_argument, "all_reduce_rmsnorm: " + *why);
    if constexpr (requires { out.y; }) {  // y is written while the residual is still read (rmsnorm.hpp)
      const auto overlaps = [&](const void* p) {
        const auto a = reinterpret_cast<std::uintptr_t>(out.y), b = reinterpret_cast<std::uintptr_t>(p);
        return a < b + 2 * n && b < a + 2 * n;
      };
      if (overlaps(residual) || overlaps(residual_out))
        throw error(errc::invalid_argument, "all_reduce_rmsnorm: y overlaps residual or residual_out (y may be x; residual_out may be residual)");
    }
    if (weight == nullptr || reinterpret_cast<std::uintptr_t>(weight) % 16 != 0)
      throw error(errc::invalid_argument, "all_reduce_rmsnorm: weight must be a 16-byte aligned device pointer");
    const auto prepared = prepare("all_reduce_rmsnorm", {x, x, n, type, opts}, tensors, true, stream);
    if (!prepared) return opts.algorithm;
    const dispatch_choice c = *prepared;
    auto run = [&](auto ttag) {
      using T = typename decltype(ttag)::type;
      if constexpr (requires { epilogue::any_output<T>::of(out); }) {  // else y is of the other dtype: refused by check_output
        epilogue::residual_rmsnorm<T> ep{static_cast<const T*>(residual),
                                         static_cast<T*>(residual_out),
                                         static_cast<const T*>(weight),
                                         epilogue::any_output<T>::of(out),
                                         hidden,
                                         eps};
        if (c.algorithm == algorithm_kind::one_shot && algorithm::one_shot_rows_fit(h_.layout, rows, hidden)) {
          // One kernel: each block sums its rows (at most 4) and finishes them in registers (one_shot.hpp).
          ep.visit_output([&](const auto& e) { launch_one_shot_rows(static_cast<const T*>(x), rows, e, stream); });
        } else if (ep.out.kind == epilogue::norm_output_kind::native) {
          // The all-reduce writes its sums into y and a kernel of rows does the rest (rmsnorm.hpp): no
          // residual loads inside the all-reduce (two-shot: 1.1-1.3x faster from 256 tokens; one-shot:
          // 2-5% under CUDA graphs, docs/design.md).
          ep.sum = ep.out.y;
          launch(c, static_cast<const T*>(x), ep.out.y, n, opts.rotate, stream, epilogue::identity{}, algorithm::epilogue_id<decltype(ep)>, true);
          launch_rows(ep, rows, stream);
        } else {
          launch(c, static_cast<const T*>(x), static_cast<T*>(residual_out), n, opts.rotate, stream, ep);
        }
      }
    };
    if (type == dtype::f16) run(std::type_identity<f16>{});
    else run(std::type_identity<bf16>{});
    return c.algorithm;
  }

  template <class T>
  algorithm_kind all_reduce(const T* in, T* out, std::size_t count, allreduce_options opts = {}, rt::stream_t stream = nullptr) {
    return all_reduce(static_cast<const void*>(in), static_cast<void*>(out), count, dtype_of<T>, opts, stream);
  }

  // The all-reduce with the caller's epilogue (epilogue/epilogue.hpp: an operator() called with the
  // f32 sums of 8 values; a row-wise one also finishes whole rows). Its kernels load on first use:
  // ranks that share one device need CUDA_MODULE_LOADING=EAGER (or a first call before any peer
  // spins), see docs/design.md.
  template <class T, epilogue::epilogue_for<T> Ep>
  algorithm_kind all_reduce_with(const T* in, T* out, std::size_t count, const Ep& ep, allreduce_options opts = {}, rt::stream_t stream = nullptr) {
    usable("all_reduce_with");
    const auto prepared = prepare("all_reduce_with", {in, out, count, dtype_of<T>, opts}, {in, out}, true, stream);
    if (!prepared) return opts.algorithm;
    const dispatch_choice c = *prepared;
    launch(c, in, out, count, opts.rotate, stream, ep);
    return c.algorithm;
  }

  // Throws if one of this communicator's kernels gave up, or a peer's kernels gave up and stopped
  // this rank's: errc::timeout (a rank did not arrive) or errc::mismatch (the ranks' calls differ:
  // a rank's call signature, with both calls described, or a rank's flags ran ahead of the calls),
  // naming that rank on every rank. Reads host memory only: call
  // it after synchronizing the stream to learn about the last call. After it throws, the communicator
  // is unusable on every rank: destroy it and create a new one (collectively).
  void check() const {
    if (err_host_ == nullptr) throw error(errc::failed_state, "communicator was closed");
    const auto status = __atomic_load_n(&err_host_->status, __ATOMIC_ACQUIRE);
    if (status != 1u) return;
    const error_record& e = *err_host_;
    // Named by the root cause: the category and the rank at fault are the same on every rank, whether
    // it saw the fault itself or was stopped by the peer that did.
    const std::string me = "rank " + std::to_string(rank_) + ": ", culprit = "rank " + std::to_string(e.culprit);
    const std::string seen_by = fault(e.reason) == fault::aborted
                                    ? " (seen by rank " + std::to_string(e.peer) + ", which stopped this rank's kernels)"
                                    : " (phase " + std::to_string(e.phase) + ", block " + std::to_string(e.block) + ", round " +
                                          std::to_string(e.seq) + ", its flag at " + std::to_string(e.seen) + ")";
    const std::string after = "; the communicator is unusable: destroy it and create a new one on every rank";
    if (fault(e.cause) == fault::bad_launch && fault(e.reason) == fault::aborted)
      throw error(errc::invalid_argument,
                  me + culprit + " launched the two-shot with a grid or tiles per segment its workspace does not hold" + after);
    if (fault(e.cause) == fault::bad_launch)
      throw error(errc::invalid_argument,
                  me + "a kernel launched the two-shot with a grid of " + std::to_string(e.seq) + " blocks and " + std::to_string(e.seen) +
                      " tiles per segment: the workspace holds " + std::to_string(h_.layout.cfg.blocks) + " blocks and segments of " +
                      std::to_string(h_.layout.segment_bytes) +
                      " bytes, and a step at most algorithm::max_step_tiles of the codec (launch with plan_two_shot's plan)" + after);
    if (fault(e.cause) == fault::call_mismatch) {
      const auto sig = [&](int k) { return std::uint64_t(e.calls[k]) | std::uint64_t(e.calls[k + 1]) << 32; };
      throw error(errc::mismatch, me + "the ranks' calls differ: rank " + std::to_string(e.finder) + " called with " +
                                      algorithm::describe_call(sig(0)) + "; " + culprit + " with " + algorithm::describe_call(sig(2)) +
                                      (int(e.finder) == rank_ ? std::string() : " (found by rank " + std::to_string(e.finder) + ")") + after);
    }
    if (fault(e.cause) == fault::host_abort)
      throw error(errc::failed_state, me + culprit + " aborted the communicator (communicator::abort())" +
                                          (fault(e.reason) == fault::aborted ? " (seen by this rank's kernels)" : "") + after);
    if (fault(e.cause) == fault::timeout && e.culprit < procs_.size() && process_liveness(procs_[e.culprit]) == liveness::exited)
      throw error(errc::timeout, me + culprit + "'s process (pid " + std::to_string(procs_[e.culprit].pid) + ") has exited" + seen_by + after);
    if (fault(e.cause) == fault::desync)
      throw error(errc::mismatch, me + culprit + " ran ahead of the calls it was waited for" + seen_by +
                                      ": the ranks made different calls (counts, algorithms, codecs) or a call was missed" + after);
    throw error(errc::timeout, me + culprit + " did not arrive within " + std::to_string(h_.timeout_ns / 1000000ull) + " ms" + seen_by + after);
  }

  // The ranks whose processes have exited, as this host can tell: peers in this pid namespace of this
  // boot (bootstrap/process.hpp); ranks of this process, or elsewhere, never show. For a watchdog:
  // a kernel waiting for a dead rank would otherwise wait for the timeout; abort() stops it now.
  std::vector<int> dead_peers() const {
    std::vector<int> dead;
    for (int r = 0; r < int(procs_.size()); ++r)
      if (r != rank_ && process_liveness(procs_[std::size_t(r)]) == liveness::exited) dead.push_back(r);
    return dead;
  }

  // Stops this communicator on every rank, from the host: raises every rank's abort word, so that
  // kernels waiting for a peer give up within microseconds instead of at the timeout and every later
  // kernel of any rank stops at entry, before any remote write. check() then throws
  // errc::failed_state naming this rank, on every rank (on a rank whose kernels were all idle, after
  // its next call). For a watchdog that found a dead peer (dead_peers()), or a shutdown that cannot
  // wait. To go on: destroy the communicator and create a new one on every rank (collectively).
  // Safe while calls of this communicator are in flight on any stream; not against close().
  void abort() {
    if (closed_) throw error(errc::failed_state, "abort() after close()");
    std::uint32_t clean = 0;  // this rank's record, unless one of its kernels gave up first
    if (__atomic_compare_exchange_n(&err_host_->status, &clean, 2u, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
      error_record r{};
      r.reason = r.cause = std::uint32_t(fault::host_abort);
      r.peer = r.culprit = std::uint32_t(rank_);
      r.finder = ~0u;
      r.status = 2u;
      *err_host_ = r;
      __atomic_store_n(&err_host_->status, 1u, __ATOMIC_RELEASE);
    }
    const std::uint32_t word = abort_value(rank_, rank_, std::uint32_t(fault::host_abort));
    const int was = rt::get_device();
    rt::set_device(device_);
    std::string unreached;
    for (int p = 0; p < world_; ++p) {  // own word first; a peer whose memory is gone does not stop the rest
      const int r = (rank_ + p) % world_;
      try {
        rt::memcpy_beside(h_.peer[r] + h_.layout.abort_off, &word, sizeof word);
      } catch (const error& e) {
        unreached += " rank " + std::to_string(r) + " (" + e.what() + ")";
      }
    }
    rt::set_device(was);
    if (!unreached.empty()) throw error(errc::runtime, "abort(): the abort word of" + unreached + " could not be raised");
  }

  // Frees the workspace and the mappings (after the device finished using them); later calls throw.
  // Collective, like creation: close (or destroy) on every rank once every rank's calls have ended
  // (a barrier of the bootstrap's, for example): until then a peer's kernel may still write into this
  // rank's workspace, if only to raise its abort word when it gives up.
  void close() {
    if (!closed_) release();
  }

 private:
  // Throws if the communicator cannot take calls: closed, or a kernel gave up (check()).
  void usable(const char* op) const {
    check();
    if (closed_) throw error(errc::failed_state, std::string(op) + " after close()");
  }

  // The prologue of every call after usable() and its own checks: the arguments (nothing written if
  // they are bad), the stream and every tensor on this communicator's device (outside capture: the
  // runtime cannot be queried while a stream captures, so a graph is checked when its calls are
  // first made outside capture), and what runs. `fused`: the call has an epilogue, which the fallback
  // cannot run. Nothing (an empty optional) when there is nothing to do.
  std::optional<dispatch_choice> prepare(const char* op, const call_args& a, std::initializer_list<const void*> tensors_list, bool fused,
                                         rt::stream_t stream) const {
    return prepare(op, a, std::vector<const void*>(tensors_list), fused, stream);
  }
  std::optional<dispatch_choice> prepare(const char* op, const call_args& a, const std::vector<const void*>& tensors, bool fused,
                                         rt::stream_t stream) const {
    const std::string name = op;
    if (fused && a.opts.algorithm == algorithm_kind::fallback) throw error(errc::invalid_argument, name + ": the fallback cannot run an epilogue");
    if (auto why = check_args(a, !fused && bool(fallback_))) throw error(errc::invalid_argument, name + ": " + *why);
    if (a.count == 0) return std::nullopt;
    if (!rt::stream_capturing(stream)) {
      if (rt::stream_device(stream) != device_)
        throw error(errc::invalid_argument, name + ": the stream belongs to device " + std::to_string(rt::stream_device(stream)) +
                                                ", the communicator to device " + std::to_string(device_));
      for (const void* p : tensors)
        if (rt::pointer_device(p) != device_)
          throw error(errc::invalid_argument, name + ": tensor memory is not on the communicator's device " + std::to_string(device_));
    }
    if (a.opts.algorithm != algorithm_kind::automatic) return dispatch_choice{a.opts.algorithm, a.opts.codec};
    return choose(arch_, world_, a.opts.codec, a.count * 2, !fused && bool(fallback_), max_oneshot_values() * 2, overrides_);
  }

  // check_call, and the codec is one this communicator was compiled for.
  std::optional<std::string> check_args(const call_args& a, bool has_fallback) const {
    if (auto why = check_call(a, max_oneshot_values(), has_fallback)) return why;
    if (!set_contains<codecs>(a.opts.codec))
      return std::string("codec ") + codec_name(a.opts.codec) + " is not compiled into this communicator (its codecs: " + codec_names<codecs>() + ")";
    return std::nullopt;
  }

  struct peer_info {
    std::uint64_t process[2];  // process_identity(): equal only within one process
    std::int32_t device;
    typename Transport::shared_handle handle;
    std::byte* ptr;
    process_id proc;  // which process this rank is, to tell one that exited (dead_peers)
    creation_status status;  // this rank's failure before this all-gather
  };

  // Argument checks of an RMSNorm output: its dtype if it writes the tensor's type, and its buffers(),
  // which join `tensors` for the device check.
  template <epilogue::norm_output Out>
  static std::optional<std::string> check_output(const Out& o, dtype type, std::vector<const void*>& tensors) {
    if constexpr (requires { typename Out::value_type; })
      if (type != dtype_of<typename Out::value_type>) return "the output type does not match the dtype";
    for (const epilogue::output_buffer& b : o.buffers())
      if (auto why = check_buffer(b.ptr, b.align, b.name, tensors)) return why;
    return std::nullopt;
  }
  static std::optional<std::string> check_buffer(const void* p, std::size_t align, const char* what, std::vector<const void*>& tensors) {
    if (p == nullptr) return std::string(what) + " is null";
    if (reinterpret_cast<std::uintptr_t>(p) % align != 0) return std::string(what) + " must be " + std::to_string(align) + "-byte aligned";
    tensors.push_back(p);
    return std::nullopt;
  }

  // Who this process is, for deciding whether a peer's raw workspace pointer is valid here: 128
  // random bits drawn once per process. A pid is not enough: containers with their own pid
  // namespaces share GPUs and often all run as pid 1.
  static const std::uint64_t* process_identity() {
    static const std::array<std::uint64_t, 2> id = [] {
      std::random_device rd;
      std::array<std::uint64_t, 2> v{};
      for (auto& x : v) x = (std::uint64_t(rd()) << 32) ^ rd() ^ (std::uint64_t(::getpid()) << 17);
      return v;
    }();
    return id.data();
  }

  // Exchanges the workspaces and maps the peers' (both all-gathers joined whatever failed before:
  // `failure` is this rank's, from the allocation); throws the first failure of any rank.
  void map_peers(bootstrap& bs, std::exception_ptr failure) {
    peer_info mine{};
    if (failure) {
      mine.status = creation_status::of(failure);
    } else {
      try {
        mine = {{process_identity()[0], process_identity()[1]}, device_, Transport::share(workspace_), workspace_, process_id::self(), {}};
      } catch (...) {
        failure = std::current_exception();
        mine.status = creation_status::of(failure);
      }
    }
    std::vector<peer_info> all(static_cast<std::size_t>(world_));
    bs.allgather(&mine, all.data(), sizeof mine);
    throw_first_failure(all.data(), world_, rank_, failure);
    for (const peer_info& p : all) procs_.push_back(p.proc);
    try {
      for (int r = 0; r < world_; ++r) {
        const peer_info& p = all[std::size_t(r)];
        if (r == rank_) {
          h_.peer[r] = workspace_;
        } else if (p.process[0] == mine.process[0] && p.process[1] == mine.process[1]) {
          rt::enable_peer_access(p.device);  // same process: the pointer is valid here
          h_.peer[r] = p.ptr;
        } else {
          h_.peer[r] = static_cast<std::byte*>(Transport::open(p.handle));
          opened_.push_back(h_.peer[r]);
        }
      }
    } catch (...) {
      failure = std::current_exception();
    }
    // Nobody launches before every rank has mapped every workspace.
    std::vector<rank_info> barrier(static_cast<std::size_t>(world_));
    rank_info token;
    if (failure) token.status = creation_status::of(failure);
    bs.allgather(&token, barrier.data(), sizeof token);
    throw_first_failure(barrier.data(), world_, rank_, failure);
  }

  // Loads every kernel this communicator can launch. With lazy module loading (CUDA's default) the
  // first launch of a kernel can wait for the device to go idle, and a peer's kernel that spins
  // waiting for this rank would then never let it: ranks sharing a device would deadlock.
  void preload_kernels() {
    Worlds::visit(world_, [&](auto w) { preload_w<decltype(w)::value>(); });
  }
  template <int W>
  void preload_w() {
    auto load = [](const void* fn) {
      QR_RT(FuncAttributes) a{};
      rt::check(QR_RT(FuncGetAttributes)(&a, fn), "FuncGetAttributes");
    };
    auto per_epilogue = [&](auto ttag, auto etag) {
      using T = typename decltype(ttag)::type;
      using E = typename decltype(etag)::type;
      load(reinterpret_cast<const void*>(&algorithm::one_shot_kernel<Transport, T, W, E>));
      if constexpr (epilogue::row_epilogue_for<E, T>)
        for_rows_kernels<E>([&](auto rtag) {
          using R = typename decltype(rtag)::type;
          load(reinterpret_cast<const void*>(&algorithm::rows_kernel<R>));
          if constexpr (requires(const R& e) { e.template batched_row<algorithm::rows_kernel_batch>(std::size_t(0)); })
            load(reinterpret_cast<const void*>(&algorithm::rows_kernel<R, algorithm::rows_kernel_batch>));
        });
      for (codec_kind k : codecs_of<codecs>)
        visit_codec<codecs>(k, [&](auto tag) {
          using C = typename decltype(tag)::type;
          load(reinterpret_cast<const void*>(&algorithm::two_shot_kernel<Transport, C, T, W, E>));
        });
    };
    auto per_type = [&](auto ttag) {
      using T = typename decltype(ttag)::type;
      per_epilogue(ttag, std::type_identity<epilogue::identity>{});
      per_epilogue(ttag, std::type_identity<epilogue::residual_rmsnorm<T>>{});
      if constexpr (algorithm::one_shot_rows_world<W>)
        epilogue::residual_rmsnorm<T>::visit_output_types([&](auto etag) {
          using O = typename decltype(etag)::type::output;
          load(reinterpret_cast<const void*>(&algorithm::one_shot_rmsnorm_kernel<Transport, T, W, O>));
        });
    };
    per_type(std::type_identity<f16>{});
    per_type(std::type_identity<bf16>{});
  }

  // call_epilogue: the epilogue its signature names (algorithm/signature.hpp), when not ep's own.
  // rows_follow: the caller launches a kernel of rows after this one (launch_rows), as a row-wise
  // epilogue does here itself.
  template <class T, class Ep>
  void launch(dispatch_choice c, const T* in, T* out, std::size_t n, bool rotate, rt::stream_t s, const Ep& ep,
              std::uint32_t call_epilogue = algorithm::epilogue_id<Ep>, bool rows_follow = false) {
    static_assert(
        !requires { Ep::row_pass; } || epilogue::row_epilogue_for<Ep, T>,
        "an epilogue that declares row_pass needs a host-callable row_values() (epilogue/epilogue.hpp)");
    Worlds::visit(world_, [&](auto w) { launch_w<T, decltype(w)::value>(c, in, out, n, rotate, s, ep, call_epilogue, rows_follow); });
  }

  template <class T, int W, class Ep>
  void launch_w(dispatch_choice c, const T* in, T* out, std::size_t n, bool rotate, rt::stream_t s, const Ep& ep, std::uint32_t call_epilogue,
                bool rows_follow) {
    const bool dependents = rows_follow || epilogue::row_epilogue_for<Ep, T>;  // a kernel of rows follows
    if (c.algorithm == algorithm_kind::one_shot) {
      const auto p = algorithm::plan_one_shot(h_.layout, n);
      algorithm::one_shot_kernel<Transport, T, W, Ep>
          <<<h_.layout.cfg.oneshot_blocks, block_threads, 0, s>>>(h_, in, out, n, p.per_block, ep, call_epilogue, dependents);
      rt::check_launch("one_shot_kernel");
    } else {
      visit_codec<codecs>(c.codec, [&](auto tag) {
        using C = typename decltype(tag)::type;
        const auto p = algorithm::plan_two_shot<C>(h_.layout, n);
        algorithm::two_shot_kernel<Transport, C, T, W, Ep>
            <<<p.blocks, block_threads, 0, s>>>(h_, in, out, n, p.tiles_per_segment, rotate, ep, call_epilogue, dependents);
      });
      rt::check_launch("two_shot_kernel");
    }
    if constexpr (epilogue::row_epilogue_for<Ep, T>) launch_rows(ep, n / ep.row_values(), s);
  }

  // The fused RMSNorm's one-shot for rows that fit a block (algorithm::one_shot_rmsnorm_kernel), for
  // one output type.
  template <class T, class Out>
  void launch_one_shot_rows(const T* x, std::size_t rows, const epilogue::residual_rmsnorm<T, Out>& ep, rt::stream_t s) {
    Worlds::visit(world_, [&](auto w) {
      constexpr int W = decltype(w)::value;
      if constexpr (algorithm::one_shot_rows_world<W>)
        algorithm::one_shot_rmsnorm_kernel<Transport, T, W, Out>
            <<<h_.layout.cfg.oneshot_blocks, algorithm::oneshot_rows_threads, 0, s>>>(h_, x, rows, ep);
    });
    rt::check_launch("one_shot_rmsnorm_kernel");
  }

  // A row-wise epilogue's rows after the all-reduce (algorithm::rows_kernel), on the same stream,
  // launched to start while the all-reduce ends (rt::launch_dependent); the fused RMSNorm's kernel is
  // specialised on its output (a kernel for every output took 36 registers a thread where the native
  // output needs 32: 7 blocks a multiprocessor instead of 8).
  template <class Ep>
  void launch_rows(const Ep& ep, std::size_t rows, rt::stream_t s) {
    const std::size_t grid = rows < algorithm::rows_kernel_max_blocks ? rows : algorithm::rows_kernel_max_blocks;
    auto run = [&](const auto& e) {
      using E = std::decay_t<decltype(e)>;
      constexpr int B = algorithm::rows_kernel_batch;
      if constexpr (requires { e.template batched_row<B>(std::size_t(0)); })
        if (rows <= algorithm::rows_kernel_batched_rows) {
          rt::launch_dependent("rows_kernel", &algorithm::rows_kernel<E, B>, unsigned(grid), unsigned(block_threads), s, e, rows);
          return;
        }
      rt::launch_dependent("rows_kernel", &algorithm::rows_kernel<E>, unsigned(grid), unsigned(block_threads), s, e, rows);
    };
    if constexpr (requires { ep.visit_output(run); }) ep.visit_output(run);
    else run(ep);
  }

  // Calls f with std::type_identity of every epilogue launch_rows may launch rows_kernel with for Ep.
  template <class Ep, class F>
  static void for_rows_kernels(F&& f) {
    if constexpr (requires { Ep::visit_output_types(f); }) Ep::visit_output_types(f);
    else f(std::type_identity<Ep>{});
  }

  void release() noexcept {
    // Kernels in flight (ours, and on a shared device our peers') may still touch the workspace.
    if (workspace_) (void)QR_RT(DeviceSynchronize)();
    for (void* p : opened_) Transport::close(p);
    opened_.clear();
    if (workspace_) Transport::deallocate(workspace_);
    workspace_ = nullptr;
    if (err_host_) rt::free_host(err_host_);
    err_host_ = nullptr;
    closed_ = true;
  }

  int rank_, world_, device_ = -1, arch_ = 0;
  device_handle h_{};
  std::byte* workspace_ = nullptr;
  error_record* err_host_ = nullptr;
  std::vector<void*> opened_;
  std::vector<process_id> procs_;  // every rank's process, as it said at creation
  fallback_fn fallback_;
  dispatch_overrides overrides_;
  bool closed_ = false;
};

using communicator = basic_communicator<>;

// A communicator compiled for the given codecs only (and `none`), every world size:
//   qreduce::communicator_for<qreduce::codec::fp4> comm(bs);
template <class... Codecs>
using communicator_for = basic_communicator<transport::default_transport, codec_set<Codecs...>>;

}  // namespace qreduce
