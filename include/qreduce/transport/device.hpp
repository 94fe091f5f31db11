// qreduce/transport/device.hpp: the device-side primitives the algorithms are written with:
// flag stores and loads with a named scope and order, a clock, lane exchanges, barriers.
//
// Memory-ordering contract (both backends):
//   * A sender makes its data stores to a peer, then the block synchronizes (block_sync), then one
//     thread per destination raises that destination's flag with store_release_sys. Release at system
//     scope is cumulative: it orders every store the block made before the barrier, across NVLink /
//     XGMI / PCIe, and across processes mapping the memory through IPC.
//   * A receiver's thread waits with load_acquire_sys until the flag reaches the call's sequence
//     number, then the block synchronizes, then every thread reads the data. Acquire at system scope
//     also drops stale cached copies (L1 on NVIDIA; L1 and non-coherent L2 lines on CDNA), so lines read
//     in an earlier round are fetched again.
//   * Flags are sequence numbers that only grow (compared modulo 2^32), held in device memory, so a
//     captured graph replays with fresh values and never needs a reset between calls.
#pragma once
#include <cstdint>
#include "../config.hpp"

#if !QR_BACKEND_HOST
namespace qreduce::device {

QR_DEVICE QR_FORCEINLINE std::uint32_t load_acquire_sys(const std::uint32_t* p) {
#if QR_BACKEND_CUDA
  std::uint32_t v;
  asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
#else
  return __hip_atomic_load(p, __ATOMIC_ACQUIRE, __HIP_MEMORY_SCOPE_SYSTEM);
#endif
}

QR_DEVICE QR_FORCEINLINE std::uint32_t load_relaxed_sys(const std::uint32_t* p) {
#if QR_BACKEND_CUDA
  std::uint32_t v;
  asm volatile("ld.relaxed.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
#else
  return __hip_atomic_load(p, __ATOMIC_RELAXED, __HIP_MEMORY_SCOPE_SYSTEM);
#endif
}

QR_DEVICE QR_FORCEINLINE void store_release_sys(std::uint32_t* p, std::uint32_t v) {
#if QR_BACKEND_CUDA
  asm volatile("st.release.sys.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
#else
  __hip_atomic_store(p, v, __ATOMIC_RELEASE, __HIP_MEMORY_SCOPE_SYSTEM);
#endif
}

// Device (GPU) scope: one rank's own blocks (the grid barrier of the row-wise epilogues).
QR_DEVICE QR_FORCEINLINE std::uint32_t load_acquire_gpu(const std::uint32_t* p) {
#if QR_BACKEND_CUDA
  std::uint32_t v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
#else
  return __hip_atomic_load(p, __ATOMIC_ACQUIRE, __HIP_MEMORY_SCOPE_AGENT);
#endif
}

QR_DEVICE QR_FORCEINLINE void store_release_gpu(std::uint32_t* p, std::uint32_t v) {
#if QR_BACKEND_CUDA
  asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
#else
  __hip_atomic_store(p, v, __ATOMIC_RELEASE, __HIP_MEMORY_SCOPE_AGENT);
#endif
}

QR_DEVICE QR_FORCEINLINE std::uint32_t fetch_add_acq_rel_gpu(std::uint32_t* p, std::uint32_t v) {
#if QR_BACKEND_CUDA
  std::uint32_t old;
  asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], %2;" : "=r"(old) : "l"(p), "r"(v) : "memory");
  return old;
#else
  return __hip_atomic_fetch_add(p, v, __ATOMIC_ACQ_REL, __HIP_MEMORY_SCOPE_AGENT);
#endif
}

QR_DEVICE QR_FORCEINLINE bool cas_sys(std::uint32_t* p, std::uint32_t expected, std::uint32_t desired) {
#if QR_BACKEND_CUDA
  return atomicCAS_system(p, expected, desired) == expected;
#else
  return __hip_atomic_compare_exchange_strong(p, &expected, desired, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED,
                                              __HIP_MEMORY_SCOPE_SYSTEM);
#endif
}

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

}  // namespace qreduce::device
#endif
