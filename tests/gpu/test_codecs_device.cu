// GPU test: every device codec path (native conversions where the target has them) produces exactly
// the host reference's bytes, and decodes to exactly the host reference's values, for fp16 and bf16,
// on random and adversarial inputs, with and without rotation.
#include <cstring>
#include "common.hpp"

using namespace qreduce;

template <class C, class T>
__global__ void encode_kernel(const T* in, std::size_t n, std::byte* out, bool rotate) {
  const std::size_t tile = blockIdx.x;
  const int t = threadIdx.x;
  float x[8];
  device::load8(in, n, tile * codec::tile_values + 8 * t, x);
  if (rotate) device::hadamard32(x, t % 4, codec::rotation_forward_scale);
  device::store_lane<C>(out + tile * codec::tile_bytes<C>, t, device::encode_lane<C, T>(x));
}

template <class C, class T>
__global__ void decode_kernel(const std::byte* in, std::size_t n, float* out, bool rotate) {
  const std::size_t tile = blockIdx.x;
  const int t = threadIdx.x;
  float y[8];
  device::decode_lane<C, T>(in + tile * codec::tile_bytes<C>, t, y);
  if (rotate) device::hadamard32(y, t % 4, 1.0f);
  for (int j = 0; j < 8; ++j) {
    const std::size_t i = tile * codec::tile_values + 8 * t + j;
    if (i < n) out[i] = y[j];
  }
}

// Direct check of the element formats' native conversion against the software rounding.
template <class F>
__global__ void native_vs_soft_kernel(const float* s, std::size_t n, unsigned* mismatches) {
  const std::size_t i = 2 * (std::size_t(blockIdx.x) * blockDim.x + threadIdx.x);
  if (i + 1 >= n) return;
  const std::uint32_t want = F::encode_soft(s[i]) | (F::encode_soft(s[i + 1]) << F::code_bits);
  if (F::encode2(s[i], s[i + 1]) != want) atomicAdd(mismatches, 1u);
}

template <class F>
void check_native(const char* name) {
  // every value the scaled input can take near the format's grid: random within +-max, all midpoints
  std::vector<float> s;
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-F::max, F::max);
  for (int i = 0; i < (1 << 22); ++i) s.push_back(u(rng));
  for (std::uint32_t c = 0; c < 2 * F::sign_bit; ++c) {
    const float v = F::decode_soft(c);
    if (!std::isfinite(v) || std::fabs(v) > F::max) continue;
    for (float d : {0.0f, 1e-7f, -1e-7f}) s.push_back(v * (1 + d));
    s.push_back(v * 0.5f + F::decode_soft(c + 1 < 2 * F::sign_bit ? c + 1 : c) * 0.5f);
  }
  if (s.size() % 2) s.push_back(0.0f);
  float* ds;
  unsigned* dm;
  QR_CUDA(cudaMalloc(&ds, s.size() * 4));
  QR_CUDA(cudaMalloc(&dm, 4));
  QR_CUDA(cudaMemcpy(ds, s.data(), s.size() * 4, cudaMemcpyHostToDevice));
  QR_CUDA(cudaMemset(dm, 0, 4));
  native_vs_soft_kernel<F><<<unsigned((s.size() / 2 + 255) / 256), 256>>>(ds, s.size(), dm);
  QR_CUDA(cudaGetLastError());
  unsigned m = 0;
  QR_CUDA(cudaMemcpy(&m, dm, 4, cudaMemcpyDeviceToHost));
  QR_EXPECT(m == 0, "%s: %u of %zu pairs differ between the native conversion and the software path", name, m, s.size() / 2);
  QR_CUDA(cudaFree(ds));
  QR_CUDA(cudaFree(dm));
}

template <class C, class T>
void check_codec(const std::vector<T>& in, bool rotate, const char* what) {
  const std::size_t n = in.size();
  const std::size_t tiles = (n + codec::tile_values - 1) / codec::tile_values;
  const std::size_t bytes = tiles * codec::tile_bytes<C>;
  // host reference
  std::vector<std::byte> want(bytes);
  std::vector<float> want_dec(n);
  for (std::size_t g0 = 0; g0 < tiles * codec::tile_values; g0 += codec::group_size) {
    const std::size_t tile = g0 / codec::tile_values, g = (g0 % codec::tile_values) / codec::group_size;
    std::byte* tb = want.data() + tile * codec::tile_bytes<C>;
    float v[32], y[32];
    for (int i = 0; i < 32; ++i) v[i] = g0 + i < n ? numeric::to_float(in[g0 + i]) : 0.0f;
    std::byte* p = tb + g * C::payload_bytes;
    std::byte* s = tb + codec::tile_groups * C::payload_bytes + g * C::scale_bytes;
    if (rotate) {
      codec::encode_rotated_group<C, T>(v, p, s);
      codec::decode_rotated_group<C, T>(p, s, y);
    } else {
      codec::encode_group<C, T>(v, p, s);
      codec::decode_group<C, T>(p, s, y);
    }
    for (int i = 0; i < 32; ++i)
      if (g0 + i < n) want_dec[g0 + i] = y[i];
  }
  T* din;
  std::byte* denc;
  float* ddec;
  QR_CUDA(cudaMalloc(&din, n * sizeof(T)));
  QR_CUDA(cudaMalloc(&denc, bytes));
  QR_CUDA(cudaMalloc(&ddec, n * 4));
  QR_CUDA(cudaMemcpy(din, in.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  QR_CUDA(cudaMemset(denc, 0xa5, bytes));
  encode_kernel<C, T><<<unsigned(tiles), 256>>>(din, n, denc, rotate);
  QR_CUDA(cudaGetLastError());
  decode_kernel<C, T><<<unsigned(tiles), 256>>>(denc, n, ddec, rotate);
  QR_CUDA(cudaGetLastError());
  std::vector<std::byte> got(bytes);
  std::vector<float> got_dec(n);
  QR_CUDA(cudaMemcpy(got.data(), denc, bytes, cudaMemcpyDeviceToHost));
  QR_CUDA(cudaMemcpy(got_dec.data(), ddec, n * 4, cudaMemcpyDeviceToHost));
  std::size_t first = bytes;
  for (std::size_t i = 0; i < bytes; ++i)
    if (got[i] != want[i]) {
      first = i;
      break;
    }
  QR_EXPECT(first == bytes, "%s/%s %s%s: encoded bytes differ from the host reference at byte %zu", C::name,
            dtype_name(dtype_of<T>), what, rotate ? " rotated" : "", first);
  std::size_t bad = n;
  for (std::size_t i = 0; i < n; ++i)
    if (std::memcmp(&got_dec[i], &want_dec[i], 4) != 0 && !(std::isnan(got_dec[i]) && std::isnan(want_dec[i]))) {
      bad = i;
      break;
    }
  QR_EXPECT(bad == n, "%s/%s %s%s: decoded value %zu is %g, host reference %g", C::name, dtype_name(dtype_of<T>), what,
            rotate ? " rotated" : "", bad, bad < n ? got_dec[bad] : 0.0f, bad < n ? want_dec[bad] : 0.0f);
  QR_CUDA(cudaFree(din));
  QR_CUDA(cudaFree(denc));
  QR_CUDA(cudaFree(ddec));
}

template <class T>
std::vector<T> adversarial() {
  std::vector<T> v;
  auto group = [&](auto f) {
    for (int i = 0; i < 32; ++i) v.push_back(numeric::from_float<T>(f(i)));
  };
  group([](int) { return 0.0f; });
  group([](int) { return -3.25f; });
  group([](int i) { return i == 13 ? 60000.0f : 0.01f * float(i % 7 - 3); });
  group([](int i) { return (i % 2 ? -1.0f : 1.0f) * (0.5f + float(i) / 64.0f); });
  group([](int i) { return i == 5 ? NAN : float(i); });
  group([](int i) { return i == 9 ? -INFINITY : float(i); });
  for (int i = 0; i < 32; ++i) v.push_back(T{std::uint16_t(i * 31 + (i % 2 ? 0x8000 : 0))});  // subnormals
  if constexpr (std::is_same_v<T, bf16>) {
    for (int i = 0; i < 32; ++i) v.push_back(T{std::uint16_t(i % 2 ? 0x7f7f : 0x8001)});
    for (int i = 0; i < 32; ++i) v.push_back(T{std::uint16_t(0x0001 + i)});
  }
  return v;
}

template <class C>
void check_codec_all() {
  for (bool rot : {false, true}) {
    check_codec<C, f16>(qrtest::make_input<f16>(3 * 2048 + 77, 0, 1), rot, "random");
    check_codec<C, bf16>(qrtest::make_input<bf16>(3 * 2048 + 77, 0, 2, 1e5f), rot, "random");
    check_codec<C, f16>(adversarial<f16>(), rot, "adversarial");
    check_codec<C, bf16>(adversarial<bf16>(), rot, "adversarial");
  }
  // every fp16 pattern, grouped by 32 consecutive patterns
  std::vector<f16> all(65536);
  for (std::uint32_t b = 0; b < 65536; ++b) all[b] = f16{std::uint16_t(b)};
  check_codec<C, f16>(all, false, "all fp16 patterns");
}

int main() {
  qrtest::require_gpu("test_codecs_device");
  std::printf("device: %s\n", rt::device_name(rt::get_device()).c_str());
  check_native<numeric::e2m1>("e2m1");
  check_native<numeric::e4m3fn>("e4m3fn");
  check_native<numeric::e4m3fnuz>("e4m3fnuz");
  check_codec_all<codec::passthrough>();
  check_codec_all<codec::fp8>();
  check_codec_all<codec::fp8_fnuz>();
  check_codec_all<codec::int8>();
  check_codec_all<codec::int6>();
  check_codec_all<codec::int4>();
  check_codec_all<codec::fp4>();
  check_codec_all<codec::mxfp4>();
  return qrtest::finish("test_codecs_device");
}
