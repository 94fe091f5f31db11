// Host tests of the communicator's GPU-free parts: configuration and argument checks, the agreement
// check at creation, dispatch with its overrides, and the bootstraps (threads and local sockets).
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "qreduce/algorithm/one_shot.hpp"
#include "qreduce/algorithm/signature.hpp"
#include "qreduce/algorithm/two_shot.hpp"
#include "qreduce/bootstrap/bootstrap.hpp"
#include "qreduce/bootstrap/process.hpp"
#include "qreduce/bootstrap/socket.hpp"
#include "qreduce/dispatch.hpp"
#include "qreduce/epilogue/epilogue.hpp"
#include "qreduce/epilogue/identity.hpp"
#include "qreduce/epilogue/rmsnorm.hpp"
#include "qreduce/options.hpp"

using namespace qreduce;

namespace {
template <class F>
errc code_of(F&& f) {
  try {
    f();
  } catch (const error& e) {
    return e.code();
  }
  FAIL("no error thrown");
  return errc::runtime;
}
alignas(16) char buf[1 << 16];
}  // namespace

TEST_CASE("error categories have names") {
  CHECK(std::string(errc_name(errc::timeout)) == "timeout");
  CHECK(std::string(errc_name(errc::mismatch)) == "rank mismatch");
  CHECK(std::string(error(errc::invalid_argument, "x").what()) == "qreduce: x");
}

TEST_CASE("validate_config: world sizes and limits") {
  CHECK_NOTHROW(validate_config({}, 2));
  CHECK_NOTHROW(validate_config({}, 8));
  CHECK(code_of([] { validate_config({}, 3); }) == errc::unsupported);
  CHECK(code_of([] { validate_config({}, 16); }) == errc::unsupported);
  comm_config c;
  c.oneshot_values_per_block = 3000;
  CHECK(code_of([&] { validate_config(c, 2); }) == errc::invalid_argument);
  c = {};
  c.timeout_ms = 0;
  CHECK(code_of([&] { validate_config(c, 2); }) == errc::invalid_argument);
  c = {};
  CHECK(round_bytes_for(c, 2) == 16384);  // the defaults
  CHECK(round_bytes_for(c, 4) == 16384);
  CHECK(round_bytes_for(c, 8) == 32768);  // 4 KiB a segment: one unquantized tile
  c.round_bytes = 16384;  // 2 KiB a segment at 8 ranks: no room for an unquantized tile
  CHECK_NOTHROW(validate_config(c, 2));
  CHECK(code_of([&] { validate_config(c, 8); }) == errc::invalid_argument);
  c.round_bytes = 32768 + 512;  // not a multiple of 256 * world
  CHECK(code_of([&] { validate_config(c, 4); }) == errc::invalid_argument);
}

TEST_CASE("oneshot_values_for: 8192 at 2 ranks on sm_90, 4096 elsewhere, the caller's value as given") {
  CHECK(oneshot_values_for({}, 2, 90) == 8192);
  CHECK(oneshot_values_for({}, 2, 100) == 4096);
  CHECK(oneshot_values_for({}, 2) == 4096);
  CHECK(oneshot_values_for({}, 4, 90) == 4096);
  comm_config c;
  c.oneshot_values_per_block = 6144;
  CHECK(oneshot_values_for(c, 2, 90) == 6144);
  CHECK(propose_grids({}, 2, 132, 90).two_shot == 1056);  // the larger one-shot still leaves 8 blocks a multiprocessor
}

TEST_CASE("propose_grids: blocks per multiprocessor, capped, and within the workspace budget") {
  comm_config c;
  for (int w : {2, 4, 8}) {
    const grids g = propose_grids(c, w, 132);
    CHECK(g.one_shot == 132);
    CHECK(g.two_shot <= 132 * twoshot_blocks_per_sm(w));
    CHECK(g.two_shot >= 132 * (w == 2 ? twoshot_blocks_per_sm(w) : 1));  // the budget binds at 4 and 8 ranks
    if (w == 4) CHECK(g.two_shot == 660);  // 5 blocks a multiprocessor fit 64 MiB (the kernels are compiled for 6)
    CHECK(g.two_shot % 132 == 0);  // whole blocks per multiprocessor, where the budget binds too
    workspace_config wc;
    wc.world = w;
    wc.blocks = g.two_shot;
    wc.oneshot_blocks = g.one_shot;
    wc.round_bytes = round_bytes_for(c, w);
    CHECK(workspace_layout::make(wc).total <= c.max_workspace_bytes);  // the default budget holds
  }
  c.max_blocks = 33;
  CHECK(propose_grids(c, 2, 132).two_shot == 33);
  CHECK(propose_grids(c, 2, 132).one_shot == 33);
  c = {};
  c.max_workspace_bytes = 24u << 20;  // a smaller budget: fewer two-shot blocks, never more memory
  const grids g = propose_grids(c, 8, 132);
  workspace_config wc;
  wc.world = 8;
  wc.blocks = g.two_shot;
  wc.oneshot_blocks = g.one_shot;
  wc.round_bytes = round_bytes_for(c, 8);
  CHECK(g.two_shot < 132);
  CHECK(workspace_layout::make(wc).total <= c.max_workspace_bytes);
  c.max_workspace_bytes = 1u << 20;  // not even the one-shot's slots
  CHECK(code_of([&] { propose_grids(c, 8, 132); }) == errc::invalid_argument);
}

TEST_CASE("check_call: bad input is named, good input passes") {
  const std::size_t cap = 1 << 20;
  auto call = [&](const void* in, const void* out, std::size_t n, dtype t = dtype::bf16, allreduce_options o = {}) {
    return check_call({in, out, n, t, o}, cap, false);
  };
  CHECK_FALSE(call(buf, buf, 100).has_value());  // in place
  CHECK_FALSE(call(buf, buf + 4096, 100).has_value());  // disjoint
  CHECK_FALSE(call(nullptr, nullptr, 0).has_value());  // nothing to do
  CHECK(call(nullptr, buf, 10)->find("null") != std::string::npos);
  CHECK(call(buf + 2, buf + 2, 10)->find("aligned") != std::string::npos);
  CHECK(call(buf, buf + 16, 100)->find("overlap") != std::string::npos);
  CHECK(call(buf, buf, 10, dtype(9))->find("dtype") != std::string::npos);
  CHECK(call(buf, buf, (std::size_t(1) << 40) + 1)->find("limit") != std::string::npos);
  CHECK(call(buf, buf, cap + 1, dtype::f16, {codec_kind::none, algorithm_kind::one_shot})->find("one-shot") != std::string::npos);
  CHECK(call(buf, buf, 10, dtype::f16, {codec_kind::fp4, algorithm_kind::one_shot})->find("unquantized") != std::string::npos);
  CHECK(call(buf, buf, 10, dtype::f16, {codec_kind::none, algorithm_kind::fallback})->find("fallback") != std::string::npos);
  CHECK(call(buf, buf, 10, dtype::f16, {codec_kind(42), algorithm_kind::automatic})->find("codec") != std::string::npos);
}

TEST_CASE("check_agreement: the first disagreement is named on every rank") {
  std::vector<rank_info> all(4);
  for (int r = 0; r < 4; ++r) {
    all[r].rank = r;
    all[r].world = 4;
    all[r].proposed = {264 - r, 132 - 2 * r};
    all[r].round_bytes = 32768;
    all[r].oneshot_values_per_block = 4096;
    all[r].timeout_ms = 1000;
  }
  CHECK(check_agreement(all.data(), 4).two_shot == 261);  // the minimum of each grid
  CHECK(check_agreement(all.data(), 4).one_shot == 126);
  auto msg = [&] {
    try {
      check_agreement(all.data(), 4);
    } catch (const error& e) {
      CHECK(e.code() == errc::mismatch);
      return std::string(e.what());
    }
    return std::string();
  };
  all[2].world = 8;
  CHECK(msg().find("rank 2 says the world has 8") != std::string::npos);
  all[2].world = 4;
  all[3].abi = abi_version + 1;
  CHECK(msg().find("rank 3 runs qreduce ABI") != std::string::npos);
  all[3].abi = abi_version;
  all[1].round_bytes = 65536;
  CHECK(msg().find("rank 1 asks for a different workspace") != std::string::npos);
  all[1].round_bytes = 32768;
  all[2].codec_override = std::uint8_t(codec_kind::fp4);  // QREDUCE_CODEC=fp4 on rank 2 only
  CHECK(msg().find("rank 2 has QREDUCE_CODEC fp4, rank 0 unset") != std::string::npos);
  all[2].codec_override = 0xff;
  all[3].algorithm_override = std::uint8_t(algorithm_kind::one_shot);
  CHECK(msg().find("rank 3 has QREDUCE_ALGORITHM oneshot, rank 0 unset") != std::string::npos);
  all[3].algorithm_override = 0xff;
  all[1].quant_min_bytes = 1 << 20;
  CHECK(msg().find("rank 1 has QREDUCE_QUANT_MIN_BYTES") != std::string::npos);
  all[1].quant_min_bytes = 0;
  all[1].arch = 100;
  CHECK(msg().find("rank 1 runs on architecture 100") != std::string::npos);
  all[1].arch = 0;
  all[0].rank = 1;
  CHECK(msg().find("put rank 1 in place 0") != std::string::npos);
}

TEST_CASE("workspace layout: regions in order, aligned, independent of any message") {
  workspace_config c;
  c.world = 8;
  c.blocks = 264;
  c.oneshot_blocks = 132;
  c.round_bytes = 32768;
  const auto l = workspace_layout::make(c);
  CHECK(l.flags_off < l.seq_off);
  CHECK(l.seq_off < l.abort_off);
  CHECK(l.abort_off < l.calls_off);
  CHECK(l.calls_off < l.scatter_off);
  CHECK(l.gather_off == l.scatter_off + ring_slots * 264 * 7 * l.segment_bytes);  // a slot per peer
  CHECK(l.oneshot_off == l.gather_off + ring_slots * 264 * 7 * l.segment_bytes);
  for (auto off : {l.seq_off, l.abort_off, l.calls_off, l.scatter_off, l.gather_off, l.oneshot_off, l.total}) CHECK(off % 256 == 0);
  CHECK(l.segment_bytes * 8 == c.round_bytes);
  // a segment slot holds at least one tile of every codec, and more of the smaller ones
  CHECK(l.max_tiles_per_segment(codec::slot_tile_bytes<codec::passthrough>) == 1);
  CHECK(l.max_tiles_per_segment(codec::slot_tile_bytes<codec::fp4>) == 3);
  // the slots of the last block of the last ring position end where the next region starts
  std::vector<std::byte> ws(l.total);
  device_handle h{};
  h.layout = l;
  h.peer[0] = ws.data();
  CHECK(std::size_t(h.gather_slot(0, ring_slots - 1, 263, 7) - ws.data()) + l.segment_bytes == l.oneshot_off);
  // the peers of a block's ring position take consecutive slots, from the rank after the owner on
  for (auto& p : h.peer) p = ws.data();  // every rank's workspace laid out alike: addresses seen in one
  CHECK(h.scatter_slot(0, 0, 0, 1) == ws.data() + l.scatter_off);
  CHECK(std::size_t(h.scatter_slot(3, 1, 5, 2) - ws.data()) == l.scatter_off + ((264 + 5) * 7 + 6) * l.segment_bytes);
  CHECK(std::size_t(h.gather_slot(5, 2, 263, 6) - ws.data()) == l.gather_off + ((2 * 264 + 263) * 7 + 0) * l.segment_bytes);
  for (int r = 0; r < 8; ++r) {  // every (owner, peer) pair of a position has its own slot
    std::vector<std::size_t> seen;
    for (int src = 0; src < 8; ++src)
      if (src != r) seen.push_back(h.slot_index(r, 1, 7, src));
    std::sort(seen.begin(), seen.end());
    CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());
    CHECK(seen.front() == (264 + 7) * 7);
    CHECK(seen.back() == (264 + 7) * 7 + 6);
  }
  CHECK(std::size_t(h.oneshot_buffer(0, 1, 7) - ws.data()) + l.oneshot_buffer_bytes == l.total);
  CHECK(l.oneshot_buffer_bytes % 256 == 0);  // every buffer starts on a line
  CHECK(h.oneshot_header(0, 0, 0, 0) == h.oneshot_buffer(0, 0, 0) + 2 * l.one_shot_max_values());  // the values, then a header per block
  CHECK(h.oneshot_header(0, 1, 7, 131) + 16 <= h.oneshot_buffer(0, 1, 7) + l.oneshot_buffer_bytes);
  // the abort word's call signatures end before the call words; the last call words before the slots
  CHECK(std::size_t(reinterpret_cast<std::byte*>(h.abort_calls(0) + 4) - ws.data()) <= l.calls_off);
  CHECK(std::size_t(reinterpret_cast<std::byte*>(h.call_words(0, ring_slots - 1, 263, 7) + 2) - ws.data()) <= l.scatter_off);
  CHECK(std::size_t(reinterpret_cast<std::byte*>(h.call_words(0, 0, 0, 0)) - ws.data()) == l.calls_off);
  CHECK(l.total < 96u << 20);  // tens of MiB, not GiB
}

TEST_CASE("plan_two_shot: tiles per segment follow the codec's tile size, chunks cover the message") {
  workspace_config c;
  c.world = 2;
  c.blocks = 528;
  c.oneshot_blocks = 132;
  c.round_bytes = 32768;
  const auto l = workspace_layout::make(c);
  const std::size_t big = std::size_t(1) << 29;
  const auto none = algorithm::plan_two_shot<codec::passthrough>(l, big);
  const auto fp4 = algorithm::plan_two_shot<codec::fp4>(l, big);
  CHECK(none.tiles_per_segment == 4);  // 16 KiB a segment
  CHECK(fp4.tiles_per_segment == 14);  // 16 KiB / 1152 bytes
  CHECK(none.blocks == 528);
  CHECK(none.chunks * 2 * 4 * codec::tile_values >= big);
  const auto small = algorithm::plan_two_shot<codec::fp4>(l, 5000);
  CHECK(small.tiles_per_segment == 1);
  CHECK(small.blocks == 2);
  // a message of 528 blocks x 2 ranks x 5 tiles: K = 5, one round a block (a slot holds 14 fp4 tiles)
  const std::size_t mid = std::size_t(528) * 2 * 5 * codec::tile_values;
  const auto one_round = algorithm::plan_two_shot<codec::fp4>(l, mid);
  CHECK(one_round.tiles_per_segment == 5);
  CHECK(one_round.chunks == 528);
  CHECK(one_round.blocks == 528);
  // 15 segment tiles' worth for every block: full slots (14 tiles) would give 566 chunks, so 38
  // blocks two rounds of 14 tiles and the rest one; two rounds of 8 tiles cover it in 990 chunks
  const std::size_t over = std::size_t(528) * 2 * 15 * codec::tile_values;
  const auto balanced = algorithm::plan_two_shot<codec::fp4>(l, over);
  CHECK(balanced.tiles_per_segment == 8);
  CHECK(balanced.chunks == 990);
  CHECK((balanced.chunks + 527) / 528 == 2);
}

TEST_CASE_TEMPLATE("plan_two_shot<C>: the plan's tiles fit a segment slot at the kernel's stride, for every round size", C, codec::passthrough,
                   codec::fp8, codec::int8, codec::int6, codec::int4, codec::fp4, codec::mxfp4, codec::int4m) {
  for (int world : {2, 4, 8})
    for (std::size_t round : {std::size_t(16384), std::size_t(24576), std::size_t(32768), std::size_t(65536)}) {
      if (round / std::size_t(world) < 4096) continue;  // a segment holds a tile of every codec (validate_config)
      workspace_config c;
      c.world = world;
      c.blocks = 264;
      c.oneshot_blocks = 132;
      c.round_bytes = round;
      const auto l = workspace_layout::make(c);
      for (std::size_t n : {std::size_t(5000), std::size_t(1) << 22, std::size_t(1) << 29}) {
        const auto p = algorithm::plan_two_shot<C>(l, n);
        // what the kernel checks before it stores anything (two_shot.hpp: K * slot stride <= segment)
        CHECK(std::size_t(p.tiles_per_segment) * std::size_t(codec::slot_tile_bytes<C>) <= l.segment_bytes);
        CHECK(p.tiles_per_segment <= algorithm::max_step_tiles<C>);  // and what its scale image holds
        CHECK(p.chunks * std::size_t(world) * std::size_t(p.tiles_per_segment) * codec::tile_values >= n);
      }
    }
}

TEST_CASE("plan_one_shot: slices of 8 values, a tile per block up to the grid") {
  workspace_config c;
  c.world = 2;
  c.blocks = 396;
  c.oneshot_blocks = 132;
  const auto l = workspace_layout::make(c);
  // plain: a tile per block up to the grid, then even slices (multiples of 8)
  const auto small = algorithm::plan_one_shot(l, 4096);
  CHECK(small.blocks == 2);
  CHECK(small.per_block == 2048);
  const auto odd = algorithm::plan_one_shot(l, 1000);
  CHECK(odd.blocks == 1);
  CHECK(odd.per_block == 1000);
  const std::size_t cap = l.one_shot_max_values();
  const auto full = algorithm::plan_one_shot(l, cap - 3);
  CHECK(full.blocks == 132);
  CHECK(full.per_block % 8 == 0);
  CHECK(full.per_block * 132 >= cap - 3);
  // one token of 8192 (a fused RMSNorm's row is finished by the kernel of rows): four blocks
  CHECK(algorithm::plan_one_shot(l, 8192).blocks == 4);
}

namespace {
struct custom_epilogue {};
struct custom_row_epilogue {
  static constexpr bool row_pass = true;
  std::size_t row_values() const { return 64; }
};
}  // namespace

TEST_CASE("call signatures: every field tells calls apart, and a mismatch is described") {
  using namespace algorithm;
  const auto none = std::uint32_t(codec_kind::none), fp8 = std::uint32_t(codec_kind::fp8);
  const auto base = call_signature(4096, dtype::f16, none, two_shot_id, 0, false);
  CHECK(base != call_signature(4104, dtype::f16, none, two_shot_id, 0, false));
  CHECK(base != call_signature(4096, dtype::bf16, none, two_shot_id, 0, false));
  CHECK(base != call_signature(4096, dtype::f16, fp8, two_shot_id, 0, false));
  CHECK(base != call_signature(4096, dtype::f16, none, one_shot_id, 0, false));
  CHECK(base != call_signature(4096, dtype::f16, none, two_shot_id, 1, false));
  CHECK(base != call_signature(4096, dtype::f16, none, two_shot_id, 0, true));
  CHECK(call_signature((std::size_t(1) << 40) + 4096, dtype::f16, none, two_shot_id, 0, false) == base);  // counts by their low 40 bits
  CHECK(describe_call(base) == "4096 fp16 values, codec none, two-shot, epilogue identity, rotation off");
  CHECK(describe_call(call_signature(4104, dtype::bf16, fp8, one_shot_id, 1, true)) ==
        "4104 bf16 values, codec fp8, one-shot, epilogue residual + RMSNorm, rotation on");
  CHECK(epilogue_id<epilogue::identity> == 0);
  CHECK(epilogue_id<epilogue::residual_rmsnorm<bf16>> == 1);
  CHECK(epilogue_id<custom_epilogue> == 2);
  CHECK(epilogue_id<custom_row_epilogue> == 3);
}

TEST_CASE("epilogue concepts: what the kernels and all_reduce_with take") {
  CHECK(epilogue::epilogue_for<epilogue::identity, bf16>);
  CHECK(epilogue::epilogue_for<epilogue::identity, f16>);
  CHECK_FALSE(epilogue::epilogue_for<epilogue::identity, float>);  // the tensor types are fp16 and bf16
  CHECK_FALSE(epilogue::row_epilogue_for<epilogue::identity, bf16>);
  CHECK(epilogue::row_epilogue_for<epilogue::residual_rmsnorm<bf16>, bf16>);
  CHECK(epilogue::row_epilogue_for<custom_row_epilogue, f16>);
  struct owning {  // kernels take their epilogue by value: it must be a plain copy
    std::vector<float> table;
  };
  CHECK_FALSE(epilogue::epilogue_for<owning, bf16>);
}

TEST_CASE("codec and world sets: what a communicator is compiled for") {
  using one = codec_set<codec::fp4>;
  static_assert(std::is_same_v<with_passthrough<one>::type, codec_set<codec::passthrough, codec::fp4>>);
  static_assert(std::is_same_v<with_passthrough<all_codecs_set>::type, all_codecs_set>);
  CHECK(set_contains<one>(codec_kind::fp4));
  CHECK_FALSE(set_contains<one>(codec_kind::int8));
  CHECK(codec_names<with_passthrough<one>::type>() == "none, fp4");
  CHECK(codec_names<all_codecs_set>() == "none, fp8, fp8_fnuz, int8, int6, int4, fp4, mxfp4, int4m");
  // visiting a set reaches the codec of that kind, whatever the set's order
  using two = codec_set<codec::mxfp4, codec::int6>;
  CHECK(std::string(visit_codec<two>(codec_kind::int6, [](auto t) { return decltype(t)::type::name; })) == "int6");
  CHECK(std::string(visit_codec<two>(codec_kind::mxfp4, [](auto t) { return decltype(t)::type::name; })) == "mxfp4");
  int n = 0;
  for (codec_kind k : all_codecs) n += parse_codec(codec_name(k)) == k;
  CHECK(n == int(all_codecs_set::size));
  CHECK(n == 9);
  using ws = world_set<2, 8>;
  CHECK(ws::contains(8));
  CHECK_FALSE(ws::contains(4));
  CHECK(ws::names() == "2, 8");
  int seen = 0;
  ws::visit(8, [&](auto w) { seen = decltype(w)::value; });
  CHECK(seen == 8);
  seen = 0;
  ws::visit(4, [&](auto w) { seen = decltype(w)::value; });
  CHECK(seen == 0);
}

TEST_CASE("dispatch: table, capacity and overrides") {
  const std::size_t cap = 1 << 20;  // one-shot capacity in bytes
  dispatch_overrides none;
  // small messages go to the one-shot, large quantized ones to the two-shot (model table)
  CHECK(choose(90, 8, codec_kind::fp4, 4096, false, cap, none).algorithm == algorithm_kind::one_shot);
  CHECK(choose(90, 8, codec_kind::fp4, 4096, false, cap, none).codec == codec_kind::none);
  CHECK(choose(90, 8, codec_kind::fp4, 256u << 20, false, cap, none).algorithm == algorithm_kind::two_shot);
  // the one-shot is never chosen above its capacity
  CHECK(choose(90, 2, codec_kind::none, 8u << 20, false, cap, none).algorithm != algorithm_kind::one_shot);
  // where the table says fallback (sm_90, 4 ranks, `none` at 1 GiB: NCCL measured faster), it is taken
  // only when one is set
  CHECK(choose(90, 4, codec_kind::none, 1u << 30, false, cap, none).algorithm == algorithm_kind::two_shot);
  CHECK(choose(90, 4, codec_kind::none, 1u << 30, true, cap, none).algorithm == algorithm_kind::fallback);
  dispatch_overrides o;
  o.algorithm = algorithm_kind::two_shot;
  CHECK(choose(90, 4, codec_kind::none, 4096, false, cap, o).algorithm == algorithm_kind::two_shot);
  o = {};
  o.codec = codec_kind::int6;
  CHECK(choose(90, 4, codec_kind::none, 256u << 20, false, cap, o).codec == codec_kind::int6);
  o = {};
  o.quant_max_bytes = 64u << 20;
  CHECK(choose(90, 4, codec_kind::fp4, 256u << 20, true, cap, o).algorithm == algorithm_kind::fallback);
  CHECK(choose(90, 4, codec_kind::fp4, 256u << 20, false, cap, o).algorithm == algorithm_kind::two_shot);
}

TEST_CASE("dispatch overrides from the environment, and their errors") {
  ::setenv("QREDUCE_ALGORITHM", "oneshot", 1);
  ::setenv("QREDUCE_CODEC", "int4", 1);
  ::setenv("QREDUCE_QUANT_MIN_BYTES", "1024", 1);
  auto o = dispatch_overrides::from_env();
  CHECK(o.algorithm == algorithm_kind::one_shot);
  CHECK(o.codec == codec_kind::int4);
  CHECK(o.quant_min_bytes == 1024);
  ::setenv("QREDUCE_CODEC", "fp3", 1);
  CHECK(code_of([] { dispatch_overrides::from_env(); }) == errc::invalid_argument);
  ::setenv("QREDUCE_CODEC", "int4", 1);
  ::setenv("QREDUCE_ALGORITHM", "ring", 1);
  CHECK(code_of([] { dispatch_overrides::from_env(); }) == errc::invalid_argument);
  for (const char* v : {"QREDUCE_ALGORITHM", "QREDUCE_CODEC", "QREDUCE_QUANT_MIN_BYTES"}) ::unsetenv(v);
}

// The message of the error `f` throws, or "" if it throws none.
template <class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const error& e) {
    return e.what();
  }
  return "";
}

TEST_CASE("environment variables parse strictly and name themselves when wrong") {
  CHECK(parse_unsigned("10") == 10u);
  CHECK(parse_unsigned("1M", true) == 1u << 20);
  CHECK(parse_unsigned("2G", true) == 2ull << 30);
  for (const char* bad : {"", "10s", "abc", "-1", " 5", "1.5", "99999999999999999999"}) CHECK_FALSE(parse_unsigned(bad, true).has_value());
  CHECK_FALSE(parse_unsigned("1M").has_value());  // no suffix where a count is expected

  ::setenv("QREDUCE_TIMEOUT_MS", "10s", 1);
  CHECK(message_of([] { config_from_env(); }).find("QREDUCE_TIMEOUT_MS=10s") != std::string::npos);
  ::setenv("QREDUCE_TIMEOUT_MS", "abc", 1);
  CHECK(message_of([] { config_from_env(); }).find("QREDUCE_TIMEOUT_MS=abc: expected a whole number in [1, 3600000]") != std::string::npos);
  ::setenv("QREDUCE_TIMEOUT_MS", "2500", 1);
  ::setenv("QREDUCE_MAX_BLOCKS", "abc", 1);
  CHECK(message_of([] { config_from_env(); }).find("QREDUCE_MAX_BLOCKS=abc") != std::string::npos);
  ::setenv("QREDUCE_MAX_BLOCKS", "64", 1);
  ::setenv("QREDUCE_ROUND_BYTES", "32K", 1);
  const comm_config c = config_from_env();
  CHECK(c.timeout_ms == 2500);
  CHECK(c.max_blocks == 64);
  CHECK(c.round_bytes == 32768);
  for (const char* v : {"QREDUCE_TIMEOUT_MS", "QREDUCE_MAX_BLOCKS", "QREDUCE_ROUND_BYTES"}) ::unsetenv(v);

  ::setenv("QREDUCE_QUANT_MIN_BYTES", "1M", 1);
  CHECK(dispatch_overrides::from_env().quant_min_bytes == 1u << 20);
  ::setenv("QREDUCE_QUANT_MAX_BYTES", "64K", 1);  // below the minimum: nothing would be quantized
  CHECK(message_of([] { dispatch_overrides::from_env(); }).find("QREDUCE_QUANT_MIN_BYTES (1048576) is above") != std::string::npos);
  ::setenv("QREDUCE_QUANT_MAX_BYTES", "lots", 1);
  CHECK(message_of([] { dispatch_overrides::from_env(); }).find("QREDUCE_QUANT_MAX_BYTES=lots") != std::string::npos);
  for (const char* v : {"QREDUCE_QUANT_MIN_BYTES", "QREDUCE_QUANT_MAX_BYTES"}) ::unsetenv(v);
  ::setenv("QREDUCE_CODEC", "bogus", 1);
  CHECK(message_of([] { dispatch_overrides::from_env(); }).find("one of none, fp8, fp8_fnuz, int8, int6, int4, fp4, mxfp4") != std::string::npos);
  ::unsetenv("QREDUCE_CODEC");
}

TEST_CASE("the dispatch table says where it came from") { CHECK(std::string(dispatch_table::provenance).size() > 10); }

TEST_CASE("process liveness: a peer's process that exited is told from one that runs, a reused pid too") {
  const process_id me = process_id::self();
  REQUIRE(me.pid == ::getpid());
  if (me.pid_ns == 0 || me.boot_id[0] == '\0') {
    MESSAGE("no /proc pid namespace or boot id here: liveness is unknown, as the library says");
    CHECK(process_liveness(me) == liveness::unknown);
    return;
  }
  CHECK(me.start > 0);
  CHECK(process_liveness(me) == liveness::alive);
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {  // a peer that runs until it is killed
    char c = 1;
    (void)!::write(ready[1], &c, 1);
    for (;;) ::pause();
  }
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  process_id peer = me;  // the same namespace and boot: a peer on this host
  const process_id now = process_id::of_pid(std::int32_t(child));
  peer.pid = now.pid;
  peer.start = now.start;
  CHECK(process_liveness(peer) == liveness::alive);
  process_id reused = peer;  // the same pid, started at another time: not the peer
  reused.start += 1;
  CHECK(process_liveness(reused) == liveness::exited);
  process_id elsewhere = peer;  // another boot (or host): its pid means nothing here
  elsewhere.boot_id[0] = elsewhere.boot_id[0] == 'x' ? 'y' : 'x';
  CHECK(process_liveness(elsewhere) == liveness::unknown);
  process_id other_ns = peer;
  other_ns.pid_ns += 1;
  CHECK(process_liveness(other_ns) == liveness::unknown);
  REQUIRE(::kill(child, SIGKILL) == 0);
  for (int i = 0; i < 200 && process_liveness(peer) == liveness::alive; ++i) ::usleep(5000);
  CHECK(process_liveness(peer) == liveness::exited);  // a zombie, not reaped yet
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(process_liveness(peer) == liveness::exited);  // gone
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST_CASE("thread bootstrap: all-gather among threads, twice") {
  auto g = std::make_shared<thread_group>(4);
  std::vector<std::vector<int>> got(4, std::vector<int>(8));
  std::vector<std::thread> th;
  for (int r = 0; r < 4; ++r)
    th.emplace_back([&, r] {
      thread_bootstrap bs(g, r);
      int mine[2] = {r, r * 10};
      bs.allgather(mine, got[r].data(), sizeof mine);
      bs.allgather(mine, got[r].data(), sizeof mine);
    });
  for (auto& t : th) t.join();
  for (int r = 0; r < 4; ++r)
    for (int s = 0; s < 4; ++s) {
      CHECK(got[r][2 * s] == s);
      CHECK(got[r][2 * s + 1] == 10 * s);
    }
  CHECK(code_of([&] { thread_bootstrap bs(g, 4); }) == errc::invalid_argument);
}

TEST_CASE("socket bootstrap: processes meet, all-gather, and a missing rank times out by name") {
  const std::string name = "hosttest-" + std::to_string(::getpid());
  const int world = 3;
  std::vector<pid_t> kids;
  for (int r = 1; r < world; ++r) {
    const pid_t p = ::fork();
    if (p == 0) {
      int ok = 0;
      try {
        socket_bootstrap bs(r, world, name, std::chrono::seconds(20));
        std::uint64_t mine = 1000 + r, all[3] = {};
        bs.allgather(&mine, all, sizeof mine);
        ok = all[0] == 1000 && all[1] == 1001 && all[2] == 1002;
      } catch (...) {
      }
      std::_Exit(ok ? 0 : 1);
    }
    kids.push_back(p);
  }
  socket_bootstrap bs(0, world, name, std::chrono::seconds(20));
  std::uint64_t mine = 1000, all[3] = {};
  bs.allgather(&mine, all, sizeof mine);
  CHECK(all[1] == 1001);
  CHECK(all[2] == 1002);
  for (pid_t p : kids) {
    int st = 1;
    ::waitpid(p, &st, 0);
    CHECK((WIFEXITED(st) && WEXITSTATUS(st) == 0));
  }

  // rank 2 never comes: rank 0 names it
  const std::string name2 = name + "-missing";
  const pid_t p = ::fork();
  if (p == 0) {
    try {
      socket_bootstrap b1(1, 3, name2, std::chrono::milliseconds(3000));
      std::uint64_t v = 1, a[3];
      b1.allgather(&v, a, sizeof v);
    } catch (const error& e) {  // it must fail too, with rank 0's timeout (rank 0 tells it) or its own
      std::_Exit(e.code() == errc::timeout ? 0 : 1);
    } catch (...) {
      std::_Exit(2);  // anything else is a bug
    }
    std::_Exit(1);
  }
  try {
    socket_bootstrap b0(0, 3, name2, std::chrono::milliseconds(500));
    FAIL("rank 0 did not time out");
  } catch (const error& e) {
    CHECK(e.code() == errc::timeout);
    CHECK(std::string(e.what()).find("rank(s) 2 did not join") != std::string::npos);
  }
  int st = 1;
  ::waitpid(p, &st, 0);
  CHECK((WIFEXITED(st) && WEXITSTATUS(st) == 0));

  // a world-size mismatch is an error on both sides
  const std::string name3 = name + "-mismatch";
  const pid_t q = ::fork();
  if (q == 0) {
    try {
      socket_bootstrap b1(1, 4, name3, std::chrono::milliseconds(3000));
      std::uint64_t v = 1, a[4];
      b1.allgather(&v, a, sizeof v);
    } catch (const error& e) {
      std::_Exit(e.code() == errc::mismatch || e.code() == errc::bootstrap ? 0 : 1);
    }
    std::_Exit(1);
  }
  CHECK(code_of([&] { socket_bootstrap b0(0, 2, name3, std::chrono::milliseconds(3000)); }) == errc::mismatch);
  ::waitpid(q, &st, 0);
  CHECK((WIFEXITED(st) && WEXITSTATUS(st) == 0));
}

namespace {
// A fresh QREDUCE_BOOTSTRAP_DIR for one test, removed after it.
struct bootstrap_dir {
  std::string base;
  bootstrap_dir() {
    char t[] = "/tmp/qrbsXXXXXX";
    const char* made = ::mkdtemp(t);
    REQUIRE(made != nullptr);
    base = made;
    ::setenv("QREDUCE_BOOTSTRAP_DIR", base.c_str(), 1);
  }
  ~bootstrap_dir() {
    ::unsetenv("QREDUCE_BOOTSTRAP_DIR");
    std::system(("rm -rf '" + base + "'").c_str());
  }
  std::string dir() const { return base + "/qreduce-" + std::to_string(::geteuid()); }
};

// What constructing rank r of 2 on `name` throws (empty: nothing).
std::string bootstrap_error(int r, const std::string& name, errc* code = nullptr) {
  try {
    socket_bootstrap bs(r, 2, name, std::chrono::milliseconds(300));
  } catch (const error& e) {
    if (code) *code = e.code();
    return e.what();
  }
  return {};
}
}  // namespace

TEST_CASE("socket bootstrap: the rendezvous directory must be private; both ranks say why it is not") {
  bootstrap_dir d;
  REQUIRE(::mkdir(d.dir().c_str(), 0700) == 0);
  REQUIRE(::chmod(d.dir().c_str(), 0755) == 0);
  for (int r : {0, 1}) {
    errc code = errc::invalid_argument;
    const std::string e = bootstrap_error(r, "private", &code);
    CHECK(code == errc::bootstrap);
    CHECK_MESSAGE(e.find("has mode 755: other users can enter it") != std::string::npos, e);
  }
  REQUIRE(::chmod(d.dir().c_str(), 0700) == 0);
  if (::geteuid() == 0) {  // a directory another user made first
    REQUIRE(::chown(d.dir().c_str(), 65534, 65534) == 0);
    for (int r : {0, 1}) {
      const std::string e = bootstrap_error(r, "private");
      CHECK_MESSAGE(e.find("is owned by uid 65534, not by this user") != std::string::npos, e);
    }
  } else {
    MESSAGE("not root: a directory owned by another user is not tried");
  }
  // a link in its place
  REQUIRE(::rmdir(d.dir().c_str()) == 0);
  REQUIRE(::symlink(d.base.c_str(), d.dir().c_str()) == 0);
  CHECK(bootstrap_error(0, "private").find("is not a directory") != std::string::npos);
  // names that would leave the directory
  for (const char* bad : {"a/b", "..", "."}) {
    errc code = errc::bootstrap;
    bootstrap_error(0, bad, &code);
    CHECK(code == errc::invalid_argument);
  }
}

TEST_CASE("socket bootstrap: a silent connection does not stall the others' admission") {
  bootstrap_dir d;
  const std::string name = "silent";
  std::atomic<bool> done{false};
  std::thread silent([&] {  // connects as soon as rank 0 listens, and never says a word
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    const std::string path = d.dir() + "/" + name;
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    int fd = -1;
    for (int i = 0; i < 1000 && fd < 0; ++i) {
      fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
      if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        fd = -1;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
    while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (fd >= 0) ::close(fd);
  });
  std::uint64_t got1[2] = {};
  std::thread rank1([&] {  // comes after the silent one
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    socket_bootstrap b1(1, 2, name, std::chrono::seconds(20));
    const std::uint64_t mine = 11;
    b1.allgather(&mine, got1, sizeof mine);
  });
  const auto t0 = std::chrono::steady_clock::now();
  {
    socket_bootstrap b0(0, 2, name, std::chrono::seconds(20));
    const std::uint64_t mine = 10;
    std::uint64_t all[2] = {};
    b0.allgather(&mine, all, sizeof mine);
    CHECK(all[1] == 11);
  }
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK_MESSAGE(took < 5.0, "admission took " << took << " s with a silent connection (timeout 20 s)");
  rank1.join();
  CHECK(got1[0] == 10);
  done = true;
  silent.join();
  CHECK(::access((d.dir() + "/" + name).c_str(), F_OK) != 0);  // the socket file went with the admission
}

TEST_CASE("socket bootstrap: a rank talks only to a listener of its own user") {
  if (::geteuid() != 0) {
    MESSAGE("not root: a listener of another user cannot be made; skipped");
    return;
  }
  bootstrap_dir d;
  (void)socket_bootstrap::private_dir();
  const std::string path = d.dir() + "/squat";
  const pid_t p = ::fork();
  if (p == 0) {  // binds the job's name, then listens as uid 65534
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0 || ::listen(fd, 4) != 0)
      std::_Exit(3);
    std::this_thread::sleep_for(std::chrono::seconds(5));
    std::_Exit(0);
  }
  errc code = errc::invalid_argument;
  std::string e;
  try {
    socket_bootstrap b1(1, 2, "squat", std::chrono::seconds(3));
  } catch (const error& x) {
    code = x.code();
    e = x.what();
  }
  ::kill(p, SIGKILL);
  int st = 0;
  ::waitpid(p, &st, 0);
  CHECK(code == errc::bootstrap);
  CHECK_MESSAGE(e.find("is held by uid 65534, not by this user") != std::string::npos, e);
}
