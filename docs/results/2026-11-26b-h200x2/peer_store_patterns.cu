// Peer-store bandwidth by store pattern (docs/results/2026-11-26b-h200x2/peer-store-patterns.log):
// build with nvcc -std=c++17 -O3 -arch=sm_90 peer_store_patterns.cu, run on a host with 2 GPUs.
// Peer-store bandwidth by store pattern: both GPUs store into each other at once (as the two-shot does).
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e)); exit(1); } } while (0)
// tile layouts: payload bytes per lane PB (16, 8, 4), scale 2 B per group of 4 lanes after the 64 payloads
template <int PB, bool Scales>
__global__ void __launch_bounds__(256) lanes(unsigned char* dst, size_t tiles, unsigned v) {
  constexpr int TB = 256 * PB + (Scales ? 128 : 0);
  const int t = threadIdx.x;
  for (size_t k = blockIdx.x; k < tiles; k += gridDim.x) {
    unsigned char* tile = dst + k * TB;
    if constexpr (PB == 16) reinterpret_cast<uint4*>(tile)[t] = make_uint4(v, v + t, v ^ t, k);
    if constexpr (PB == 8) reinterpret_cast<uint2*>(tile)[t] = make_uint2(v + t, unsigned(k));
    if constexpr (PB == 4) reinterpret_cast<unsigned*>(tile)[t] = v + t + unsigned(k);
    if constexpr (Scales) if (t % 4 == 0) reinterpret_cast<unsigned short*>(tile + 256 * PB)[t / 4] = (unsigned short)(v + k);
  }
}
// the same tile bytes written as 16-byte stores from shared memory (staged)
template <int PB, bool Scales>
__global__ void __launch_bounds__(256) staged(unsigned char* dst, size_t tiles, unsigned v) {
  constexpr int TB = 256 * PB + (Scales ? 128 : 0);
  __shared__ uint4 s[2][(TB + 15) / 16];
  const int t = threadIdx.x;
  int p = 0;
  for (size_t k = blockIdx.x; k < tiles; k += gridDim.x, p ^= 1) {
    unsigned char* st = reinterpret_cast<unsigned char*>(s[p]);
    if constexpr (PB == 16) reinterpret_cast<uint4*>(st)[t] = make_uint4(v, v + t, v ^ t, k);
    if constexpr (PB == 8) reinterpret_cast<uint2*>(st)[t] = make_uint2(v + t, unsigned(k));
    if constexpr (PB == 4) reinterpret_cast<unsigned*>(st)[t] = v + t + unsigned(k);
    if constexpr (Scales) if (t % 4 == 0) reinterpret_cast<unsigned short*>(st + 256 * PB)[t / 4] = (unsigned short)(v + k);
    __syncthreads();
    uint4* out = reinterpret_cast<uint4*>(dst + k * TB);
    for (int i = t; i < TB / 16; i += 256) out[i] = s[p][i];
  }
}
template <class F>
void run(const char* name, F launch, size_t bytes) {
  cudaEvent_t a[2], b[2];
  for (int d = 0; d < 2; ++d) { CK(cudaSetDevice(d)); CK(cudaEventCreate(&a[d])); CK(cudaEventCreate(&b[d])); }
  float best[2] = {1e30f, 1e30f};
  for (int it = 0; it < 8; ++it) {
    for (int d = 0; d < 2; ++d) { CK(cudaSetDevice(d)); CK(cudaDeviceSynchronize()); }
    for (int d = 0; d < 2; ++d) { CK(cudaSetDevice(d)); CK(cudaEventRecord(a[d])); launch(d); CK(cudaGetLastError()); CK(cudaEventRecord(b[d])); }
    for (int d = 0; d < 2; ++d) { CK(cudaSetDevice(d)); CK(cudaEventSynchronize(b[d])); float ms; CK(cudaEventElapsedTime(&ms, a[d], b[d])); if (it >= 2 && ms < best[d]) best[d] = ms; }
  }
  printf("%-22s %8.1f %8.1f GB/s per direction\n", name, bytes / (best[0] * 1e6), bytes / (best[1] * 1e6));
}
int main() {
  int n; CK(cudaGetDeviceCount(&n)); if (n < 2) { printf("needs 2 GPUs\n"); return 2; }
  const size_t cap = size_t(512) << 20;
  unsigned char* buf[2];
  for (int d = 0; d < 2; ++d) { CK(cudaSetDevice(d)); CK(cudaDeviceEnablePeerAccess(1 - d, 0)); CK(cudaMalloc(&buf[d], cap)); }
  int sms; CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  for (int bps : {1, 3}) {
    const int grid = sms * bps;
    printf("grid %d blocks\n", grid);
#define CASE(K, PB, SC) { constexpr int TB = 256 * PB + (SC ? 128 : 0); const size_t tiles = cap / TB; \
      run(#K "<" #PB "," #SC ">", [&](int d) { K<PB, SC><<<grid, 256>>>(buf[1 - d], tiles, 7u + d); }, tiles * TB); }
    CASE(lanes, 16, false) CASE(lanes, 8, false) CASE(lanes, 4, false)
    CASE(lanes, 8, true) CASE(lanes, 4, true)
    CASE(staged, 16, false) CASE(staged, 8, true) CASE(staged, 4, true)
  }
  return 0;
}
