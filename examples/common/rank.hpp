// examples/common/rank.hpp: how every example finds its place: QREDUCE_RANK and QREDUCE_WORLD from
// the environment (checked strictly), and the GPU this rank runs on (rank modulo the visible GPUs).
#pragma once
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include "qreduce/runtime.hpp"

struct example_rank {
  int rank = 0, world = 2, device = 0;
};

// Exits with status 2 and a message naming the problem when a variable is not a number, the rank is
// outside the world, or no GPU is visible.
inline example_rank example_setup(const char* program) {
  const auto read = [&](const char* var, int fallback) {
    const char* v = std::getenv(var);
    if (v == nullptr || *v == '\0') return fallback;
    char* end = nullptr;
    errno = 0;
    const long x = std::strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || x < 0 || x > 1024) {
      std::fprintf(stderr, "%s: %s=%s is not a number in [0, 1024]\n", program, var, v);
      std::exit(2);
    }
    return int(x);
  };
  example_rank r;
  r.rank = read("QREDUCE_RANK", 0);
  r.world = read("QREDUCE_WORLD", 2);
  if (r.rank >= r.world) {
    std::fprintf(stderr, "%s: QREDUCE_RANK=%d is not below QREDUCE_WORLD=%d\n", program, r.rank, r.world);
    std::exit(2);
  }
  const int gpus = qreduce::rt::device_count();
  if (gpus == 0) {
    std::fprintf(stderr, "%s: no GPU visible: qreduce runs on NVIDIA (CUDA) or AMD (HIP) GPUs\n", program);
    std::exit(2);
  }
  r.device = r.rank % gpus;
  qreduce::rt::set_device(r.device);
  return r;
}
