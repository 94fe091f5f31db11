// qreduce/runtime.hpp: the CUDA/HIP runtime calls qreduce makes, under one set of names.
//
// Nothing here redefines a vendor name: qreduce::rt::stream_t is cudaStream_t or hipStream_t, and
// every call checks its return code and throws qreduce::error (errc::runtime) naming the call.
#pragma once
#include <string>
#include <tuple>
#include <utility>
#include "arch.hpp"
#include "config.hpp"
#include "error.hpp"

#if QR_BACKEND_HOST
#error "qreduce/runtime.hpp needs CUDA or HIP: compile this translation unit as CUDA or HIP"
#endif

namespace qreduce::rt {

#if QR_BACKEND_CUDA
using stream_t = cudaStream_t;
using event_t = cudaEvent_t;
using status_t = cudaError_t;
using ipc_handle_t = cudaIpcMemHandle_t;
using device_prop_t = cudaDeviceProp;
inline constexpr status_t success = cudaSuccess;
inline const char* error_string(status_t s) { return cudaGetErrorString(s); }
#define QR_RT(name) cuda##name
#else
using stream_t = hipStream_t;
using event_t = hipEvent_t;
using status_t = hipError_t;
using ipc_handle_t = hipIpcMemHandle_t;
using device_prop_t = hipDeviceProp_t;
inline constexpr status_t success = hipSuccess;
inline const char* error_string(status_t s) { return hipGetErrorString(s); }
#define QR_RT(name) hip##name
#endif

inline void check(status_t s, const char* what) {
  if (s != success) throw error(errc::runtime, std::string(what) + ": " + error_string(s));
}

inline int get_device() {
  int d = 0;
  check(QR_RT(GetDevice)(&d), "GetDevice");
  return d;
}
inline void set_device(int d) { check(QR_RT(SetDevice)(d), "SetDevice"); }
inline int device_count() {
  int n = 0;
  if (QR_RT(GetDeviceCount)(&n) != success) {
    (void)QR_RT(GetLastError)();
    return 0;
  }
  return n;
}
inline int multiprocessor_count(int dev) {
  int n = 0;
#if QR_BACKEND_CUDA
  check(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev), "DeviceGetAttribute");
#else
  check(hipDeviceGetAttribute(&n, hipDeviceAttributeMultiprocessorCount, dev), "DeviceGetAttribute");
#endif
  return n;
}
inline std::string device_name(int dev) {
  device_prop_t p{};
  check(QR_RT(GetDeviceProperties)(&p, dev), "GetDeviceProperties");
  return p.name;
}
inline int device_arch(int dev) {  // arch.hpp: 90 for sm_90, 942 for gfx942
  device_prop_t p{};
  check(QR_RT(GetDeviceProperties)(&p, dev), "GetDeviceProperties");
#if QR_BACKEND_HIP
  return gfx_arch_id(p.gcnArchName);
#else
  return p.major * 10 + p.minor;
#endif
}

inline void* malloc_device(std::size_t bytes) {
  void* p = nullptr;
  check(QR_RT(Malloc)(&p, bytes), "Malloc");
  return p;
}
inline void free_device(void* p) noexcept { (void)QR_RT(Free)(p); }
// Device memory that peers may store into while a kernel of this device reads it: plain device
// memory on CUDA (NVLink and PCIe peer stores are coherent with a running kernel's system-scope
// acquires); fine-grained, uncached memory on HIP (coarse-grained hipMalloc memory is not).
inline void* malloc_peer_visible(std::size_t bytes) {
  void* p = nullptr;
#if QR_BACKEND_CUDA
  check(cudaMalloc(&p, bytes), "Malloc");
#else
  check(hipExtMallocWithFlags(&p, bytes, hipDeviceMallocUncached), "ExtMallocWithFlags(hipDeviceMallocUncached)");
#endif
  return p;
}
inline void* malloc_host_mapped(std::size_t bytes) {
  void* p = nullptr;
  check(QR_RT(HostAlloc)(&p, bytes, QR_RT(HostAllocMapped)), "HostAlloc");
  return p;
}
inline void free_host(void* p) noexcept { (void)QR_RT(FreeHost)(p); }
inline void* host_device_pointer(void* host) {
  void* d = nullptr;
  check(QR_RT(HostGetDevicePointer)(&d, host, 0), "HostGetDevicePointer");
  return d;
}
inline void memset_device(void* p, int v, std::size_t n) { check(QR_RT(Memset)(p, v, n), "Memset"); }
inline void memcpy_sync(void* dst, const void* src, std::size_t n) { check(QR_RT(Memcpy)(dst, src, n, QR_RT(MemcpyDefault)), "Memcpy"); }
// Copies n bytes on a stream of its own that waits for no other stream, so the copy runs beside
// kernels in flight (which may be waiting for it), and waits for that copy only.
inline void memcpy_beside(void* dst, const void* src, std::size_t n) {
  stream_t s = nullptr;
  check(QR_RT(StreamCreateWithFlags)(&s, QR_RT(StreamNonBlocking)), "StreamCreateWithFlags");
  const status_t c = QR_RT(MemcpyAsync)(dst, src, n, QR_RT(MemcpyDefault), s);
  const status_t w = c == success ? QR_RT(StreamSynchronize)(s) : c;
  (void)QR_RT(StreamDestroy)(s);
  check(c, "MemcpyAsync");
  check(w, "StreamSynchronize");
}
inline void device_synchronize() { check(QR_RT(DeviceSynchronize)(), "DeviceSynchronize"); }
inline void stream_synchronize(stream_t s) { check(QR_RT(StreamSynchronize)(s), "StreamSynchronize"); }
inline void check_launch(const char* kernel) { check(QR_RT(GetLastError)(), kernel); }

// Launches kernel<<<grid, block, 0, s>>>(args...) (errors name it `name`) to start while the kernel before it on s ends
// (CUDA's programmatic stream serialization; the kernel calls device::wait_prerequisites() before it
// reads what that one wrote, device/intrinsics.hpp). HIP has no such launch: a plain one there.
template <class... Params, class... Args>
void launch_dependent(const char* name, void (*kernel)(Params...), unsigned grid, unsigned block, stream_t s, Args&&... args) {
#if QR_BACKEND_CUDA
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(grid);
  cfg.blockDim = dim3(block);
  cfg.stream = s;
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  check(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...), name);
#else
  std::tuple<Params...> held(std::forward<Args>(args)...);  // as the kernel's parameters
  std::apply(
      [&](auto&... p) {
        void* a[] = {&p...};
        check(hipLaunchKernel(reinterpret_cast<const void*>(kernel), dim3(grid), dim3(block), a, 0, s), name);
      },
      held);
#endif
}

inline ipc_handle_t ipc_get_handle(void* p) {
  ipc_handle_t h{};
  check(QR_RT(IpcGetMemHandle)(&h, p), "IpcGetMemHandle");
  return h;
}
inline void* ipc_open(const ipc_handle_t& h) {
  void* p = nullptr;
  check(QR_RT(IpcOpenMemHandle)(&p, h, QR_RT(IpcMemLazyEnablePeerAccess)), "IpcOpenMemHandle");
  return p;
}
inline void ipc_close(void* p) noexcept { (void)QR_RT(IpcCloseMemHandle)(p); }

// Enables direct access from the current device to `peer` (no-op if it is the same device or already on).
inline void enable_peer_access(int peer) {
  const int self = get_device();
  if (peer == self) return;
  int can = 0;
  check(QR_RT(DeviceCanAccessPeer)(&can, self, peer), "DeviceCanAccessPeer");
  if (!can) throw error(errc::unsupported, "device " + std::to_string(self) + " cannot access device " + std::to_string(peer));
  const status_t s = QR_RT(DeviceEnablePeerAccess)(peer, 0);
  if (s == QR_RT(ErrorPeerAccessAlreadyEnabled)) {
    (void)QR_RT(GetLastError)();
    return;
  }
  check(s, "DeviceEnablePeerAccess");
}

// The device a pointer lives on, or -1 for host memory the runtime does not know.
inline int pointer_device(const void* p) {
#if QR_BACKEND_CUDA
  cudaPointerAttributes a{};
#else
  hipPointerAttribute_t a{};
#endif
  if (QR_RT(PointerGetAttributes)(&a, p) != success) {
    (void)QR_RT(GetLastError)();
    return -1;
  }
#if QR_BACKEND_CUDA
  return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged ? a.device : -1;
#else
  return a.type == hipMemoryTypeDevice || a.type == hipMemoryTypeManaged ? a.device : -1;
#endif
}

inline bool stream_capturing(stream_t s) {
  QR_RT(StreamCaptureStatus) st{};
  check(QR_RT(StreamIsCapturing)(s, &st), "StreamIsCapturing");
  return st != QR_RT(StreamCaptureStatusNone);
}

// The device of a stream's context (the current device for the legacy default stream).
inline int stream_device(stream_t s) {
#if QR_BACKEND_CUDA && CUDART_VERSION >= 12080
  int d = -1;
  if (s != nullptr && cudaStreamGetDevice(s, &d) == cudaSuccess) return d;
  (void)cudaGetLastError();
  return get_device();
#elif QR_BACKEND_HIP
  if (s == nullptr) return get_device();
  return hipGetStreamDeviceId(s);
#else
  (void)s;
  return get_device();
#endif
}

}  // namespace qreduce::rt
