// Machine-code check source: compiled for sm_90, sm_100a (PTX checked) and gfx942, gfx950 (assembly
// checked) by tests/isa/check.sh, which fails when a fast path is missing from its target.
// It instantiates, for every codec, the device encode/decode of a tile (the code the all-reduce
// runs; rotated back too for the codecs always rotated), two-shot kernels that store their tiles
// directly and one that stages them, and the fused RMSNorm's kernels of rows. It includes the
// algorithms, not the communicator (which would instantiate every kernel it can launch).
#include "qreduce/algorithm/one_shot.hpp"
#include "qreduce/algorithm/two_shot.hpp"
#include "qreduce/codec/all.hpp"
#include "qreduce/epilogue/identity.hpp"
#include "qreduce/epilogue/rmsnorm.hpp"

using namespace qreduce;

template <class C, class T>
__global__ void isa_encode(const T* in, std::size_t n, std::byte* out) {
  float x[8];
  device::load8(in, n, blockIdx.x * std::size_t(codec::tile_values) + 8 * threadIdx.x, x);
  device::store_lane<C>(out + blockIdx.x * codec::tile_bytes<C>, threadIdx.x, device::encode_lane<C, T>(x));
}

template <class C, class T>
__global__ void isa_decode(const std::byte* in, T* out, std::size_t n) {
  float y[8];
  device::decode_lane<C, T>(in + blockIdx.x * codec::tile_bytes<C>, threadIdx.x, y);
  device::store8(out, n, blockIdx.x * std::size_t(codec::tile_values) + 8 * threadIdx.x, y);
}

// The decode of a rotated tile, rotated back, as f32 values (int4m: its levels rotated back in
// 16-bit pairs).
template <class C, class T>
__global__ void isa_decode_rotated(const std::byte* in, T* out, std::size_t n) {
  float y[8];
  device::decode_unrotate<C, T>(device::load_code<C, T>(in + blockIdx.x * codec::tile_bytes<C>, threadIdx.x), y);
  device::store8(out, n, blockIdx.x * std::size_t(codec::tile_values) + 8 * threadIdx.x, y);
}

template <class C>
void instantiate() {
  (void)&isa_encode<C, f16>;
  (void)&isa_encode<C, bf16>;
  (void)&isa_decode<C, f16>;
  (void)&isa_decode<C, bf16>;
  if constexpr (codec::always_rotated<C>) (void)&isa_decode_rotated<C, f16>;
}

void instantiate_all() {
  for (codec_kind k : all_codecs) visit_codec(k, [](auto tag) { instantiate<typename decltype(tag)::type>(); });
  (void)&algorithm::two_shot_kernel<transport::default_transport, codec::fp4, bf16, 8, epilogue::identity>;
  (void)&algorithm::two_shot_kernel<transport::default_transport, codec::fp8, bf16, 4, epilogue::identity>;  // 4 ranks' occupancy
  (void)&algorithm::two_shot_kernel<transport::default_transport, codec::int6, bf16, 2, epilogue::identity>;  // stages its tiles
  (void)&algorithm::two_shot_kernel<transport::default_transport, codec::int4, bf16, 2, epilogue::identity>;  // decodes straight to bf16
  (void)&algorithm::two_shot_kernel<transport::default_transport, codec::mxfp4, bf16, 2, epilogue::identity>;  // 1-byte scales, staged
  (void)&algorithm::two_shot_kernel<transport::default_transport, codec::int4m, bf16, 2, epilogue::identity>;  // levels rotated back
  (void)&algorithm::one_shot_kernel<transport::default_transport, bf16, 8, epilogue::identity>;
  // the fused RMSNorm's kernels of rows after a two-shot, one for each output type, as comm.hpp launches them
  epilogue::residual_rmsnorm<bf16>::visit_output_types([](auto tag) {
    (void)&algorithm::rows_kernel<typename decltype(tag)::type>;
    (void)&algorithm::rows_kernel<typename decltype(tag)::type, algorithm::rows_kernel_batch>;
  });
  // the fused RMSNorm's one-shot (rows that fit a block), 2 ranks, one for each output type
  epilogue::residual_rmsnorm<bf16>::visit_output_types(
      [](auto tag) { (void)&algorithm::one_shot_rmsnorm_kernel<transport::default_transport, bf16, 2, typename decltype(tag)::type::output>; });
}
