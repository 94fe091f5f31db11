// qreduce/device/intrinsics.hpp: the few non-memory instructions the kernels need, per backend:
// a constant-rate clock, lane exchanges, the block barrier, a prefetch into the L2.
#pragma once
#include <cstddef>
#include <cstdint>
#include "../config.hpp"

#if !QR_BACKEND_HOST
namespace qreduce::device {

// Nanoseconds from a clock that runs at a constant rate whatever the core clock does.
QR_DEVICE QR_FORCEINLINE std::uint64_t now_ns() {
#if QR_BACKEND_CUDA
  std::uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
#else
  return __builtin_amdgcn_s_memrealtime() * 10ull;  // 100 MHz on CDNA
#endif
}

QR_DEVICE QR_FORCEINLINE std::uint32_t shfl_xor(std::uint32_t v, int mask) {
#if QR_BACKEND_CUDA
  return __shfl_xor_sync(0xffffffffu, v, mask);
#else
  return __shfl_xor(v, mask);
#endif
}
QR_DEVICE QR_FORCEINLINE float shfl_xor(float v, int mask) {
#if QR_BACKEND_CUDA
  return __shfl_xor_sync(0xffffffffu, v, mask);
#else
  return __shfl_xor(v, mask);
#endif
}

QR_DEVICE QR_FORCEINLINE void block_sync() { __syncthreads(); }

// Asks the L2 to fetch [p, p + bytes) from memory, without waiting and without registers: a block's
// loads that follow find their lines on their way, so one thread's instruction puts a whole round's
// bytes in flight where the threads' own loads keep a few per thread. p and bytes are multiples of 16.
// Bulk prefetch on sm_90 and later; nothing elsewhere (CDNA has no such instruction: its kernels
// keep their loads in flight themselves).
inline constexpr std::size_t prefetch_piece_bytes = 32768;
QR_DEVICE QR_FORCEINLINE void prefetch_l2(const void* p, std::size_t bytes) {
#if QR_HAS_BULK_L2_PREFETCH
  const char* c = static_cast<const char*>(p);
  for (std::size_t i = 0; i < bytes; i += prefetch_piece_bytes) {
    const std::size_t piece = bytes - i < prefetch_piece_bytes ? bytes - i : prefetch_piece_bytes;
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(c + i), "r"(std::uint32_t(piece)) : "memory");
  }
#else
  (void)p;
  (void)bytes;
#endif
}

}  // namespace qreduce::device
#endif
