// qreduce/transport/peer_memory.hpp: the transport policy, and its model for GPUs that store into
// each other's memory (NVLink on NVIDIA through CUDA IPC; XGMI / Infinity Fabric on AMD through HIP
// IPC).
//
// A transport says how a rank's workspace is allocated so that peers' stores reach a kernel that is
// running on it, how the workspace is shared with the other ranks and mapped from what they share,
// and, on the device, how a flag is raised and observed. The algorithms are written against these
// verbs; the data itself moves by plain stores into the mapped slots (the codec's store_lane), whose
// ordering the flag verbs state:
//
//   signal(flag, v)   release at system scope: every store this thread made before, and every store
//                     of its block made before the block's barrier that preceded the call
//                     (cumulativity), is visible to a peer that observes v.
//   observe(flag)     acquire at system scope: after it returns v, every store that preceded the
//                     peer's signal of v is visible to this thread; stale cached copies are dropped
//                     (L1 on NVIDIA; L1 and non-coherent L2 lines on CDNA).
//
// On AMD the workspace is fine-grained, uncached device memory (hipExtMallocWithFlags with
// hipDeviceMallocUncached, as QuickReduce allocates it): plain hipMalloc memory is coarse-grained,
// and a peer's stores into it are not guaranteed to be seen by a kernel that is already running.
#pragma once
#include <concepts>
#include <cstddef>
#include <cstdint>
#include "../config.hpp"
#include "../device/atomic.hpp"

#if !QR_BACKEND_HOST
#include "../runtime.hpp"
#endif

namespace qreduce::transport {

// What the communicator needs of a transport on the host. The device verbs (signal, observe) are
// static __device__ functions of the same type; device code that uses them fails to compile when
// they are missing.
template <class T>
concept transport_policy = requires(std::size_t n, void* p, const typename T::shared_handle& h) {
  { T::name } -> std::convertible_to<const char*>;
  { T::allocate(n) } -> std::same_as<void*>;
  { T::deallocate(p) }
  noexcept;
  { T::share(p) } -> std::same_as<typename T::shared_handle>;
  { T::open(h) } -> std::same_as<void*>;
  { T::close(p) }
  noexcept;
};

#if !QR_BACKEND_HOST
struct peer_memory {
  static constexpr const char* name = QR_BACKEND_CUDA ? "peer memory over NVLink (CUDA IPC)" : "peer memory over XGMI (HIP IPC, uncached)";
  using shared_handle = rt::ipc_handle_t;

  static void* allocate(std::size_t bytes) { return rt::malloc_peer_visible(bytes); }
  static void deallocate(void* p) noexcept { rt::free_device(p); }
  static shared_handle share(void* p) { return rt::ipc_get_handle(p); }
  static void* open(const shared_handle& h) { return rt::ipc_open(h); }
  static void close(void* p) noexcept { rt::ipc_close(p); }

  QR_DEVICE static QR_FORCEINLINE void signal(std::uint32_t* flag, std::uint32_t v) {
    device::atomic_store<device::order::release, device::scope::system>(flag, v);
  }
  QR_DEVICE static QR_FORCEINLINE std::uint32_t observe(const std::uint32_t* flag) {
    return device::atomic_load<device::order::acquire, device::scope::system>(flag);
  }
};
static_assert(transport_policy<peer_memory>);

// The transport a communicator uses unless told otherwise.
using default_transport = peer_memory;
#endif

}  // namespace qreduce::transport
