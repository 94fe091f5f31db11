// qreduce/codec/all.hpp: the codec list, the run-time name of each codec, and codec sets.
//
// `codec_set<C...>` is a list of codec types. `all_codecs_set` is the one list of every codec; the
// run-time identifier `codec_kind` of a codec is its position there (the enum names the same
// positions, checked below), and `visit_codec` / `all_codecs` / `codec_name` / `parse_codec` are
// derived from it. A communicator can be compiled for a smaller set (comm.hpp): only the kernels of
// its codecs are instantiated.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include "int4m.hpp"
#include "passthrough.hpp"
#include "rotation.hpp"
#include "scaled.hpp"

namespace qreduce {

template <class... Cs>
struct codec_set {
  static constexpr std::size_t size = sizeof...(Cs);
};

using all_codecs_set =
    codec_set<codec::passthrough, codec::fp8, codec::fp8_fnuz, codec::int8, codec::int6, codec::int4, codec::fp4, codec::mxfp4, codec::int4m>;

// Positions in all_codecs_set.
enum class codec_kind : std::uint8_t { none = 0, fp8, fp8_fnuz, int8, int6, int4, fp4, mxfp4, int4m };

namespace detail {
template <class C, class... Cs>
constexpr int index_in(codec_set<Cs...>) {
  int i = 0, found = -1;
  ((std::is_same_v<C, Cs> ? (found = i, ++i) : ++i), ...);
  return found;
}
template <class... Cs>
constexpr auto kinds_of(codec_set<Cs...>) {
  struct array {
    codec_kind v[sizeof...(Cs)];
    constexpr const codec_kind* begin() const { return v; }
    constexpr const codec_kind* end() const { return v + sizeof...(Cs); }
  };
  return array{{codec_kind(index_in<Cs>(all_codecs_set{}))...}};
}
// Calls f(std::type_identity<C>{}) for the C of the set whose kind is k; the last one if none is
// (callers check membership first: contains()).
template <class F, class C, class... Rest>
constexpr decltype(auto) visit_in(codec_kind k, F&& f, codec_set<C, Rest...>) {
  if constexpr (sizeof...(Rest) == 0) {
    return f(std::type_identity<C>{});
  } else {
    if (k == codec_kind(index_in<C>(all_codecs_set{}))) return f(std::type_identity<C>{});
    return visit_in(k, static_cast<F&&>(f), codec_set<Rest...>{});
  }
}
template <class... Cs>
constexpr bool contains(codec_set<Cs...>, codec_kind k) {
  return ((k == codec_kind(index_in<Cs>(all_codecs_set{}))) || ...);
}
}  // namespace detail

// The kind of codec type C.
template <class C>
inline constexpr codec_kind kind_of = [] {
  static_assert(detail::index_in<C>(all_codecs_set{}) >= 0, "not a codec of all_codecs_set");
  return codec_kind(detail::index_in<C>(all_codecs_set{}));
}();

// Every codec kind, in order; and the kinds of a set.
inline constexpr auto all_codecs = detail::kinds_of(all_codecs_set{});
template <class Set>
inline constexpr auto codecs_of = detail::kinds_of(Set{});

template <class Set>
constexpr bool set_contains(codec_kind k) {
  return detail::contains(Set{}, k);
}

// Set with `none` (codec::passthrough) added if it is missing: the two-shot of unquantized data,
// which `auto` may run whatever codecs a communicator was compiled for.
template <class Set>
struct with_passthrough;
template <class... Cs>
struct with_passthrough<codec_set<Cs...>> {
  using type = std::conditional_t<(std::is_same_v<Cs, codec::passthrough> || ...), codec_set<Cs...>, codec_set<codec::passthrough, Cs...>>;
};

// "none, int8, fp4": the names of a set's codecs, for messages.
template <class Set>
inline std::string codec_names() {
  std::string s;
  for (codec_kind k : codecs_of<Set>) s += (s.empty() ? "" : ", ") + std::string(visit_codec(k, [](auto tag) { return decltype(tag)::type::name; }));
  return s;
}

// Calls f(std::type_identity<C>{}) with the codec type C of `k`, among the codecs of Set (every
// codec by default); only the set's codecs are instantiated. `k` must be in the set.
template <class Set = all_codecs_set, class F>
constexpr decltype(auto) visit_codec(codec_kind k, F&& f) {
  return detail::visit_in(k, static_cast<F&&>(f), Set{});
}

inline const char* codec_name(codec_kind k) {
  return visit_codec(k, [](auto tag) { return decltype(tag)::type::name; });
}

inline std::optional<codec_kind> parse_codec(std::string_view s) {
  for (codec_kind k : all_codecs)
    if (s == codec_name(k)) return k;
  return std::nullopt;
}

static_assert(kind_of<codec::passthrough> == codec_kind::none && kind_of<codec::fp8> == codec_kind::fp8 &&
                  kind_of<codec::fp8_fnuz> == codec_kind::fp8_fnuz && kind_of<codec::int8> == codec_kind::int8 &&
                  kind_of<codec::int6> == codec_kind::int6 && kind_of<codec::int4> == codec_kind::int4 && kind_of<codec::fp4> == codec_kind::fp4 &&
                  kind_of<codec::mxfp4> == codec_kind::mxfp4 && kind_of<codec::int4m> == codec_kind::int4m,
              "codec_kind names the positions of all_codecs_set");

}  // namespace qreduce
