// qreduce/codec/all.hpp: the codec list, and the run-time name of each codec.
#pragma once
#include <cstdint>
#include <optional>
#include <string_view>
#include <type_traits>
#include "passthrough.hpp"
#include "rotation.hpp"
#include "scaled.hpp"

namespace qreduce {

enum class codec_kind : std::uint8_t { none = 0, fp8, fp8_fnuz, int8, int6, int4, fp4, mxfp4 };

inline constexpr codec_kind all_codecs[] = {codec_kind::none, codec_kind::fp8,  codec_kind::fp8_fnuz,
                                            codec_kind::int8, codec_kind::int6, codec_kind::int4,
                                            codec_kind::fp4,  codec_kind::mxfp4};

// Calls f(std::type_identity<C>{}) with the codec type C of `k`.
template <class F>
constexpr decltype(auto) visit_codec(codec_kind k, F&& f) {
  switch (k) {
    case codec_kind::fp8: return f(std::type_identity<codec::fp8>{});
    case codec_kind::fp8_fnuz: return f(std::type_identity<codec::fp8_fnuz>{});
    case codec_kind::int8: return f(std::type_identity<codec::int8>{});
    case codec_kind::int6: return f(std::type_identity<codec::int6>{});
    case codec_kind::int4: return f(std::type_identity<codec::int4>{});
    case codec_kind::fp4: return f(std::type_identity<codec::fp4>{});
    case codec_kind::mxfp4: return f(std::type_identity<codec::mxfp4>{});
    case codec_kind::none: break;
  }
  return f(std::type_identity<codec::passthrough>{});
}

inline const char* codec_name(codec_kind k) {
  return visit_codec(k, [](auto tag) { return decltype(tag)::type::name; });
}

inline std::optional<codec_kind> parse_codec(std::string_view s) {
  for (codec_kind k : all_codecs)
    if (s == codec_name(k)) return k;
  return std::nullopt;
}

}  // namespace qreduce
