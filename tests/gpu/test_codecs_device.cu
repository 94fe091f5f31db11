// GPU test: every device codec path (native conversions where the target has them) produces exactly
// the host reference's bytes, and decodes to exactly the host reference's values, for fp16 and bf16,
// on random and adversarial inputs, with and without rotation; and the kernels' conversion of their
// results to fp16/bf16 against the host's.
#include <cstring>
#include "common.hpp"

using namespace qreduce;

// The scales' reciprocals as the device computes them (scale.hpp: an approximate reciprocal and a
// Newton step on NVIDIA), for every bf16 scale from_absmax can make with qmax >= 4: 2^-126 up to
// FLT_MAX / 4 rounded down (0x7e7f; above it the reciprocal is subnormal, which the fast path flushes).
__global__ void scale_reciprocal_kernel(std::uint32_t* out) {
  const std::uint32_t s = 0x0080u + blockIdx.x * blockDim.x + threadIdx.x;
  if (s <= 0x7e7fu) out[s - 0x0080u] = numeric::float_bits(codec::scale_bf16::reciprocal(std::uint16_t(s)));
}

void check_scale_reciprocals() {
  constexpr std::uint32_t count = 0x7e7fu - 0x0080u + 1u;
  std::uint32_t* d;
  QR_CUDA(cudaMalloc(&d, count * 4));
  scale_reciprocal_kernel<<<(count + 255) / 256, 256>>>(d);
  QR_CUDA(cudaGetLastError());
  std::vector<std::uint32_t> got(count);
  QR_CUDA(cudaMemcpy(got.data(), d, count * 4, cudaMemcpyDeviceToHost));
  QR_CUDA(cudaFree(d));
  std::uint32_t differ = 0, first = 0;
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::uint16_t s = std::uint16_t(0x0080u + i);
    if (got[i] != numeric::float_bits(1.0f / codec::scale_bf16::to_float(s)) && differ++ == 0) first = s;
  }
  QR_EXPECT(differ == 0, "scale_bf16::reciprocal: %u of %u scales differ from 1 / scale on the device (first 0x%04x)", differ, count, first);
}

// from_float8 on the device (a native conversion of each pair on NVIDIA) against from_float on the
// host, for 8 values a thread.
template <class T>
__global__ void from_float8_kernel(const float* in, std::size_t n, std::uint32_t* out) {
  const std::size_t i = 8 * (std::size_t(blockIdx.x) * blockDim.x + threadIdx.x);
  if (i + 8 > n) return;
  float x[8];
  for (int j = 0; j < 8; ++j) x[j] = in[i + j];
  std::uint32_t w[4];
  numeric::from_float8<T>(x, w);
  for (int j = 0; j < 4; ++j) out[i / 2 + std::size_t(j)] = w[j];
}

// Every bf16 bucket (each 16-bit high half with low halves at and around its rounding tie, random
// ones too) and every f16 value with the midpoints to its neighbours and the floats beside them:
// NaNs, infinities, subnormals and overflow included, through both types.
void check_from_float8() {
  std::vector<float> v;
  std::mt19937 rng(5);
  for (std::uint32_t hi = 0; hi < 0x10000u; ++hi)
    for (std::uint32_t lo : {0x0000u, 0x0001u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu, std::uint32_t(rng() & 0xffffu), std::uint32_t(rng() & 0xffffu)})
      v.push_back(numeric::bits_float(hi << 16 | lo));
  for (std::uint32_t h = 0; h < 0xffffu; ++h) {
    const float a = numeric::to_float(f16{std::uint16_t(h)}), b = numeric::to_float(f16{std::uint16_t(h + 1)});
    if (!std::isfinite(a) || !std::isfinite(b) || (h & 0x7fffu) == 0x7fffu) continue;
    const float mid = a + (b - a) / 2;  // exact: f16 values have 11 significant bits
    for (float m : {a, mid, std::nextafter(mid, -INFINITY), std::nextafter(mid, INFINITY)}) v.push_back(m);
  }
  while (v.size() % 8 != 0) v.push_back(0.0f);
  float* din;
  std::uint32_t* dout;
  QR_CUDA(cudaMalloc(&din, v.size() * 4));
  QR_CUDA(cudaMalloc(&dout, v.size() * 2));
  QR_CUDA(cudaMemcpy(din, v.data(), v.size() * 4, cudaMemcpyHostToDevice));
  auto run = [&](auto ttag, const char* name) {
    using T = typename decltype(ttag)::type;
    from_float8_kernel<T><<<unsigned((v.size() / 8 + 255) / 256), 256>>>(din, v.size(), dout);
    QR_CUDA(cudaGetLastError());
    std::vector<std::uint32_t> got(v.size() / 2);
    QR_CUDA(cudaMemcpy(got.data(), dout, v.size() * 2, cudaMemcpyDeviceToHost));
    std::size_t differ = 0, first = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
      const std::uint16_t want = numeric::from_float<T>(v[i]).bits;
      const std::uint16_t have = std::uint16_t(got[i / 2] >> (16 * (i % 2)));
      if (want != have && differ++ == 0) first = i;
    }
    QR_EXPECT(differ == 0, "from_float8<%s>: %zu of %zu values differ from from_float on the host (first: float bits 0x%08x)", name, differ, v.size(),
              differ ? numeric::float_bits(v[first]) : 0u);
  };
  run(std::type_identity<bf16>{}, "bf16");
  run(std::type_identity<f16>{}, "f16");
  QR_CUDA(cudaFree(din));
  QR_CUDA(cudaFree(dout));
}

template <class C, class T>
__global__ void encode_kernel(const T* in, std::size_t n, std::byte* out, bool rotate) {
  const std::size_t tile = blockIdx.x;
  const int t = threadIdx.x;
  float x[8];
  device::load8(in, n, tile * codec::tile_values + 8 * t, x);
  if (rotate) device::rotate<C>(x);
  device::store_lane<C>(out + tile * codec::tile_bytes<C>, t, device::encode_lane<C, T>(x));
}

template <class C, class T>
__global__ void decode_kernel(const std::byte* in, std::size_t n, float* out, bool rotate) {
  const std::size_t tile = blockIdx.x;
  const int t = threadIdx.x;
  float y[8];
  const auto c = device::load_code<C, T>(in + tile * codec::tile_bytes<C>, t);
  if (rotate) device::decode_unrotate<C, T>(c, y);
  else device::decode_code<C, T>(c, y);
  for (int j = 0; j < 8; ++j) {
    const std::size_t i = tile * codec::tile_values + 8 * t + j;
    if (i < n) out[i] = y[j];
  }
}

// The decode straight to bf16 (device::decode_code_rounded, or decode_unrotate_rounded for a rotated
// tile: the two-shot's output paths where the codec has them) as 16-bit patterns, or from_float8 of
// the f32 values where it has not; *used says which ran.
template <class C, class T>
__global__ void decode_rounded_kernel(const std::byte* in, std::size_t n, T* out, int* used, bool rotate) {
  const std::size_t tile = blockIdx.x;
  const int t = threadIdx.x;
  const auto c = device::load_code<C, T>(in + tile * codec::tile_bytes<C>, t);
  uint4 v;
  float y[8];
  bool straight = false;
  if (rotate) {
    if constexpr (device::decodes_unrotated_rounded<C, T>) {
      v = device::decode_unrotate_rounded<C, T>(c);
      straight = true;
    } else {
      device::decode_unrotate<C, T>(c, y);
      v = device::pack8<T>(y);
    }
  } else {
    if constexpr (device::decodes_rounded<C, T>) {
      v = device::decode_code_rounded<C, T>(c);
      straight = true;
    } else {
      device::decode_code<C, T>(c, y);
      v = device::pack8<T>(y);
    }
  }
  if (straight && tile == 0 && t == 0) *used = 1;
  device::store8_bits(out, n, tile * codec::tile_values + 8 * t, v);
}

// The rotation of values loaded from a 16-bit tensor (device::rotate_loaded, the two-shot's) against
// device::rotate on the same values: counts the values whose bits differ (NaNs aside).
template <class C, class T>
__global__ void rotate_loaded_kernel(const T* in, std::size_t n, unsigned* mismatches) {
  float x[8], y[8];
  device::load8(in, n, blockIdx.x * std::size_t(codec::tile_values) + 8 * threadIdx.x, x);
  for (int j = 0; j < 8; ++j) y[j] = x[j];
  device::rotate<C>(x);
  device::rotate_loaded<C>(y);
  for (int j = 0; j < 8; ++j)
    if (numeric::float_bits(x[j]) != numeric::float_bits(y[j]) && !(x[j] != x[j] && y[j] != y[j])) atomicAdd(mismatches, 1u);
}

// Every fp16 and every bf16 pattern, each in every lane position (the patterns in 8 rotations of
// their order), through both rotations of codec C's span.
template <class C, class T>
void check_rotate_loaded() {
  std::vector<T> v;
  for (std::uint32_t shift = 0; shift < 8; ++shift)
    for (std::uint32_t b = 0; b < 65536; ++b) v.push_back(T{std::uint16_t((b * 8 + shift) & 0xffffu)});
  T* din;
  unsigned* dm;
  QR_CUDA(cudaMalloc(&din, v.size() * sizeof(T)));
  QR_CUDA(cudaMalloc(&dm, 4));
  QR_CUDA(cudaMemcpy(din, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  QR_CUDA(cudaMemset(dm, 0, 4));
  rotate_loaded_kernel<C, T><<<unsigned(v.size() / codec::tile_values), 256>>>(din, v.size(), dm);
  QR_CUDA(cudaGetLastError());
  unsigned m = 0;
  QR_CUDA(cudaMemcpy(&m, dm, 4, cudaMemcpyDeviceToHost));
  QR_EXPECT(m == 0, "%s/%s: rotate_loaded differs from rotate in %u of %zu values", C::name, dtype_name(dtype_of<T>), m, v.size());
  QR_CUDA(cudaFree(din));
  QR_CUDA(cudaFree(dm));
}

// int4m's rotated decode over every scale: its f32 values (decode_kernel: device::decode_unrotate)
// and, where the target has them, its bf16 results straight from the levels (decode_rounded_kernel:
// decode_unrotate_rounded), for every group exponent S in [4, 252] and the non-finite 0xff, every
// pair of multipliers, random codes.
// Against codec::decode_rotated_group, bit for bit (NaNs as NaNs), the top scales' overflow included.
void check_int4m_rotated_all_scales() {
  using C = codec::int4m;
  std::vector<std::uint32_t> exps;
  for (std::uint32_t e = std::uint32_t(C::min_exponent); e <= std::uint32_t(C::max_exponent); ++e) exps.push_back(e);
  exps.push_back(0xffu);
  const std::size_t groups = exps.size() * 256, tiles = groups / codec::tile_groups, n = tiles * codec::tile_values;
  std::vector<std::byte> enc(tiles * codec::tile_bytes<C>);
  std::mt19937 rng(29);
  for (auto& b : enc) b = std::byte(rng() & 0xffu);
  std::vector<float> want(n);
  for (std::size_t g = 0; g < groups; ++g) {
    const std::size_t tile = g / codec::tile_groups, k = g % codec::tile_groups;
    std::byte* tb = enc.data() + tile * codec::tile_bytes<C>;
    std::byte* payload = tb + k * C::payload_bytes;
    std::byte* scale = tb + codec::tile_groups * C::payload_bytes + k * C::scale_bytes;
    const std::uint16_t bits = std::uint16_t(exps[g / 256] | (g % 16) << 8 | (g / 16 % 16) << 12);
    std::memcpy(scale, &bits, 2);
    codec::decode_rotated_group<C, bf16>(payload, scale, want.data() + g * codec::group_size);
  }
  std::byte* denc;
  float* df;
  bf16* db;
  int* dused;
  QR_CUDA(cudaMalloc(&denc, enc.size()));
  QR_CUDA(cudaMalloc(&df, n * sizeof(float)));
  QR_CUDA(cudaMalloc(&db, n * sizeof(bf16)));
  QR_CUDA(cudaMalloc(&dused, sizeof(int)));
  QR_CUDA(cudaMemset(dused, 0, sizeof(int)));
  QR_CUDA(cudaMemcpy(denc, enc.data(), enc.size(), cudaMemcpyHostToDevice));
  decode_kernel<C, bf16><<<unsigned(tiles), 256>>>(denc, n, df, true);
  QR_CUDA(cudaGetLastError());
  decode_rounded_kernel<C, bf16><<<unsigned(tiles), 256>>>(denc, n, db, dused, true);
  QR_CUDA(cudaGetLastError());
  std::vector<float> got(n);
  std::vector<bf16> got_b(n);
  int used = 0;
  QR_CUDA(cudaMemcpy(got.data(), df, n * sizeof(float), cudaMemcpyDeviceToHost));
  QR_CUDA(cudaMemcpy(got_b.data(), db, n * sizeof(bf16), cudaMemcpyDeviceToHost));
  QR_CUDA(cudaMemcpy(&used, dused, sizeof(int), cudaMemcpyDeviceToHost));
  std::size_t bad = n, bad_b = n, infinite = 0;
  for (std::size_t i = 0; i < n; ++i) {
    infinite += std::isinf(want[i]) ? 1 : 0;
    const bool both_nan = std::isnan(got[i]) && std::isnan(want[i]);
    if (bad == n && !both_nan && std::memcmp(&got[i], &want[i], 4) != 0) bad = i;
    if (bad_b == n && got_b[i].bits != numeric::from_float<bf16>(want[i]).bits) bad_b = i;
  }
  QR_EXPECT(bad == n, "int4m rotated, every scale: f32 value %zu (S %u) is %g, host reference %g", bad, bad < n ? exps[bad / 32 / 256] : 0u,
            bad < n ? got[bad] : 0.0f, bad < n ? want[bad] : 0.0f);
  QR_EXPECT(bad_b == n, "int4m rotated, every scale: bf16 value %zu (S %u) is 0x%04x, host reference 0x%04x (%s)", bad_b,
            bad_b < n ? exps[bad_b / 32 / 256] : 0u, bad_b < n ? got_b[bad_b].bits : 0u, bad_b < n ? numeric::from_float<bf16>(want[bad_b]).bits : 0u,
            used ? "straight from the levels" : "through f32");
  QR_EXPECT(infinite > 0, "int4m rotated, every scale: no value beyond the float range (the overflow band untested)");
  QR_CUDA(cudaFree(denc));
  QR_CUDA(cudaFree(df));
  QR_CUDA(cudaFree(db));
  QR_CUDA(cudaFree(dused));
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
  QR_EXPECT(first == bytes, "%s/%s %s%s: encoded bytes differ from the host reference at byte %zu", C::name, dtype_name(dtype_of<T>), what,
            rotate ? " rotated" : "", first);
  std::size_t bad = n;
  for (std::size_t i = 0; i < n; ++i)
    if (std::memcmp(&got_dec[i], &want_dec[i], 4) != 0 && !(std::isnan(got_dec[i]) && std::isnan(want_dec[i]))) {
      bad = i;
      break;
    }
  QR_EXPECT(bad == n, "%s/%s %s%s: decoded value %zu is %g, host reference %g", C::name, dtype_name(dtype_of<T>), what, rotate ? " rotated" : "", bad,
            bad < n ? got_dec[bad] : 0.0f, bad < n ? want_dec[bad] : 0.0f);
  {  // the decode straight to T's bits: the host reference's values rounded by from_float
    T* dout;
    int* dused;
    QR_CUDA(cudaMalloc(&dout, n * sizeof(T)));
    QR_CUDA(cudaMalloc(&dused, sizeof(int)));
    QR_CUDA(cudaMemset(dused, 0, sizeof(int)));
    decode_rounded_kernel<C, T><<<unsigned(tiles), 256>>>(denc, n, dout, dused, rotate);
    QR_CUDA(cudaGetLastError());
    std::vector<T> got_t(n);
    int used = 0;
    QR_CUDA(cudaMemcpy(got_t.data(), dout, n * sizeof(T), cudaMemcpyDeviceToHost));
    QR_CUDA(cudaMemcpy(&used, dused, sizeof(int), cudaMemcpyDeviceToHost));
    std::size_t bad_t = n;
    for (std::size_t i = 0; i < n && bad_t == n; ++i)
      if (got_t[i].bits != numeric::from_float<T>(want_dec[i]).bits) bad_t = i;
    QR_EXPECT(bad_t == n, "%s/%s %s%s: value %zu decoded to %s is 0x%04x, host reference 0x%04x (%s)", C::name, dtype_name(dtype_of<T>), what,
              rotate ? " rotated" : "", bad_t, dtype_name(dtype_of<T>), bad_t < n ? got_t[bad_t].bits : 0u,
              bad_t < n ? numeric::from_float<T>(want_dec[bad_t]).bits : 0u, used ? "straight from the codes" : "through f32");
    // for bf16 on these targets (sm_90 and later), the E2M1 and INT4 codecs must take the straight
    // path unrotated, INT4M rotated
    const bool straight =
        rotate ? std::is_same_v<C, codec::int4m> : std::is_same_v<C, codec::fp4> || std::is_same_v<C, codec::mxfp4> || std::is_same_v<C, codec::int4>;
    if (straight && std::is_same_v<T, bf16>)
      QR_EXPECT(used == 1, "%s/bf16%s: the decode straight to bf16 was not compiled", C::name, rotate ? " rotated" : "");
    QR_CUDA(cudaFree(dout));
    QR_CUDA(cudaFree(dused));
  }
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

// The RMSNorm epilogue's quantized outputs: the device store (every thread of a 256-thread block
// calling Out::store, rows of `hidden` values, as the epilogue does) writes the host reference's bytes.
template <class Out>
__global__ void output_kernel(const float* y, std::size_t hidden, Out out, const float* row_absmax) {
  const std::size_t row = blockIdx.x;
  for (std::size_t k0 = 0; k0 < hidden; k0 += 8 * block_threads) {
    const std::size_t k = k0 + 8 * threadIdx.x;
    const bool active = k < hidden;
    float v[8] = {};
    if (active)
      for (int j = 0; j < 8; ++j) v[j] = y[row * hidden + k + j];
    out.store(row, hidden, k, v, active, row_absmax[row]);
  }
}

template <class Out>
void check_output(std::size_t rows, std::size_t hidden, std::size_t q_bytes, std::size_t s_bytes) {
  // rows of Gaussian values with a few outliers; row 2 holds a NaN, row 3 an infinity, row 4 is zero
  std::vector<float> y(rows * hidden), am(rows, 0.0f);
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.0f, 1.5f);
  for (auto& v : y) v = d(rng);
  for (std::size_t i = 0; i < y.size(); i += 997) y[i] *= 40.0f;
  y[2 * hidden + 17] = NAN;
  y[3 * hidden + hidden - 3] = -INFINITY;
  for (std::size_t k = 0; k < hidden; ++k) y[4 * hidden + k] = 0.0f;
  for (std::size_t r = 0; r < rows; ++r) am[r] = numeric::bits_float(epilogue::detail::absmax_bits(y.data() + r * hidden, int(hidden)));
  const float global = 448.0f * 6.0f / 60.0f;
  std::vector<std::uint8_t> want_q(q_bytes), want_s(s_bytes), got_q(q_bytes), got_s(s_bytes);
  Out host{};
  host.q = want_q.data();
  if constexpr (std::is_same_v<Out, epilogue::out_fp8_per_token>) host.scale = reinterpret_cast<float*>(want_s.data());
  else host.scale = want_s.data();
  if constexpr (std::is_same_v<Out, epilogue::out_nvfp4>) host.global_scale = &global;
  for (std::size_t r = 0; r < rows; ++r) host.reference(y.data() + r * hidden, hidden, r);

  float *dy, *dam, *dg;
  std::uint8_t *dq, *ds;
  QR_CUDA(cudaMalloc(&dy, y.size() * 4));
  QR_CUDA(cudaMalloc(&dam, rows * 4));
  QR_CUDA(cudaMalloc(&dg, 4));
  QR_CUDA(cudaMalloc(&dq, q_bytes));
  QR_CUDA(cudaMalloc(&ds, s_bytes));
  QR_CUDA(cudaMemcpy(dy, y.data(), y.size() * 4, cudaMemcpyHostToDevice));
  QR_CUDA(cudaMemcpy(dam, am.data(), rows * 4, cudaMemcpyHostToDevice));
  QR_CUDA(cudaMemcpy(dg, &global, 4, cudaMemcpyHostToDevice));
  QR_CUDA(cudaMemset(dq, 0xcd, q_bytes));
  QR_CUDA(cudaMemset(ds, 0xcd, s_bytes));
  Out dev{};
  dev.q = dq;
  if constexpr (std::is_same_v<Out, epilogue::out_fp8_per_token>) dev.scale = reinterpret_cast<float*>(ds);
  else dev.scale = ds;
  if constexpr (std::is_same_v<Out, epilogue::out_nvfp4>) dev.global_scale = dg;
  output_kernel<Out><<<unsigned(rows), block_threads>>>(dy, hidden, dev, dam);
  QR_CUDA(cudaGetLastError());
  QR_CUDA(cudaMemcpy(got_q.data(), dq, q_bytes, cudaMemcpyDeviceToHost));
  QR_CUDA(cudaMemcpy(got_s.data(), ds, s_bytes, cudaMemcpyDeviceToHost));
  std::size_t bad_q = 0, bad_s = 0, first = q_bytes;
  for (std::size_t i = 0; i < q_bytes; ++i)
    if (got_q[i] != want_q[i] && ++bad_q == 1) first = i;
  for (std::size_t i = 0; i < s_bytes; ++i)
    if (got_s[i] != want_s[i]) ++bad_s;
  QR_EXPECT(bad_q == 0 && bad_s == 0, "output %s hidden %zu: %zu code bytes (first at %zu: %02x vs %02x) and %zu scale bytes differ", Out::name,
            hidden, bad_q, first, first < q_bytes ? got_q[first] : 0, first < q_bytes ? want_q[first] : 0, bad_s);
  for (void* p : {static_cast<void*>(dy), static_cast<void*>(dam), static_cast<void*>(dg), static_cast<void*>(dq), static_cast<void*>(ds)})
    QR_CUDA(cudaFree(p));
}

void check_outputs() {
  for (std::size_t hidden : {std::size_t(2880), std::size_t(4096), std::size_t(5120), std::size_t(16384)}) {
    const std::size_t rows = 6;
    check_output<epilogue::out_fp8_per_token>(rows, hidden, rows * hidden, rows * 4);
    check_output<epilogue::out_mxfp4>(rows, hidden, rows * hidden / 2, rows * hidden / 32);
    check_output<epilogue::out_nvfp4>(rows, hidden, rows * hidden / 2, rows * hidden / 16);
  }
}

template <class... Cs>
void check_codecs(codec_set<Cs...>) {  // every codec of the list, in its order
  (check_codec_all<Cs>(), ...);
}

int main() {
  qrtest::require_gpu("test_codecs_device");
  std::printf("device: %s\n", rt::device_name(rt::get_device()).c_str());
  check_native<numeric::e2m1>("e2m1");
  check_native<numeric::e4m3fn>("e4m3fn");
  check_native<numeric::e4m3fnuz>("e4m3fnuz");
  check_scale_reciprocals();
  check_from_float8();
  check_rotate_loaded<codec::int4m, f16>();  // the rotation of 16 values (2 lanes)
  check_rotate_loaded<codec::int4m, bf16>();
  check_rotate_loaded<codec::int8, f16>();  // of 32 (4 lanes)
  check_rotate_loaded<codec::int8, bf16>();
  check_int4m_rotated_all_scales();
  check_codecs(all_codecs_set{});
  check_outputs();
  return qrtest::finish("test_codecs_device");
}
