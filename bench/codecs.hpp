// bench/codecs.hpp: qreduce_bench codecs: encode and decode throughput of every codec on one GPU.
#pragma once
#include <fstream>
#include "common.hpp"

namespace bench {

// ---- codec throughput --------------------------------------------------------------------------
// Each thread takes its 8 values of 4 consecutive tiles per step, all loads first: several
// independent loads in flight per thread, as in the two-shot kernel (W segments per step). The tiles
// past the last whole group of 4 go one at a time. A codec that always rotates is timed with its
// rotation (codec::always_rotated): that is what it costs in the all-reduce.
constexpr int tput_tiles = 4;

template <class C, class T>
__global__ void __launch_bounds__(block_threads) tput_encode(const T* in, std::size_t n, std::byte* out) {
  const std::size_t tiles = (n + codec::tile_values - 1) / codec::tile_values, whole = tiles / tput_tiles * tput_tiles;
  const auto tile_at = [&](std::size_t tile, float(&x)[8]) {
    if constexpr (codec::always_rotated<C>) device::rotate<C>(x);
    device::store_lane<C>(out + tile * codec::tile_bytes<C>, int(threadIdx.x), device::encode_lane<C, T>(x));
  };
  for (std::size_t tile = blockIdx.x * std::size_t(tput_tiles); tile < whole; tile += gridDim.x * std::size_t(tput_tiles)) {
    float x[tput_tiles][8];
    QR_UNROLL
    for (int u = 0; u < tput_tiles; ++u) device::load8(in, n, (tile + u) * codec::tile_values + 8 * threadIdx.x, x[u]);
    QR_UNROLL
    for (int u = 0; u < tput_tiles; ++u) tile_at(tile + u, x[u]);
  }
  for (std::size_t tile = whole + blockIdx.x; tile < tiles; tile += gridDim.x) {
    float x[8];
    device::load8(in, n, tile * codec::tile_values + 8 * threadIdx.x, x);
    tile_at(tile, x);
  }
}
template <class C, class T>
__global__ void __launch_bounds__(block_threads) tput_decode(const std::byte* in, std::size_t n, T* out) {
  const std::size_t tiles = (n + codec::tile_values - 1) / codec::tile_values, whole = tiles / tput_tiles * tput_tiles;
  const auto load_at = [&](std::size_t tile) { return device::load_code<C, T>(in + tile * codec::tile_bytes<C>, int(threadIdx.x)); };
  const auto tile_at = [&](std::size_t tile, const device::lane_code<C>& c) {
    float y[8];
    if constexpr (codec::always_rotated<C>) device::decode_unrotate<C, T>(c, y);
    else device::decode_code<C, T>(c, y);
    device::store8(out, n, tile * codec::tile_values + 8 * threadIdx.x, y);
  };
  for (std::size_t tile = blockIdx.x * std::size_t(tput_tiles); tile < whole; tile += gridDim.x * std::size_t(tput_tiles)) {
    device::lane_code<C> c[tput_tiles];
    QR_UNROLL
    for (int u = 0; u < tput_tiles; ++u) c[u] = load_at(tile + u);
    QR_UNROLL
    for (int u = 0; u < tput_tiles; ++u) tile_at(tile + u, c[u]);
  }
  for (std::size_t tile = whole + blockIdx.x; tile < tiles; tile += gridDim.x) tile_at(tile, load_at(tile));
}

int codec_throughput(std::size_t bytes, const std::string& out_dir) {
  if (rt::device_count() == 0) {
    std::printf("qreduce_bench codecs: no GPU visible\n");
    return 0;
  }
  rt::set_device(0);
  const std::size_t n = bytes / 2;
  void* in = rt::malloc_device(bytes);
  void* dec = rt::malloc_device(bytes);
  void* enc = rt::malloc_device(bytes + (1 << 20));
  fill_kernel<f16><<<1024, 256>>>(static_cast<f16*>(in), n, 0, 1);
  rt::check_launch("fill");
  auto time_ms = [&](auto&& body) { return median_ms(nullptr, 20, body); };
  const double copy_ms = time_ms([&] { CK(cudaMemcpyAsync(dec, in, bytes, cudaMemcpyDeviceToDevice)); });
  const double copy_gbs = 2.0 * double(bytes) / (copy_ms * 1e6);
  const int sms = rt::multiprocessor_count(0);
  std::printf("qreduce_bench codecs: %s, %.2f GiB of fp16/bf16, device copy %.0f GB/s (read + write)\n", rt::device_name(0).c_str(),
              double(bytes) / (1 << 30), copy_gbs);
  std::printf("%-9s %-5s %14s %9s %14s %9s\n", "codec", "dtype", "encode GB/s", "of copy", "decode GB/s", "of copy");
  std::system(("mkdir -p '" + out_dir + "'").c_str());
  std::ofstream csv(out_dir + "/codec_throughput.csv");
  csv << "device,date,codec,dtype,bytes,copy_GBps,encode_GBps,decode_GBps\n";
  for (codec_kind k : all_codecs)
    for (dtype t : {dtype::f16, dtype::bf16})
      visit_codec(k, [&](auto tag) {
        using C = typename decltype(tag)::type;
        const std::size_t eb = codec::encoded_bytes<C>(n);
        auto run = [&](auto ttag) {
          using T = typename decltype(ttag)::type;
          fill_kernel<T><<<1024, 256>>>(static_cast<T*>(in), n, 0, 1);  // Gaussian values of this type
          const double e_ms = time_ms([&] { tput_encode<C, T><<<sms * 16, block_threads>>>(static_cast<T*>(in), n, static_cast<std::byte*>(enc)); });
          const double d_ms = time_ms([&] { tput_decode<C, T><<<sms * 16, block_threads>>>(static_cast<std::byte*>(enc), n, static_cast<T*>(dec)); });
          rt::check_launch("codec kernels");
          const double e = double(bytes + eb) / (e_ms * 1e6), d = double(bytes + eb) / (d_ms * 1e6);
          const std::string label = std::string(C::name) + (codec::always_rotated<C> ? "+rot" : "");
          std::printf("%-9s %-5s %14.0f %8.0f%% %14.0f %8.0f%%\n", label.c_str(), dtype_name(t), e, 100 * e / copy_gbs, d, 100 * d / copy_gbs);
          csv << rt::device_name(0) << "," << today() << "," << C::name << "," << dtype_name(t) << "," << bytes << "," << copy_gbs << "," << e << ","
              << d << "\n";
        };
        if (t == dtype::f16) run(std::type_identity<f16>{});
        else run(std::type_identity<bf16>{});
      });
  std::printf("wrote %s/codec_throughput.csv\n", out_dir.c_str());
  rt::free_device(in);
  rt::free_device(dec);
  rt::free_device(enc);
  return 0;
}

}  // namespace bench
