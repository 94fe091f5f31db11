// qreduce/config.hpp: the one place that decides the backend and the compiler pass.
//
// Everything else in qreduce asks the macros defined here; no other header tests a chip id or a
// vendor macro. Selection is per compiler pass, so one fat binary can carry sm_90 + sm_100a, or
// gfx942 + gfx950, each pass taking its own fast paths.
//
// Backend (exactly one is 1):
//   QR_BACKEND_CUDA   compiled by nvcc (or clang) as CUDA
//   QR_BACKEND_HIP    compiled as HIP (clang -x hip, hipcc)
//   QR_BACKEND_HOST   plain C++ (g++, clang++): codecs and their host reference only
// Pass:
//   QR_DEVICE_PASS    1 while compiling device code, 0 on the host pass
// Capabilities of the current device pass (0 on the host pass):
//   QR_HAS_NATIVE_FP8_E4M3_CVT    f32 -> OCP E4M3 conversion with saturation (sm_89+, gfx950)
//   QR_HAS_NATIVE_FP8_FNUZ_CVT    f32 -> E4M3 FNUZ conversion (gfx942)
//   QR_HAS_NATIVE_FP4_CVT         f32 -> E2M1 conversion (sm_100a family-specific, gfx950)
//   QR_HAS_NATIVE_FP4_DECODE      E2M1 -> f32 conversion instruction (gfx950)
//   QR_WAVE_SIZE                  lanes per wave of this pass (32 on NVIDIA, 64 on CDNA)
//   QR_WAVE_REDUCE_CUB            a wave's reduction by CUB (CUDA, host pass included)
//   QR_WAVE_REDUCE_ROCPRIM        a wave's reduction by rocPRIM (gfx942: rocPRIM 3.4.1's headers stop
//                                 compiling for gfx950 on its 128-bit atomics, docs/design.md)
#pragma once

#if __cplusplus < 202002L
#error \
    "qreduce needs C++20: compile with -std=c++20 (nvcc and clang -x hip too; in CMake, CUDA code needs -std=c++20 in CMAKE_CUDA_FLAGS or the target's options)"
#endif

#include <cstddef>
#include <cstdint>

#if defined(__HIP__) || defined(__HIPCC__)
#define QR_BACKEND_HIP 1
#define QR_BACKEND_CUDA 0
#define QR_BACKEND_HOST 0
#elif defined(__CUDACC__)
#define QR_BACKEND_HIP 0
#define QR_BACKEND_CUDA 1
#define QR_BACKEND_HOST 0
#else
#define QR_BACKEND_HIP 0
#define QR_BACKEND_CUDA 0
#define QR_BACKEND_HOST 1
#endif

#if QR_BACKEND_HIP && defined(__HIP_DEVICE_COMPILE__)
#define QR_DEVICE_PASS 1
#elif QR_BACKEND_CUDA && defined(__CUDA_ARCH__)
#define QR_DEVICE_PASS 1
#else
#define QR_DEVICE_PASS 0
#endif

// Full unrolling of the loop that follows, where the compiler takes the hint (not nvcc's host
// compiler, which would warn).
#if defined(__CUDA_ARCH__) || defined(__HIP__) || defined(__clang__)
#define QR_UNROLL _Pragma("unroll")
#else
#define QR_UNROLL
#endif

#if QR_BACKEND_HOST
#define QR_HOST_DEVICE
#define QR_DEVICE
#define QR_FORCEINLINE inline __attribute__((always_inline))
#define QR_NOINLINE __attribute__((noinline))
#else
#define QR_HOST_DEVICE __host__ __device__
#define QR_DEVICE __device__
#define QR_FORCEINLINE __forceinline__
#define QR_NOINLINE __noinline__
#endif

// Before a QR_HOST_DEVICE function template that calls what it is given (a visitor): nvcc checks no
// execution spaces in it, so it takes host lambdas on the host and device ones on the device without
// a warning (clang checks only the code each pass emits).
#if defined(__NVCC__)
#define QR_EXEC_CHECK_DISABLE _Pragma("nv_exec_check_disable")
#else
#define QR_EXEC_CHECK_DISABLE
#endif

// ---- per-pass capabilities -------------------------------------------------------------------
#define QR_HAS_NATIVE_FP8_E4M3_CVT 0
#define QR_HAS_NATIVE_FP8_FNUZ_CVT 0
#define QR_HAS_NATIVE_FP4_CVT 0
#define QR_HAS_NATIVE_FP4_DECODE 0

#if QR_DEVICE_PASS && QR_BACKEND_CUDA
#if __CUDA_ARCH__ >= 890
#undef QR_HAS_NATIVE_FP8_E4M3_CVT
#define QR_HAS_NATIVE_FP8_E4M3_CVT 1
#endif
// The e2m1x2 conversion exists only in the architecture-specific (sm_100a, sm_101a, ...) targets.
#if defined(__CUDA_ARCH_FEAT_SM100_ALL) || defined(__CUDA_ARCH_FEAT_SM101_ALL) || defined(__CUDA_ARCH_FEAT_SM103_ALL) || \
    defined(__CUDA_ARCH_FEAT_SM120_ALL)
#undef QR_HAS_NATIVE_FP4_CVT
#define QR_HAS_NATIVE_FP4_CVT 1
#endif
#endif

#if QR_DEVICE_PASS && QR_BACKEND_HIP
#if defined(__gfx950__)
#undef QR_HAS_NATIVE_FP8_E4M3_CVT
#define QR_HAS_NATIVE_FP8_E4M3_CVT 1
#undef QR_HAS_NATIVE_FP4_CVT
#define QR_HAS_NATIVE_FP4_CVT 1
#undef QR_HAS_NATIVE_FP4_DECODE
#define QR_HAS_NATIVE_FP4_DECODE 1
#endif
#if defined(__gfx940__) || defined(__gfx941__) || defined(__gfx942__)
#undef QR_HAS_NATIVE_FP8_FNUZ_CVT
#define QR_HAS_NATIVE_FP8_FNUZ_CVT 1
#endif
#endif

#define QR_WAVE_REDUCE_CUB 0
#define QR_WAVE_REDUCE_ROCPRIM 0
#if QR_BACKEND_CUDA  // both passes: nvcc registers CUB's device variables from the host pass
#undef QR_WAVE_REDUCE_CUB
#define QR_WAVE_REDUCE_CUB 1
#endif
#if QR_DEVICE_PASS && QR_BACKEND_HIP && (defined(__gfx940__) || defined(__gfx941__) || defined(__gfx942__))
#undef QR_WAVE_REDUCE_ROCPRIM
#define QR_WAVE_REDUCE_ROCPRIM 1
#endif

#if QR_DEVICE_PASS && QR_BACKEND_HIP
// clang 22 no longer predefines __AMDGCN_WAVEFRONT_SIZE; __AMDGCN_WAVEFRONT_SIZE__ or the build's -D
// fill it in, and CDNA (all gfx9) waves are 64 lanes.
#if defined(__AMDGCN_WAVEFRONT_SIZE__)
#define QR_WAVE_SIZE __AMDGCN_WAVEFRONT_SIZE__
#elif defined(__AMDGCN_WAVEFRONT_SIZE)
#define QR_WAVE_SIZE __AMDGCN_WAVEFRONT_SIZE
#else
#define QR_WAVE_SIZE 64
#endif
#else
#define QR_WAVE_SIZE 32
#endif

#if QR_BACKEND_CUDA
#include <cuda_runtime.h>
#elif QR_BACKEND_HIP
#include <hip/hip_runtime.h>
#endif

namespace qreduce {

inline constexpr int version_major = 0;
inline constexpr int version_minor = 1;
inline constexpr int version_patch = 0;
// Ranks of one communicator must agree on this exactly (wire format and workspace layout).
inline constexpr std::uint32_t abi_version = 3;  // 3: a slot per peer, failures carried by the creation all-gathers

}  // namespace qreduce
