// qreduce/options.hpp: the communicator's configuration, a call's options, and the checks made on
// them. Plain C++ (no GPU runtime), so CI tests them on the host.
#pragma once
#include <cstddef>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include "codec/all.hpp"
#include "error.hpp"
#include "numeric/float16.hpp"
#include "transport/workspace.hpp"

namespace qreduce {

enum class algorithm_kind : std::uint8_t { automatic = 0, one_shot, two_shot, fallback };

inline const char* algorithm_name(algorithm_kind a) {
  switch (a) {
    case algorithm_kind::automatic: return "auto";
    case algorithm_kind::one_shot: return "oneshot";
    case algorithm_kind::two_shot: return "twoshot";
    case algorithm_kind::fallback: return "fallback";
  }
  return "?";
}
inline std::optional<algorithm_kind> parse_algorithm(std::string_view s) {
  for (auto a : {algorithm_kind::automatic, algorithm_kind::one_shot, algorithm_kind::two_shot, algorithm_kind::fallback})
    if (s == algorithm_name(a)) return a;
  return std::nullopt;
}

struct allreduce_options {
  codec_kind codec = codec_kind::none;  // the two-shot's codec
  algorithm_kind algorithm = algorithm_kind::automatic;
  bool rotate = false;  // Walsh-Hadamard rotation around the codec (int8 and int4m always rotate)
};

struct comm_config {
  int max_blocks = 0;  // cap on both grids; 0: the device's multiprocessor count for the
                       // one-shot, twoshot_blocks_per_sm(world) times it for the two-shot
  std::size_t round_bytes = 0;  // two-shot: encoded bytes a block sends per phase per round;
                                // 0: 16 KiB, or 4 KiB a rank where that is more (8 ranks)
  std::size_t max_workspace_bytes = std::size_t(64) << 20;  // the two-shot grid shrinks to fit
  int oneshot_values_per_block = 0;  // one-shot capacity per block (multiple of 2048); 0: 8192 at 2 ranks on sm_90, else 4096
  std::uint64_t timeout_ms = 10000;  // bound on every wait for a peer
};

// Parses an unsigned number as a whole: decimal digits, optionally followed by one of the binary
// suffixes K, M, G (KiB, MiB, GiB) where `sizes` is true. Nothing else: no sign, no spaces, no units.
inline std::optional<std::uint64_t> parse_unsigned(std::string_view s, bool sizes = false) {
  std::uint64_t mult = 1;
  if (sizes && !s.empty()) {
    const char u = s.back();
    mult = u == 'K' ? 1ull << 10 : u == 'M' ? 1ull << 20 : u == 'G' ? 1ull << 30 : 1;
    if (mult != 1) s.remove_suffix(1);
  }
  if (s.empty() || s.size() > 19) return std::nullopt;
  std::uint64_t v = 0;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return std::nullopt;
    v = v * 10 + std::uint64_t(ch - '0');
  }
  if (v > UINT64_MAX / mult) return std::nullopt;
  return v * mult;
}

// The value of environment variable `name` as a number in [lo, hi], or nothing if it is unset or
// empty. Throws errc::invalid_argument naming the variable and its value otherwise.
inline std::optional<std::uint64_t> env_unsigned(const char* name, std::uint64_t lo, std::uint64_t hi, bool sizes = false) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  const auto x = parse_unsigned(v, sizes);
  if (!x || *x < lo || *x > hi)
    throw error(errc::invalid_argument, std::string(name) + "=" + v + ": expected " +
                                            (sizes ? "a size in bytes (K, M, G suffixes allowed)" : "a whole number") + " in [" + std::to_string(lo) +
                                            ", " + std::to_string(hi) + "]");
  return x;
}

// Reads QREDUCE_TIMEOUT_MS, QREDUCE_MAX_BLOCKS, QREDUCE_ROUND_BYTES and QREDUCE_MAX_WORKSPACE_BYTES
// over the given defaults (docs/configuration.md); a malformed value is an error naming the variable.
inline comm_config config_from_env(comm_config c = {}) {
  if (auto v = env_unsigned("QREDUCE_TIMEOUT_MS", 1, 3600000)) c.timeout_ms = *v;
  if (auto v = env_unsigned("QREDUCE_MAX_BLOCKS", 0, 1024)) c.max_blocks = int(*v);
  if (auto v = env_unsigned("QREDUCE_ROUND_BYTES", 0, 1u << 20, true)) c.round_bytes = std::size_t(*v);
  if (auto v = env_unsigned("QREDUCE_MAX_WORKSPACE_BYTES", 1u << 20, 1ull << 40, true)) c.max_workspace_bytes = std::size_t(*v);
  return c;
}

// The two-shot's round size for `world` ranks: the configured one, or the default. 16 KiB at 2
// ranks: with 8 blocks a multiprocessor the grid holds the rounds in flight that larger rounds gave
// fewer blocks (on 2x H200 16 KiB against 24 KiB at 6 blocks: 64 MiB 1-9% faster, 1 GiB mixed;
// docs/design.md), and 1056 blocks fit the 64 MiB budget.
inline std::size_t round_bytes_for(const comm_config& c, int world) {
  if (c.round_bytes != 0) return c.round_bytes;
  const std::size_t per_rank = std::size_t(world) * codec::tile_bytes<codec::passthrough>;
  return per_rank > 16384 ? per_rank : 16384;
}

// The one-shot's capacity per block (arch: as the dispatch table numbers it, 0 if not known): 8192
// values at 2 ranks on sm_90 (a 2 MiB bf16 message on 132 multiprocessors, where the one-shot still
// beats the two-shot on 2x H200: docs/results/2026-11-26e-h200x2/), 4096 elsewhere, where nothing
// measured more (a larger one-shot takes workspace from the two-shot's grid, and each rank reads
// world - 1 peers' copies).
inline int oneshot_values_for(const comm_config& c, int world, int arch = 0) {
  if (c.oneshot_values_per_block != 0) return c.oneshot_values_per_block;
  return world == 2 && arch == 90 ? 4 * codec::tile_values : 2 * codec::tile_values;
}

// A set of world sizes a communicator is compiled for; all_worlds is every size qreduce supports.
template <int... Ws>
struct world_set {
  static constexpr bool contains(int w) { return ((w == Ws) || ...); }
  // Calls f(std::integral_constant<int, W>{}) for W == w; does nothing if w is not in the set.
  template <class F>
  static void visit(int w, F&& f) {
    (void)((w == Ws ? (f(std::integral_constant<int, Ws>{}), true) : false) || ...);
  }
  static std::string names() {
    std::string s;
    ((s += (s.empty() ? "" : ", ") + std::to_string(Ws)), ...);
    return s;
  }
};
using all_worlds = world_set<2, 4, 8>;

inline void validate_config(const comm_config& c, int world) {
  if (!all_worlds::contains(world))
    throw error(errc::unsupported, "world size " + std::to_string(world) + " is not supported (" + all_worlds::names() + " ranks)");
  if (c.max_blocks < 0 || c.max_blocks > 1024) throw error(errc::invalid_argument, "max_blocks must be in [0, 1024]");
  // A segment slot (round_bytes / world) must hold one unquantized tile (4096 bytes).
  const std::size_t min_round = std::size_t(world) * codec::tile_bytes<codec::passthrough>;
  const std::size_t round = round_bytes_for(c, world);
  if (round < min_round || round > (std::size_t(1) << 20) || round % (256 * std::size_t(world)) != 0)
    throw error(errc::invalid_argument, "round_bytes must be a multiple of " + std::to_string(256 * world) + " in [" + std::to_string(min_round) +
                                            ", 1048576] for " + std::to_string(world) + " ranks");
  const int oneshot_values = oneshot_values_for(c, world);
  if (oneshot_values < codec::tile_values || oneshot_values % codec::tile_values != 0 || oneshot_values > 64 * codec::tile_values)
    throw error(errc::invalid_argument, "oneshot_values_per_block must be a multiple of 2048 in [2048, 131072]");
  if (c.timeout_ms < 1 || c.timeout_ms > 3600u * 1000u) throw error(errc::invalid_argument, "timeout_ms must be in [1, 3600000]");
}

// The grids a rank proposes: the one-shot's (one block per multiprocessor) and the two-shot's
// (twoshot_blocks_per_sm(world) per multiprocessor, as many as max_workspace_bytes holds), both capped by
// max_blocks. Throws errc::invalid_argument if the budget holds not even one two-shot block.
struct grids {
  std::int32_t two_shot = 0, one_shot = 0;
};
inline grids propose_grids(const comm_config& c, int world, int multiprocessors, int arch = 0) {
  grids g;
  const int cap = c.max_blocks > 0 ? c.max_blocks : 1 << 30;
  g.one_shot = multiprocessors < cap ? multiprocessors : cap;
  workspace_config wc;
  wc.world = world;
  wc.blocks = 0;
  wc.round_bytes = round_bytes_for(c, world);
  wc.oneshot_values_per_block = oneshot_values_for(c, world, arch);
  // The one-shot's slots come first out of the budget; where the two-shot grid that is left is
  // smaller than the one-shot's, the one-shot shrinks to it and the budget is shared out again.
  for (int pass = 0; pass < 2; ++pass) {
    wc.oneshot_blocks = g.one_shot;
    const std::size_t fixed = workspace_layout::make(wc).total + 5 * 256, per = workspace_layout::bytes_per_block(wc);
    const std::size_t fit = c.max_workspace_bytes > fixed ? (c.max_workspace_bytes - fixed) / per : 0;
    const std::size_t mp = std::size_t(multiprocessors);
    std::size_t want = mp * std::size_t(twoshot_blocks_per_sm(world));
    if (want > std::size_t(cap)) want = std::size_t(cap);
    // Where the budget binds, whole blocks per multiprocessor: an uneven grid leaves some
    // multiprocessors a block more than others, and the call waits for the slowest (425 blocks on
    // 132 multiprocessors ran 4-10% slower than 396; docs/design.md).
    if (fit < want) want = fit >= mp ? fit / mp * mp : fit;
    if (want < 1)
      throw error(errc::invalid_argument, "max_workspace_bytes " + std::to_string(c.max_workspace_bytes) +
                                              " holds no two-shot block: it needs at least " + std::to_string(fixed + per) +
                                              " bytes with round_bytes " + std::to_string(wc.round_bytes));
    g.two_shot = std::int32_t(want);
    if (g.one_shot <= g.two_shot) break;
    g.one_shot = g.two_shot;
  }
  return g;
}

// A rank that fails while creating a communicator still joins every creation all-gather, carrying
// its failure, so that every rank throws the same error naming it instead of waiting for an
// all-gather the failed rank never joins (a bad environment on one rank, an allocation that fails).
struct creation_status {
  std::int32_t code = -1;  // -1: fine; else the errc of the failure
  char what[236] = {};  // its message, truncated

  bool failed() const { return code >= 0; }
  static creation_status of(errc c, const std::string& message) {
    creation_status s;
    s.code = std::int32_t(c);
    message.copy(s.what, sizeof s.what - 1);
    return s;
  }
  static creation_status of(const std::exception_ptr& e) {
    try {
      std::rethrow_exception(e);
    } catch (const error& x) {
      return of(x.code(), x.what());
    } catch (const std::exception& x) {
      return of(errc::runtime, x.what());
    } catch (...) {
      return of(errc::runtime, "an exception that is not a std::exception");
    }
  }
};

// Throws, on every rank alike, the first failure among the ranks' statuses (all[r] for rank r):
// the failed rank's own error where that is this rank (`own`), else an error of the same category
// naming the rank that failed.
template <class Info>
void throw_first_failure(const Info* all, int world, int rank, const std::exception_ptr& own) {
  for (int r = 0; r < world; ++r) {
    const creation_status& st = all[r].status;
    if (!st.failed()) continue;
    if (r == rank && own) std::rethrow_exception(own);
    std::size_t len = 0;
    while (len < sizeof st.what && st.what[len] != '\0') ++len;
    std::string what(st.what, len);
    if (what.rfind("qreduce: ", 0) == 0) what.erase(0, 9);
    throw error(errc(st.code), "rank " + std::to_string(r) + " could not create the communicator: " + what);
  }
}

// What each rank publishes at creation; all ranks must agree on everything but rank and the grids.
struct rank_info {
  std::uint32_t magic = 0x71726564u;
  std::uint32_t abi = abi_version;
  std::int32_t rank = -1, world = 0;
  grids proposed;  // this rank's grids; the communicator takes the minimum of each
  std::int32_t oneshot_values_per_block = 0;
  std::uint64_t round_bytes = 0;
  std::uint64_t timeout_ms = 0;
  // What decides each call's algorithm and codec on this rank: the device architecture (the dispatch
  // table's key) and the environment overrides (dispatch.hpp; 0xff: none). Ranks that differ here
  // would run different kernels for the same call, or decode each other's bytes with another codec.
  std::int32_t arch = 0;
  std::uint8_t codec_override = 0xff, algorithm_override = 0xff;
  std::uint64_t quant_min_bytes = 0, quant_max_bytes = 0;
  creation_status status;  // a failure of this rank before the all-gather that carries this record
};

// Throws errc::mismatch with a message naming the first disagreement; returns the agreed grids.
inline grids check_agreement(const rank_info* all, int world) {
  grids g = all[0].proposed;
  for (int r = 0; r < world; ++r) {
    const rank_info& a = all[r];
    const std::string who = "rank " + std::to_string(r);
    if (a.magic != all[0].magic || a.abi != all[0].abi)
      throw error(errc::mismatch, who + " runs qreduce ABI " + std::to_string(a.abi) + ", rank 0 runs " + std::to_string(all[0].abi));
    if (a.rank != r) throw error(errc::mismatch, "the bootstrap put rank " + std::to_string(a.rank) + " in place " + std::to_string(r));
    if (a.world != world)
      throw error(errc::mismatch, who + " says the world has " + std::to_string(a.world) + " ranks, the bootstrap has " + std::to_string(world));
    if (a.round_bytes != all[0].round_bytes || a.oneshot_values_per_block != all[0].oneshot_values_per_block)
      throw error(errc::mismatch, who + " asks for a different workspace (round_bytes " + std::to_string(a.round_bytes) +
                                      ", oneshot_values_per_block " + std::to_string(a.oneshot_values_per_block) + ") than rank 0");
    if (a.timeout_ms != all[0].timeout_ms) throw error(errc::mismatch, who + " has a different timeout than rank 0");
    if (a.arch != all[0].arch)
      throw error(errc::mismatch, who + " runs on architecture " + std::to_string(a.arch) + ", rank 0 on " + std::to_string(all[0].arch) +
                                      ": their dispatch tables could pick different algorithms");
    const auto override_name = [](std::uint8_t v, bool codec) -> std::string {
      if (v == 0xff) return "unset";
      return codec ? std::string(codec_name(codec_kind(v))) : std::string(algorithm_name(algorithm_kind(v)));
    };
    if (a.codec_override != all[0].codec_override)
      throw error(errc::mismatch, who + " has QREDUCE_CODEC " + override_name(a.codec_override, true) + ", rank 0 " +
                                      override_name(all[0].codec_override, true) + ": set it the same on every rank");
    if (a.algorithm_override != all[0].algorithm_override)
      throw error(errc::mismatch, who + " has QREDUCE_ALGORITHM " + override_name(a.algorithm_override, false) + ", rank 0 " +
                                      override_name(all[0].algorithm_override, false) + ": set it the same on every rank");
    if (a.quant_min_bytes != all[0].quant_min_bytes || a.quant_max_bytes != all[0].quant_max_bytes)
      throw error(errc::mismatch, who + " has QREDUCE_QUANT_MIN_BYTES / QREDUCE_QUANT_MAX_BYTES " + std::to_string(a.quant_min_bytes) + " / " +
                                      std::to_string(a.quant_max_bytes) + ", rank 0 " + std::to_string(all[0].quant_min_bytes) + " / " +
                                      std::to_string(all[0].quant_max_bytes) + ": set them the same on every rank");
    if (a.proposed.two_shot < g.two_shot) g.two_shot = a.proposed.two_shot;
    if (a.proposed.one_shot < g.one_shot) g.one_shot = a.proposed.one_shot;
  }
  return g;
}

// A call's arguments, as the checks see them.
struct call_args {
  const void* in;
  const void* out;
  std::size_t count;
  dtype type;
  allreduce_options opts;
};

// Returns what is wrong with a call, or nothing. max_oneshot: the largest one-shot message in values.
inline std::optional<std::string> check_call(const call_args& a, std::size_t max_oneshot, bool has_fallback) {
  if (a.type != dtype::f16 && a.type != dtype::bf16) return "dtype must be fp16 or bf16";
  bool codec_ok = false;
  for (auto k : all_codecs) codec_ok = codec_ok || k == a.opts.codec;
  if (!codec_ok) return "unknown codec";
  if (a.count == 0) return std::nullopt;
  if (a.count > (std::size_t(1) << 40)) return "count " + std::to_string(a.count) + " is above the limit of 2^40 values";
  if (a.in == nullptr || a.out == nullptr) return "null tensor pointer";
  const auto in = reinterpret_cast<std::uintptr_t>(a.in), out = reinterpret_cast<std::uintptr_t>(a.out);
  if (in % 16 != 0 || out % 16 != 0) return "tensor pointers must be 16-byte aligned";
  const std::size_t bytes = a.count * 2;
  if (in != out && in < out + bytes && out < in + bytes) return "input and output overlap without being the same tensor";
  if (a.opts.algorithm == algorithm_kind::one_shot && a.count > max_oneshot)
    return "one-shot takes at most " + std::to_string(max_oneshot) + " values; this call has " + std::to_string(a.count);
  if (a.opts.algorithm == algorithm_kind::fallback && !has_fallback) return "fallback requested but none is set";
  if (a.opts.algorithm == algorithm_kind::one_shot && a.opts.codec != codec_kind::none)
    return "one-shot is unquantized: use codec none, or the two-shot for a codec";
  return std::nullopt;
}

}  // namespace qreduce
