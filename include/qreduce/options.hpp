// qreduce/options.hpp: the communicator's configuration, a call's options, and the checks made on
// them. Plain C++ (no GPU runtime), so CI tests them on the host.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
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
  codec_kind codec = codec_kind::none;           // the two-shot's codec
  algorithm_kind algorithm = algorithm_kind::automatic;
  bool rotate = false;                           // Walsh-Hadamard rotation around the codec
};

struct comm_config {
  int max_blocks = 0;                  // persistent grid; 0: the device's multiprocessor count
  int tiles_per_slot = 2;              // two-shot: 2048-value tiles a block sends per segment per round
  int oneshot_values_per_block = 4096; // one-shot capacity per block (multiple of 2048)
  std::uint64_t timeout_ms = 10000;    // bound on every wait for a peer
};

// Reads QREDUCE_TIMEOUT_MS and QREDUCE_MAX_BLOCKS over the given defaults (docs/configuration.md).
inline comm_config config_from_env(comm_config c = {}) {
  if (const char* v = std::getenv("QREDUCE_TIMEOUT_MS")) c.timeout_ms = std::strtoull(v, nullptr, 10);
  if (const char* v = std::getenv("QREDUCE_MAX_BLOCKS")) c.max_blocks = int(std::strtol(v, nullptr, 10));
  return c;
}

inline void validate_config(const comm_config& c, int world) {
  if (world != 2 && world != 4 && world != 8)
    throw error(errc::unsupported, "world size " + std::to_string(world) + " is not supported (2, 4 or 8 ranks)");
  if (c.max_blocks < 0 || c.max_blocks > 1024) throw error(errc::invalid_argument, "max_blocks must be in [0, 1024]");
  if (c.tiles_per_slot < 1 || c.tiles_per_slot > 16) throw error(errc::invalid_argument, "tiles_per_slot must be in [1, 16]");
  if (c.oneshot_values_per_block < codec::tile_values || c.oneshot_values_per_block % codec::tile_values != 0 ||
      c.oneshot_values_per_block > 64 * codec::tile_values)
    throw error(errc::invalid_argument, "oneshot_values_per_block must be a multiple of 2048 in [2048, 131072]");
  if (c.timeout_ms < 1 || c.timeout_ms > 3600u * 1000u) throw error(errc::invalid_argument, "timeout_ms must be in [1, 3600000]");
}

// What each rank publishes at creation; all ranks must agree on everything but rank and blocks.
struct rank_info {
  std::uint32_t magic = 0x71726564u;
  std::uint32_t abi = abi_version;
  std::int32_t rank = -1, world = 0;
  std::int32_t proposed_blocks = 0;  // this rank's grid; the communicator takes the minimum
  std::int32_t tiles_per_slot = 0, oneshot_values_per_block = 0;
  std::uint64_t timeout_ms = 0;
};

// Throws errc::mismatch with a message naming the first disagreement; returns the agreed block count.
inline int check_agreement(const rank_info* all, int world) {
  int blocks = all[0].proposed_blocks;
  for (int r = 0; r < world; ++r) {
    const rank_info& a = all[r];
    const std::string who = "rank " + std::to_string(r);
    if (a.magic != all[0].magic || a.abi != all[0].abi)
      throw error(errc::mismatch, who + " runs qreduce ABI " + std::to_string(a.abi) + ", rank 0 runs " + std::to_string(all[0].abi));
    if (a.rank != r) throw error(errc::mismatch, "the bootstrap put rank " + std::to_string(a.rank) + " in place " + std::to_string(r));
    if (a.world != world) throw error(errc::mismatch, who + " says the world has " + std::to_string(a.world) + " ranks, the bootstrap has " + std::to_string(world));
    if (a.tiles_per_slot != all[0].tiles_per_slot || a.oneshot_values_per_block != all[0].oneshot_values_per_block)
      throw error(errc::mismatch, who + " asks for a different workspace (tiles_per_slot " + std::to_string(a.tiles_per_slot) +
                                      ", oneshot_values_per_block " + std::to_string(a.oneshot_values_per_block) + ") than rank 0");
    if (a.timeout_ms != all[0].timeout_ms) throw error(errc::mismatch, who + " has a different timeout than rank 0");
    if (a.proposed_blocks < blocks) blocks = a.proposed_blocks;
  }
  return blocks;
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
