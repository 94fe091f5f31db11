// Host tests of the communicator's GPU-free parts: configuration and argument checks, the agreement
// check at creation, dispatch with its overrides, and the bootstraps (threads and local sockets).
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "qreduce/bootstrap/bootstrap.hpp"
#include "qreduce/bootstrap/socket.hpp"
#include "qreduce/dispatch.hpp"
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
}

TEST_CASE("check_call: bad input is named, good input passes") {
  const std::size_t cap = 1 << 20;
  auto call = [&](const void* in, const void* out, std::size_t n, dtype t = dtype::bf16, allreduce_options o = {}) {
    return check_call({in, out, n, t, o}, cap, false);
  };
  CHECK_FALSE(call(buf, buf, 100).has_value());         // in place
  CHECK_FALSE(call(buf, buf + 4096, 100).has_value());  // disjoint
  CHECK_FALSE(call(nullptr, nullptr, 0).has_value());   // nothing to do
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
    all[r].proposed_blocks = 132 - r;
    all[r].tiles_per_slot = 2;
    all[r].oneshot_values_per_block = 4096;
    all[r].timeout_ms = 1000;
  }
  CHECK(check_agreement(all.data(), 4) == 129);  // the minimum grid
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
  all[1].tiles_per_slot = 4;
  CHECK(msg().find("rank 1 asks for a different workspace") != std::string::npos);
  all[1].tiles_per_slot = 2;
  all[0].rank = 1;
  CHECK(msg().find("put rank 1 in place 0") != std::string::npos);
}

TEST_CASE("workspace layout: regions in order, aligned, independent of any message") {
  workspace_config c;
  c.world = 8;
  c.blocks = 132;
  const auto l = workspace_layout::make(c);
  CHECK(l.flags_off < l.seq_off);
  CHECK(l.seq_off < l.barrier_off);
  CHECK(l.barrier_off < l.scatter_off);
  CHECK(l.gather_off == l.scatter_off + 132 * 8 * l.slot_bytes);
  for (auto off : {l.seq_off, l.barrier_off, l.scatter_off, l.gather_off, l.oneshot_off, l.total}) CHECK(off % 256 == 0);
  CHECK(l.slot_bytes >= std::size_t(c.tiles_per_slot) * codec::tile_bytes<codec::passthrough>);
  CHECK(l.total < 40u << 20);  // tens of MiB, not GiB
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
  // no fallback set: never the fallback
  CHECK(choose(90, 2, codec_kind::none, 1u << 30, false, cap, none).algorithm == algorithm_kind::two_shot);
  CHECK(choose(90, 2, codec_kind::none, 1u << 30, true, cap, none).algorithm == algorithm_kind::fallback);
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

TEST_CASE("the dispatch table says where it came from") {
  CHECK(std::string(dispatch_table::provenance).size() > 10);
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
    } catch (...) {
      std::_Exit(0);  // it must fail too (rank 0 tells it, or its own timeout)
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
