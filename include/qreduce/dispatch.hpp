// qreduce/dispatch.hpp: what `auto` runs for a message: the one-shot, the two-shot with the caller's
// codec, or the fallback (NCCL/RCCL, when the caller set one).
//
// The choice comes from a table (dispatch_table.hpp) that tools/gen_dispatch.py writes from the
// benchmark's tuning output, or from the performance model when no measurement exists; each table
// says which. It is never edited by hand. Environment overrides (docs/configuration.md):
//   QREDUCE_ALGORITHM       oneshot | twoshot | fallback: force one algorithm for auto calls
//   QREDUCE_CODEC           none | fp8 | fp8_fnuz | int8 | int6 | int4 | fp4 | mxfp4: the codec auto calls use
//   QREDUCE_QUANT_MIN_BYTES below this size auto does not use a quantized two-shot
//   QREDUCE_QUANT_MAX_BYTES above this size auto hands quantized work to the fallback (if set)
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include "dispatch_table.hpp"
#include "options.hpp"

namespace qreduce {

struct dispatch_overrides {
  std::optional<algorithm_kind> algorithm;
  std::optional<codec_kind> codec;
  std::size_t quant_min_bytes = 0;
  std::size_t quant_max_bytes = SIZE_MAX;

  static dispatch_overrides from_env() {
    dispatch_overrides o;
    if (const char* v = std::getenv("QREDUCE_ALGORITHM"); v && *v) {
      o.algorithm = parse_algorithm(v);
      if (!o.algorithm || *o.algorithm == algorithm_kind::automatic)
        throw error(errc::invalid_argument, std::string("QREDUCE_ALGORITHM=") + v + ": expected oneshot, twoshot or fallback");
    }
    if (const char* v = std::getenv("QREDUCE_CODEC"); v && *v) {
      o.codec = parse_codec(v);
      if (!o.codec)
        throw error(errc::invalid_argument, std::string("QREDUCE_CODEC=") + v + ": unknown codec; one of " + codec_names<all_codecs_set>());
    }
    if (auto v = env_unsigned("QREDUCE_QUANT_MIN_BYTES", 0, 1ull << 50, true)) o.quant_min_bytes = std::size_t(*v);
    if (auto v = env_unsigned("QREDUCE_QUANT_MAX_BYTES", 0, 1ull << 50, true)) o.quant_max_bytes = std::size_t(*v);
    if (o.quant_min_bytes > o.quant_max_bytes)
      throw error(errc::invalid_argument, "QREDUCE_QUANT_MIN_BYTES (" + std::to_string(o.quant_min_bytes) + ") is above QREDUCE_QUANT_MAX_BYTES (" +
                                              std::to_string(o.quant_max_bytes) + "): no size would be quantized");
    return o;
  }
};

struct dispatch_choice {
  algorithm_kind algorithm;
  codec_kind codec;
};

// The table's choice for (arch, world, codec, bytes), before overrides and capacity limits.
inline algorithm_kind table_choice(int arch, int world, codec_kind codec, std::size_t bytes) {
  const dispatch_table::entry* best = nullptr;
  for (const auto& e : dispatch_table::entries) {
    if (e.world != world || e.codec != codec) continue;
    if (e.arch != arch && e.arch != 0) continue;
    if (bytes > e.max_bytes) continue;
    // prefer an exact arch over the arch-independent rows, then the tightest size bound
    if (!best || (best->arch == 0 && e.arch != 0) || (best->arch == e.arch && e.max_bytes < best->max_bytes)) best = &e;
  }
  return best ? best->algorithm : algorithm_kind::two_shot;
}

// What an `auto` call runs. max_oneshot_bytes: the one-shot's capacity in this communicator.
inline dispatch_choice choose(int arch, int world, codec_kind codec, std::size_t bytes, bool has_fallback, std::size_t max_oneshot_bytes,
                              const dispatch_overrides& o) {
  if (o.codec) codec = *o.codec;
  algorithm_kind a = o.algorithm ? *o.algorithm : table_choice(arch, world, codec, bytes);
  if (!o.algorithm && codec != codec_kind::none) {
    if (a == algorithm_kind::two_shot && bytes < o.quant_min_bytes) a = algorithm_kind::one_shot;
    if (a == algorithm_kind::two_shot && bytes > o.quant_max_bytes && has_fallback) a = algorithm_kind::fallback;
  }
  if (a == algorithm_kind::one_shot && bytes > max_oneshot_bytes) a = algorithm_kind::two_shot;
  if (a == algorithm_kind::fallback && !has_fallback) a = bytes <= max_oneshot_bytes ? algorithm_kind::one_shot : algorithm_kind::two_shot;
  return {a, a == algorithm_kind::one_shot ? codec_kind::none : codec};
}

}  // namespace qreduce
