// qreduce/device/atomic.hpp: scoped atomics on 32-bit words, one template for both backends.
//
//   atomic_load<order, scope>(p)   atomic_store<order, scope>(p, v)   atomic_fetch_add<order, scope>(p, v)
//   atomic_cas<scope>(p, expected, desired)   (acq_rel on success, relaxed on failure)
//   copy8_async(shared, p), wait_async_copies()   8 bytes into shared memory, without waiting where the target can
//   load_relaxed_v4<scope>(p)   four 32-bit words, each read as a relaxed atomic (the 16 bytes as a
//                               whole need not be: a reader may see some words of a store and not others)
//
// scope::gpu orders against the other blocks of this GPU; scope::system also
// against peers that map this memory over NVLink / XGMI / PCIe, across processes (the flags).
// On CUDA these are the PTX forms `ld.acquire.sys`, `st.release.sys`, `atom.acq_rel.gpu` (written as
// inline assembly so the machine-code check can find them); on HIP the __hip_atomic builtins, which
// at system scope write back L2 before a release (`buffer_wbl2 sc0 sc1`) and invalidate it after an
// acquire.
#pragma once
#include <cstdint>
#include "../config.hpp"

namespace qreduce::device {

enum class order { relaxed, acquire, release, acq_rel };
enum class scope { gpu, system };

}  // namespace qreduce::device

#if !QR_BACKEND_HOST
namespace qreduce::device {

namespace detail {
#if QR_BACKEND_HIP
template <order O>
inline constexpr int hip_order = O == order::relaxed   ? __ATOMIC_RELAXED
                                 : O == order::acquire ? __ATOMIC_ACQUIRE
                                 : O == order::release ? __ATOMIC_RELEASE
                                                       : __ATOMIC_ACQ_REL;
template <scope S>
inline constexpr int hip_scope = S == scope::gpu ? __HIP_MEMORY_SCOPE_AGENT : __HIP_MEMORY_SCOPE_SYSTEM;
#endif
template <order O, order... Allowed>
inline constexpr bool one_of = ((O == Allowed) || ...);
}  // namespace detail

template <order O, scope S>
QR_DEVICE QR_FORCEINLINE std::uint32_t atomic_load(const std::uint32_t* p) {
  static_assert(detail::one_of<O, order::relaxed, order::acquire>, "a load is relaxed or acquire");
#if QR_BACKEND_CUDA
  std::uint32_t v;
  if constexpr (O == order::acquire && S == scope::system) asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  else if constexpr (O == order::acquire) asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  else if constexpr (S == scope::system) asm volatile("ld.relaxed.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  else asm volatile("ld.relaxed.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
#else
  return __hip_atomic_load(p, detail::hip_order<O>, detail::hip_scope<S>);
#endif
}

template <order O, scope S>
QR_DEVICE QR_FORCEINLINE void atomic_store(std::uint32_t* p, std::uint32_t v) {
  static_assert(detail::one_of<O, order::relaxed, order::release>, "a store is relaxed or release");
#if QR_BACKEND_CUDA
  if constexpr (O == order::release && S == scope::system) asm volatile("st.release.sys.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
  else if constexpr (O == order::release) asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
  else if constexpr (S == scope::system) asm volatile("st.relaxed.sys.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
  else asm volatile("st.relaxed.gpu.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
#else
  __hip_atomic_store(p, v, detail::hip_order<O>, detail::hip_scope<S>);
#endif
}

template <order O, scope S>
QR_DEVICE QR_FORCEINLINE std::uint32_t atomic_fetch_add(std::uint32_t* p, std::uint32_t v) {
  static_assert(O == order::acq_rel, "only the acq_rel read-modify-write is used (and provided)");
#if QR_BACKEND_CUDA
  std::uint32_t old;
  if constexpr (S == scope::system) asm volatile("atom.acq_rel.sys.global.add.u32 %0, [%1], %2;" : "=r"(old) : "l"(p), "r"(v) : "memory");
  else asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], %2;" : "=r"(old) : "l"(p), "r"(v) : "memory");
  return old;
#else
  return __hip_atomic_fetch_add(p, v, detail::hip_order<O>, detail::hip_scope<S>);
#endif
}

template <scope S>
QR_DEVICE QR_FORCEINLINE uint4 load_relaxed_v4(const void* p) {
#if QR_BACKEND_CUDA
  uint4 v;
  if constexpr (S == scope::system)
    asm volatile("ld.relaxed.sys.global.v4.b32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p) : "memory");
  else asm volatile("ld.relaxed.gpu.global.v4.b32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p) : "memory");
  return v;
#else
  const auto* w = static_cast<const std::uint32_t*>(p);
  return make_uint4(__hip_atomic_load(w, __ATOMIC_RELAXED, detail::hip_scope<S>), __hip_atomic_load(w + 1, __ATOMIC_RELAXED, detail::hip_scope<S>),
                    __hip_atomic_load(w + 2, __ATOMIC_RELAXED, detail::hip_scope<S>),
                    __hip_atomic_load(w + 3, __ATOMIC_RELAXED, detail::hip_scope<S>));
#endif
}

// Copies 8 bytes of global memory (8-byte aligned, two 32-bit words written by a peer before a
// release this thread has acquired) into shared memory without waiting for them, where the target
// can: cp.async on NVIDIA (its read is ordered after the thread's earlier acquire like any later
// load). wait_async_copies() waits for this thread's copies. On AMD the copy is a plain
// system-scope load and store, done at once.
QR_DEVICE QR_FORCEINLINE void copy8_async(std::uint64_t* shared_dst, const std::uint32_t* src) {
#if QR_BACKEND_CUDA
  const auto dst = static_cast<std::uint32_t>(__cvta_generic_to_shared(shared_dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8;\n\tcp.async.commit_group;" ::"r"(dst), "l"(src) : "memory");
#else
  *shared_dst = std::uint64_t(__hip_atomic_load(src, __ATOMIC_RELAXED, __HIP_MEMORY_SCOPE_SYSTEM)) |
                std::uint64_t(__hip_atomic_load(src + 1, __ATOMIC_RELAXED, __HIP_MEMORY_SCOPE_SYSTEM)) << 32;
#endif
}
QR_DEVICE QR_FORCEINLINE void wait_async_copies() {
#if QR_BACKEND_CUDA
  asm volatile("cp.async.wait_all;" ::: "memory");
#endif
}

template <scope S>
QR_DEVICE QR_FORCEINLINE bool atomic_cas(std::uint32_t* p, std::uint32_t expected, std::uint32_t desired) {
#if QR_BACKEND_CUDA
  std::uint32_t old;
  if constexpr (S == scope::system)
    asm volatile("atom.acq_rel.sys.global.cas.b32 %0, [%1], %2, %3;" : "=r"(old) : "l"(p), "r"(expected), "r"(desired) : "memory");
  else asm volatile("atom.acq_rel.gpu.global.cas.b32 %0, [%1], %2, %3;" : "=r"(old) : "l"(p), "r"(expected), "r"(desired) : "memory");
  return old == expected;
#else
  return __hip_atomic_compare_exchange_strong(p, &expected, desired, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED, detail::hip_scope<S>);
#endif
}

}  // namespace qreduce::device
#endif
