// qreduce/device/intrinsics.hpp: the few non-memory instructions the kernels need, per backend:
// a constant-rate clock, lane exchanges, the block barrier.
#pragma once
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

// The block barrier that also tells every thread whether `pred` held in all of them.
QR_DEVICE QR_FORCEINLINE bool block_all(bool pred) { return __syncthreads_and(pred ? 1 : 0) != 0; }

// Programmatic dependent launch (sm_90 and later; nothing elsewhere). A kernel launched after this
// one with rt::launch_dependent may start once every block of this one has called
// trigger_dependents() (or ended); it calls wait_prerequisites() before reading anything this one
// writes, which returns when this grid has ended and its memory is visible. The launch of the second
// kernel then overlaps the end of the first instead of following it.
QR_DEVICE QR_FORCEINLINE void trigger_dependents() {
#if QR_BACKEND_CUDA && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
QR_DEVICE QR_FORCEINLINE void wait_prerequisites() {
#if QR_BACKEND_CUDA && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

}  // namespace qreduce::device
#endif
