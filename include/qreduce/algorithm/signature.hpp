// qreduce/algorithm/signature.hpp: what a call is, as the ranks' kernels compare it.
//
// Every kernel of a call computes, from its own arguments, a 64-bit signature of what its rank was
// asked: the count (its low 40 bits), the element type, the codec, the algorithm, the epilogue and
// whether rotation is on. The two-shot stores it beside each scatter flag (one word pair per ring
// slot, published by the flag's release), the one-shot beside its data (a header exchanged by the
// grid's last block). A receiver that finds a peer's signature unlike its own records
// fault::call_mismatch with both signatures and stops every rank (flags.hpp): the two-shot before it
// raises its gather flag, so a peer's unlike data reaches no further than this rank's own output;
// the one-shot's other blocks do not wait for the comparison. So ranks that call the same algorithm
// with different counts, codecs, types, epilogues or rotation get an error describing both calls on
// every rank, never a silent sum of unlike data; that call's outputs are undefined. Not covered:
// calls whose algorithms differ (`auto` picks per rank, from the count and the codec) meet in no
// buffer and time out, naming the rank each waited for; the row length of a row-wise epilogue is not
// in the signature: fused RMSNorm calls with the same count and different row lengths go through,
// each rank normalizing its own rows (and, at one-shot sizes, possibly one rank in the fused
// one-shot and the other in the plain one-shot and a kernel of rows: their buffers are the same).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include "../codec/all.hpp"
#include "../config.hpp"
#include "../numeric/float16.hpp"

namespace qreduce::algorithm {

// Bits: count [0, 40), element type [40], codec [41, 46), algorithm [46, 48), epilogue [48, 51),
// rotation [51]. Counts of 2^40 values (2 TB) or more compare by their low 40 bits.
inline constexpr int signature_count_bits = 40;
inline constexpr std::uint64_t signature_count_mask = (std::uint64_t(1) << signature_count_bits) - 1;

// The algorithm field: 1 one-shot, 2 two-shot (algorithm_kind's numbers).
inline constexpr std::uint32_t one_shot_id = 1, two_shot_id = 2;

// The codec field: its codec_kind, or 31 for a codec outside all_codecs_set.
template <class C>
inline constexpr std::uint32_t codec_id = qreduce::detail::index_in<C>(all_codecs_set{}) >= 0
                                              ? std::uint32_t(qreduce::detail::index_in<C>(all_codecs_set{}))
                                              : 31u;

// The epilogue field: an epilogue names itself with `static constexpr std::uint32_t call_id` (identity
// 0, residual + RMSNorm 1); any other is 2, or 3 if it finishes rows (`row_pass`).
template <class Ep>
inline constexpr std::uint32_t epilogue_id = [] {
  if constexpr (requires { Ep::call_id; }) return std::uint32_t(Ep::call_id);
  else if constexpr (requires { Ep::row_pass; }) return 3u;
  else return 2u;
}();

QR_HOST_DEVICE constexpr std::uint64_t call_signature(std::size_t n, dtype type, std::uint32_t codec, std::uint32_t algorithm, std::uint32_t epilogue,
                                                      bool rotate) {
  return (std::uint64_t(n) & signature_count_mask) | (std::uint64_t(type == dtype::bf16) << 40) | (std::uint64_t(codec & 31u) << 41) |
         (std::uint64_t(algorithm & 3u) << 46) | (std::uint64_t(epilogue & 7u) << 48) | (std::uint64_t(rotate) << 51);
}

// "4096 bf16 values, codec fp8, two-shot, epilogue identity, rotation off": for error messages.
inline std::string describe_call(std::uint64_t s) {
  const auto codec = std::uint32_t(s >> 41) & 31u, algorithm = std::uint32_t(s >> 46) & 3u, epilogue = std::uint32_t(s >> 48) & 7u;
  static constexpr const char* algorithms[] = {"?", "one-shot", "two-shot", "?"};
  static constexpr const char* epilogues[] = {"identity", "residual + RMSNorm", "a custom one", "a custom row-wise one", "?", "?", "?", "?"};
  std::string d = std::to_string(s & signature_count_mask) + ((s >> 40) & 1u ? " bf16" : " fp16") + " values, codec ";
  d += codec < all_codecs_set::size ? codec_name(codec_kind(codec)) : "a custom one";
  d += std::string(", ") + algorithms[algorithm] + ", epilogue " + epilogues[epilogue] + ", rotation " + ((s >> 51) & 1u ? "on" : "off");
  return d;
}

}  // namespace qreduce::algorithm
