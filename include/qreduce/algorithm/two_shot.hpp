// qreduce/algorithm/two_shot.hpp: the quantized two-shot all-reduce (reduce-scatter + all-gather),
// pipelined.
//
// The message is cut into chunks of W segments of K codec tiles; block b of the grid takes chunks
// b, b + grid, b + 2 grid, ... (its rounds). Round j of a block, on rank r of W, has three steps:
//   scatter(j): encode segment s of the chunk, for every peer s != r, and store it into rank s's
//               scatter slot [ring(j)][block][r] (ring(j): consecutive rounds take consecutive slots
//               of 3); then (after the gather below) raise this block's phase-0 flag to the
//               round's number on every rank;
//   reduce(j):  wait for the W phase-0 flags of round j; decode the W - 1 peers' contributions of
//               segment r and add them in f32, in rank order, with the own contribution as it is
//               (it never crosses a link: it is never quantized, which takes one of the W + 1
//               roundings out of the sum and saves its encode, store and load); encode the sum once
//               and store it into every peer's gather slot [ring(j)][block][r]; decode the code as
//               those peers will (as_stored) and hand segment r to the epilogue (the output) at
//               once; raise the phase-1 flag;
//   gather(j):  wait for the W phase-1 flags of round j; decode the W - 1 peers' reduced segments
//               and hand them to the epilogue.
// Every rank decodes the same bits for every segment, so every rank's output is bitwise identical. With
// rotation on (asked for, or a codec that always rotates), scatter rotates each group, the sum is
// formed in the rotated basis (the transform is linear), and gather undoes the rotation after
// decoding.
//
// The pipeline: iteration i of a block runs scatter(i)'s stores, gather(i - 2), scatter(i)'s flags,
// then reduce(i - 1), so the stores of three rounds are in flight at once and a wait finds, in the
// steady state, a flag its peers raised an iteration earlier: a block never drains the link between
// rounds, and its time follows its bytes, not its round trips. The scatter's flags wait for the
// gather: a flag's system-scope release waits until the block's stores before it have landed, and
// the gather (local loads and stores only) gives them the time (FP8 and INT8 at 1 GiB 1.09-1.13x on
// 2x H200 against raising them right after the stores). Several blocks per multiprocessor overlap
// further.
//
// Why no store can overwrite data a peer still reads (every rank runs the same rounds per block, so
// round numbers and ring positions agree across ranks and calls; flags only grow, compared modulo
// 2^32; the ring position is kept apart from the number because 3 does not divide 2^32):
//   * scatter(j) stores into rank p's ring slot ring(j), last used by round j - 3, which p read in
//     its reduce(j - 3) before raising its phase-1 flag for j - 3. This block waited for that flag
//     in gather(j - 3), in the iteration before scatter(j).
//   * reduce(j) stores into rank p's gather slot ring(j), last read by p in its gather(j - 3), which
//     p ran in its iteration j - 1, before it raised (in iteration j) the phase-0 flag for j that
//     reduce(j) waits for.
// A peer's flag runs at most one round ahead of the round a block waits for (max_flag_lead allows
// two): in iteration i this block waits for phase-1 flags of i - 2 having raised phase-0 flags up to
// i - 1, and a peer's phase-1 flag for k follows its reduce(k), which waits for this block's phase-0
// flag for k; it waits for phase-0 flags of i - 1 having raised phase-1 flags up to i - 2, and a
// peer's phase-0 flag for k follows its gather(k - 2), which waits for this block's phase-1 flag
// for k - 2.
// So three ring slots and these flags are the whole credit scheme: no extra messages. Rounds of
// earlier calls completed (their gathers waited for every peer), and kernels on one stream run in
// order, so the argument holds across calls and graph replays; one-shot calls in between use
// buffers and counters of their own.
//
// Sizing (Little's law): a rank keeps up to 3 rounds x blocks x (W - 1) segments of encoded data in
// flight per phase, 3 x 1056 x 8 KiB = 25 MiB on an H100 or H200 with the defaults at 2 ranks;
// NVLink 4 at about 370 GB/s per direction and a round life of about 10 us needs about 3.7 MB. The
// margin goes to the HBM side, where the same rounds must hide the latency of the loads and of the
// system-scope releases.
#pragma once
#include <cstddef>
#include <type_traits>
#include "../error.hpp"
#include "../device/tile.hpp"
#include "../transport/flags.hpp"
#include "signature.hpp"
#include "../transport/peer_memory.hpp"
#include "../epilogue/epilogue.hpp"

namespace qreduce::algorithm {

// The codecs whose lanes carry more than 4 bytes of a group's payload (INT6: 4 + 2 at places
// interleaved through every line of a peer's slot; FP8, INT8: 8) send their encoded tiles through
// shared memory: every thread writes its lane's payload and scale into an image of the tile there
// (the codec's own store functions), and after a barrier the block copies the image to the peer's
// slot in 16-byte pieces, whole lines. Measured on 2x H200 at 1 GiB (docs/design.md): INT6 2952 ->
// 1703 us (4 blocks a multiprocessor), FP8 1772 -> 1703 and INT8 1837 -> 1788 (8 blocks); the
// 4-bit codecs, whose lanes write 4 bytes (a warp one whole line), were 2-5% slower staged (one more
// barrier a step).
template <codec::codec_type C>
inline constexpr bool stages_tiles = C::scale_bytes > 0 && C::payload_bytes > 16;

// The codecs whose lanes write 4 bytes of payload and whose groups have a scale (FP4, MXFP4, INT4,
// INT4M) store the payloads straight into the peer's slot, a warp one whole 128-byte line, and send
// only the scales through shared memory: each tile's scales (2 or 1 bytes a group; a warp's 16 or 8
// bytes, a part of a line) go into an image of the step's scales, and after the step's last tile
// the block copies them out in 16-byte pieces, every tile's scales one whole write. Peer stores on
// 2x H200 with a warp's 2-byte scales beside its 4-byte payloads ran at 326-342 GB/s, against
// 363-365 written whole (docs/results/2026-11-26b-h200x2/peer-store-patterns.log).
template <codec::codec_type C>
inline constexpr bool stages_scales = C::scale_bytes > 0 && !stages_tiles<C>;

// The most tiles a step of codec C takes a segment: what the scale image holds where the codec
// stages its scales (16 tiles: a segment slot of 18 KiB of FP4; the default 16 KiB rounds hold 7 at
// 2 ranks), else no bound but the slot's.
template <codec::codec_type C>
inline constexpr int max_step_tiles = stages_scales<C> ? 16 : 1 << 30;

// Whether the two-shot compiles each step's tile loop twice: for the chunks that lie inside the
// tensor, with no bound tests in their loads and stores, and for the last. Where the 32 registers of
// the 2-rank kernels hold both: the codecs that store their payloads straight (stages_scales; INT4M
// 1 GiB on 2x H200 with the scale read below it 992-998 -> 976-980 us, docs/design.md). Elsewhere
// the copies made ptxas spill (ptxas -v), and one loop tests its bounds.
template <codec::codec_type C, int W>
inline constexpr bool split_bounds = W == 2 && stages_scales<C>;

// How a two-shot call is cut: K tiles per segment (at most what a segment slot holds of the codec's
// tiles), and the grid. A pure function of the message, the codec and the communicator, so every
// rank computes the same.
struct two_shot_plan {
  int tiles_per_segment = 1;
  int blocks = 0;
  std::size_t chunks = 0;
};

// The plan of a call of n values with codec C: its tiles at their slot stride
// (codec::slot_tile_bytes), as the kernel lays them out, at most max_step_tiles a segment; what
// every launch of two_shot must use.
template <codec::codec_type C>
inline two_shot_plan plan_two_shot(const workspace_layout& l, std::size_t n) {
  const std::size_t W = std::size_t(l.cfg.world);
  const std::size_t kslot = std::size_t(l.max_tiles_per_segment(std::size_t(codec::slot_tile_bytes<C>)));
  const std::size_t kmax = kslot < std::size_t(max_step_tiles<C>) ? kslot : std::size_t(max_step_tiles<C>);
  two_shot_plan p;
  const std::size_t grid = std::size_t(l.cfg.blocks);
  // The fewest rounds a block needs with full slots (at most max_step_tiles), then K as small as
  // covers the message in that many rounds: every block's share is then within one segment tile of
  // the others'. (K = the slot's size would leave some blocks a whole extra round where the chunks
  // barely outnumber the blocks: at 32 MiB on 2x H100 every codec fell 15-20% below its speedup at 16
  // and 64 MiB.) Cutting K further, so that every block gets the ring's three rounds, was slower from
  // 4 to 16 MiB (FP4 29.5 vs 21.5 us at 4 MiB; docs/design.md).
  auto ceil_div = [](std::size_t a, std::size_t b) { return a / b + (a % b != 0 ? 1 : 0); };
  const std::size_t per_tile_round = grid * W * codec::tile_values;
  const std::size_t rounds = n > per_tile_round * kmax ? ceil_div(n, per_tile_round * kmax) : 1;
  std::size_t k = ceil_div(n, per_tile_round * rounds);
  k = k < 1 ? 1 : (k > kmax ? kmax : k);
  p.tiles_per_segment = int(k);
  p.chunks = ceil_div(n, W * k * codec::tile_values);
  p.blocks = int(p.chunks < grid ? p.chunks : grid);
  return p;
}

}  // namespace qreduce::algorithm

#if !QR_BACKEND_HOST
namespace qreduce::algorithm {

// Tile images a block keeps in shared memory: two, used in turn, so that one barrier an image orders
// both its writes before its copies and the copies of the image before it before its writes.
template <codec::codec_type C>
struct tile_stage {
  alignas(16) std::byte image[2][codec::tile_bytes<C>];
};

// Whether a step's tiles all lie inside the tensor: a bool, or (split_bounds) known at compile time.
template <class Inside>
inline constexpr bool known_inside = std::is_same_v<Inside, std::true_type>;
QR_DEVICE QR_FORCEINLINE bool inside_value(bool inside) { return inside; }
template <bool Inside>
QR_DEVICE QR_FORCEINLINE bool inside_value(std::bool_constant<Inside>) {
  return Inside;
}

// Copies a tile image (tile_bytes, a multiple of 16) to `dst` with the block's threads, 16 bytes each.
template <codec::codec_type C>
QR_DEVICE QR_FORCEINLINE void copy_tile(std::byte* dst, const std::byte* image, int t) {
  constexpr int pieces = codec::tile_bytes<C> / 16;
  QR_UNROLL
  for (int i = t; i < pieces; i += block_threads) reinterpret_cast<uint4*>(dst)[i] = reinterpret_cast<const uint4*>(image)[i];
}

// A step's scales (stages_scales): [peer offset][tile][the tile's scales]. One image: the barrier of
// the flag that follows each step (signal_flags) orders its copies before the next step's writes.
// (A 16-byte placeholder for the codecs that do not stage their scales.)
template <codec::codec_type C, int W>
struct scale_image_of {
  using type = std::byte[16];
};
template <codec::codec_type C, int W>
requires stages_scales<C>
struct scale_image_of<C, W> {
  using type = std::byte[W - 1][max_step_tiles<C>][device::tile_scale_bytes<C>];
};
template <codec::codec_type C, int W>
using scale_image = typename scale_image_of<C, W>::type;

// Copies the scales of the `count` tiles before dst[o] (dst[o] points past them, at the slot stride)
// from image[peer][0 .. count) for every peer offset o: peer = o, or 0 for every o where all peers
// get the same (the reduce step's sums). Whole 16-byte pieces, by the block's threads.
template <codec::codec_type C, int W, bool Shared>
QR_DEVICE QR_FORCEINLINE void copy_scales(std::byte* const (&dst)[W - 1], const scale_image<C, W>& image, int count, int t) {
  constexpr int TB = codec::slot_tile_bytes<C>, pieces = device::tile_scale_bytes<C> / 16;
  static_assert(device::tile_scale_bytes<C> % 16 == 0, "a tile's scales in whole 16-byte pieces");
  static_assert(max_step_tiles<C> * pieces <= block_threads, "a piece a thread at most");
  if (t >= count * pieces) return;
  const int f = t / pieces, q = t % pieces;
  QR_UNROLL
  for (int o = 0; o < W - 1; ++o)
    reinterpret_cast<uint4*>(dst[o] - (count - f) * TB + device::tile_payload_bytes<C>)[q] =
        reinterpret_cast<const uint4*>(image[Shared ? 0 : o][f])[q];
}

// The two-shot all-reduce of n values as a device function: every thread of every block of a grid of
// plan.blocks blocks (block_threads threads each) calls it with the plan's K. A user kernel can call
// it (examples/03_custom_epilogue); two_shot_kernel is its __global__ wrapper. It hands the epilogue
// its values 8 at a time; a row-wise epilogue's rows are finished afterwards by rows_kernel.
// call_epilogue: the epilogue field of the call's signature (algorithm/signature.hpp), where the
// caller runs a different epilogue than the one it was asked for (the fused RMSNorm's two-shot hands
// its sums to a kernel of rows and runs the plain epilogue itself). dependents: a kernel launched
// after this one as a programmatic dependent (rows_kernel) may start once every block is past its
// last wait for a peer (never before: ranks sharing a GPU could otherwise block each other through
// that kernel's waiting blocks).
template <class Transport, codec::codec_type C, class T, int W, epilogue::epilogue_for<T> Epilogue>
__device__ QR_FORCEINLINE void two_shot(const device_handle& h, const T* in, T* out, std::size_t n, int tiles_per_segment, bool rotate,
                                        const Epilogue& ep, std::uint32_t call_epilogue = epilogue_id<Epilogue>, bool dependents = false) {
  using namespace device;
  constexpr int TB = codec::slot_tile_bytes<C>;  // a tile's stride in the slots (its bytes: tile_bytes)
  const int b = blockIdx.x, t = threadIdx.x, r = h.rank;
  if (!block_may_start(h)) return;  // this rank or a peer gave up: no remote write
  if (gridDim.x > unsigned(h.layout.cfg.blocks) || tiles_per_segment < 1 || tiles_per_segment > max_step_tiles<C> ||
      std::size_t(tiles_per_segment) * TB > h.layout.segment_bytes) {  // a launch the workspace cannot hold
    if (threadIdx.x == 0) record_fault(h, fault::bad_launch, h.rank, scatter_phase, gridDim.x, std::uint32_t(tiles_per_segment));
    return;
  }
  const int K = tiles_per_segment;
  rotate = rotate || codec::always_rotated<C>;
  const std::size_t seg = std::size_t(K) * codec::tile_values;
  const std::size_t chunk = W * seg;
  const std::size_t chunks = (n + chunk - 1) / chunk;
  const std::size_t rounds = chunks > std::size_t(b) ? (chunks - std::size_t(b) + gridDim.x - 1) / gridDim.x : 0;
  const std::uint32_t seq0 = *h.seq(b);  // rounds this block finished before this call
  const std::uint32_t ring0 = *h.ring_position(b);  // the ring slot of this call's first round
  // Round j of this call: its chunk, its number (what the flags carry) and its ring slot.
  auto chunk_of = [&](std::size_t j) { return std::size_t(b) + j * gridDim.x; };
  auto number = [&](std::size_t j) { return seq0 + 1u + std::uint32_t(j); };
  // The ring slot of round i (consecutive rounds, consecutive slots), kept as the loop goes: those of
  // rounds i - 1 and i - 2 are the two before it.
  int ring_i = int(ring0 % ring_slots);
  auto ring_back = [&](int d) { return (ring_i + ring_slots - d) % ring_slots; };
  // What this rank was asked, sent with every scatter flag and compared by every receiver. Kept in
  // shared memory: a register pair live across the loop made the kernels spill (ptxas -v).
  __shared__ std::uint64_t call_shared;
  __shared__ std::uint64_t peer_calls[W];  // the peers' signatures of the round being reduced (fetch_calls)
  if (t == 0) call_shared = call_signature(n, dtype_of<T>, codec_id<C>, two_shot_id, call_epilogue, rotate);
  block_sync();  // read by threads 1..W-1 before signal_flags' own barrier
  auto call = [&] { return *static_cast<volatile std::uint64_t*>(&call_shared); };
  __shared__ tile_stage<C> stage;
  int set = 0;  // the stage's image the next staged step writes
  alignas(16) __shared__ scale_image<C, W> scales;
  // Each step works a tile at a time (one tile's loads, then its arithmetic: loads in flight come from
  // resident warps, at 2 ranks eight blocks a multiprocessor at 32 registers a thread; two tiles a step at four
  // blocks were up to 13% slower on 2x H200, docs/design.md). Its addresses are set once a step and
  // advanced a tile at a time: recomputed from the round and the tile for every tile, they were
  // about 60 of the gather step's 136 instructions a tile (FP4, sm_90 SASS; now about 20), though
  // the time moved little (INT6 at 1 GiB 1352 -> 1334 us, FP4 1086 -> 1080).
  const int lane_offset = 8 * t;
  // A decoded code to the epilogue at index i: straight to T's bits where the codec and the epilogue
  // can (E2M1 and INT4 to bf16 into the plain output without rotation, device::decode_code_rounded;
  // INT4M rotated, device::decode_unrotate_rounded; bitwise the same), else as f32 values.
  constexpr bool plain_output = requires(const uint4& v) { ep.store_rounded(out, n, std::size_t(0), v); };
  // Inside: std::true_type where the step's tiles are known to lie inside the tensor (the epilogue is
  // then told the 8 values are, and its store tests nothing), else a bool (the epilogue tests i + 8 <= n).
  auto emit = [&]<class Inside>(const lane_code<C>& c, std::size_t i, Inside) {
    if constexpr (decodes_rounded<C, T> && plain_output) {
      if (!rotate) {
        ep.store_rounded(out, known_inside<Inside> ? i + 8 : n, i, decode_code_rounded<C, T>(c));
        return;
      }
    }
    if constexpr (decodes_unrotated_rounded<C, T> && plain_output) {
      if (rotate) {
        ep.store_rounded(out, known_inside<Inside> ? i + 8 : n, i, decode_unrotate_rounded<C, T>(c));
        return;
      }
    }
    float y[8];
    if (rotate) decode_unrotate<C, T>(c, y);
    else decode_code<C, T>(c, y);
    ep(out, n, i, y);
  };

  // A step's tile loop, tiles(inside), for a step whose tiles all lie inside the tensor or not: where
  // split_bounds, compiled twice (inside a std::true_type: its loads and stores test no bounds), else
  // once (inside a bool).
  auto over_tiles = [&](bool inside, auto&& tiles) {
    if constexpr (split_bounds<C, W>) {
      if (inside) tiles(std::true_type{});
      else tiles(std::false_type{});
    } else {
      tiles(inside);
    }
  };

  for (std::size_t i = 0; i < rounds + 2; ++i) {
    if (i < rounds) {  // scatter(i): encode each segment into its owner's slot
      const std::size_t base = chunk_of(i) * chunk;
      const bool inside = base + chunk <= n;  // every chunk but the last
      std::size_t src[W - 1];  // [o]: the next tile of the o-th peer's segment (the own is not sent)
      std::byte* dst[W - 1];
      QR_UNROLL
      for (int o = 0; o < W - 1; ++o) {
        const int s = (r + 1 + o) % W;
        src[o] = base + std::size_t(s) * seg;
        dst[o] = h.scatter_slot(s, ring_i, b, r);
      }
      over_tiles(inside, [&](auto tiles_inside) {
        for (int k = 0; k < K; ++k) {
          QR_UNROLL
          for (int o = 0; o < W - 1; ++o) {
            float x[8];
            unpack8<T>(load8_bits(in, n, src[o] + lane_offset, inside_value(tiles_inside)), x);
            if (rotate) device::rotate_loaded<C>(x);
            const auto code = encode_lane<C, T>(x);
            if constexpr (stages_tiles<C>) {
              store_lane<C>(stage.image[set], t, code);
              block_sync();
              copy_tile<C>(dst[o], stage.image[set], t);
              set ^= 1;
            } else if constexpr (stages_scales<C>) {
              store_payload<C>(dst[o], t, code);
              store_scale<C>(scales[o][k], t, code);
            } else {
              store_lane<C>(dst[o], t, code);
            }
            src[o] += codec::tile_values;
            dst[o] += TB;
          }
        }
      });
      if constexpr (stages_scales<C>) {
        block_sync();
        copy_scales<C, W, false>(dst, scales, K, t);
      }
    }
    if (i >= 2) {  // gather(i - 2): decode every reduced segment and hand it to the epilogue
      const std::size_t j = i - 2, base = chunk_of(j) * chunk;
      if (!wait_flags<Transport, W>(h, gather_phase, number(j))) break;
      // the block's last wait for a peer is behind it: a kernel of rows after this one may start
      if (dependents && j + 1 == rounds) trigger_dependents();
      const std::byte* src[W - 1];  // [o]: the next tile of the o-th peer's reduced segment
      std::size_t dst[W - 1];
      QR_UNROLL
      for (int o = 0; o < W - 1; ++o) {
        const int s = (r + 1 + o) % W;
        src[o] = h.gather_slot(r, ring_back(2), b, s);
        dst[o] = base + std::size_t(s) * seg;
      }
      over_tiles(base + chunk <= n, [&](auto tiles_inside) {
        for (int k = 0; k < K; ++k) {
          lane_code<C> sums[W - 1];
          QR_UNROLL
          for (int o = 0; o < W - 1; ++o) sums[o] = load_code<C, T>(src[o], t);
          QR_UNROLL
          for (int o = 0; o < W - 1; ++o) {
            emit(sums[o], dst[o] + lane_offset, tiles_inside);
            src[o] += TB;
            dst[o] += codec::tile_values;
          }
        }
      });
    }
    if (i < rounds)  // scatter(i)'s flags, after the gather gave its stores time to land
      signal_flags<Transport, W>(h, scatter_phase, number(i), ring_i, call());
    if (i >= 1 && i <= rounds) {  // reduce(i - 1): the own segment in f32, encoded once, sent to every peer
      const std::size_t j = i - 1;
      const int q = ring_back(1);
      if (!wait_flags<Transport, W>(h, scatter_phase, number(j))) break;
      fetch_calls<W>(h, q, peer_calls);  // compared before the gather flag goes up
      std::size_t own = chunk_of(j) * chunk + r * seg;  // the next tile of the own segment
      const bool inside = chunk_of(j) * chunk + chunk <= n;
      // Indexed by peer offset o (peer s = r + 1 + o mod W), as in the other steps: addresses and
      // loads without a test of s against r (indexed by s, the kernel carried both choices for every
      // s under predicates, and spilled).
      const std::byte* src[W - 1];  // [o]: the next tile of peer s's contribution
      std::byte* dst[W - 1];  // [o]: the next tile of peer s's gather slot
      QR_UNROLL
      for (int o = 0; o < W - 1; ++o) {
        const int s = (r + 1 + o) % W;
        src[o] = h.scatter_slot(r, q, b, s);
        dst[o] = h.gather_slot(s, q, b, r);
      }
      over_tiles(inside, [&](auto tiles_inside) {
        for (int k = 0; k < K; ++k) {
          lane_code<C> in_codes[W - 1];
          const uint4 mine = load8_bits(in, n, own + lane_offset, inside_value(tiles_inside));
          QR_UNROLL
          for (int o = 0; o < W - 1; ++o) in_codes[o] = load_code<C, T>(src[o], t);
          float acc[8];
          unpack8<T>(mine, acc);
          if (rotate) device::rotate_loaded<C>(acc);
          if constexpr (W == 2) {
            // (0 + y0) + y1 in rank order is (0 + own) + peer on either rank: a sum of two terms
            // rounds the same in either order, and the leading 0 turns a -0 into +0 either way. Where
            // the codec encodes -0 as +0, no code decodes to -0 (tests/host checks it), so own + peer
            // is that sum up to the sign of a zero, which the codec's encode does not see (int4m's
            // accumulate_lane may leave a -0 there): the same bytes, 8 additions a tile fewer.
            if constexpr (codec::encodes_zero_sign<C>) {
              QR_UNROLL
              for (int e = 0; e < 8; ++e) acc[e] = 0.0f + acc[e];
            }
            accumulate_code<C, T>(in_codes[0], acc);
          } else {
            // Rank order, the same sum on every rank: peers s < r (offsets W-1-r ..), the own
            // contribution, then peers s > r (offsets 0 .. W-2-r).
            float own_v[8];
            QR_UNROLL
            for (int e = 0; e < 8; ++e) own_v[e] = acc[e], acc[e] = 0.0f;
            QR_UNROLL
            for (int o = 0; o < W - 1; ++o)
              if (o >= W - 1 - r) accumulate_code<C, T>(in_codes[o], acc);
            QR_UNROLL
            for (int e = 0; e < 8; ++e) acc[e] += own_v[e];
            QR_UNROLL
            for (int o = 0; o < W - 1; ++o)
              if (o < W - 1 - r) accumulate_code<C, T>(in_codes[o], acc);
          }
          const auto code = encode_lane<C, T>(acc);
          if constexpr (stages_tiles<C>) {
            store_lane<C>(stage.image[set], t, code);
          } else if constexpr (stages_scales<C>) {
            QR_UNROLL
            for (int o = 0; o < W - 1; ++o) store_payload<C>(dst[o], t, code);
            store_scale<C>(scales[0][k], t, code);
          } else {
            QR_UNROLL
            for (int o = 0; o < W - 1; ++o) store_lane<C>(dst[o], t, code);
          }
          // The own reduced segment goes to the output from here, decoded as the peers decode its
          // stored bytes: no store to and load from this rank's own gather slot.
          emit(as_stored<C>(code, t), own + lane_offset, tiles_inside);
          if constexpr (stages_tiles<C>) {
            block_sync();
            QR_UNROLL
            for (int o = 0; o < W - 1; ++o) copy_tile<C>(dst[o], stage.image[set], t);
            set ^= 1;
          }
          QR_UNROLL
          for (int o = 0; o < W - 1; ++o) {
            src[o] += TB;
            dst[o] += TB;
          }
          own += codec::tile_values;
        }
      });
      if constexpr (stages_scales<C>) {
        block_sync();
        copy_scales<C, W, true>(dst, scales, K, t);
      }
      // nothing of a peer whose call is unlike this rank's goes further than this rank's own output
      if (!signal_flags<Transport, W>(h, gather_phase, number(j), -1, call(), peer_calls)) break;
    }
    ring_i = ring_i + 1 == ring_slots ? 0 : ring_i + 1;
  }
  if (t == 0) {
    *h.seq(b) = seq0 + std::uint32_t(rounds);
    *h.ring_position(b) = std::uint32_t((ring0 + rounds) % ring_slots);
  }
}

template <class Transport, codec::codec_type C, class T, int W, epilogue::epilogue_for<T> Epilogue>
__global__ void __launch_bounds__(block_threads, twoshot_blocks_per_sm(W))
    two_shot_kernel(device_handle h, const T* in, T* out, std::size_t n, int tiles_per_segment, bool rotate, Epilogue ep, std::uint32_t call_epilogue,
                    bool dependents) {
  two_shot<Transport, C, T, W>(h, in, out, n, tiles_per_segment, rotate, ep, call_epilogue, dependents);
}

// A row-wise epilogue's rows after the all-reduce (epilogue/rmsnorm.hpp), launched after it on the
// same stream with rt::launch_dependent, so that its launch overlaps the all-reduce's end: one block
// a row, the grid striding over the rows. Against finishing the rows inside the two-shot (each block
// the rows of its own chunks, or every block after a barrier over its grid), this made the fused
// residual + RMSNorm 1.2-1.6x faster from 256 to 16k tokens; against the one-shot's blocks finishing
// their own rows, faster where a few rows left most of the grid idle (docs/design.md).
// It does not look at the abort word (a load before any work cost 5% at 256 tokens): after a fault
// it finishes rows of what the all-reduce left, as the all-reduce itself leaves its output
// unfinished; check() throws either way. Batch > 1: the epilogue's batched_row<Batch>() instead of
// row(), where it has one (the fused RMSNorm: more loads in flight a thread, fewer blocks a
// multiprocessor), for calls of at most rows_kernel_batched_rows rows.
template <class Epilogue, int Batch = 1>
__global__ void __launch_bounds__(block_threads) rows_kernel(Epilogue ep, std::size_t rows) {
  device::wait_prerequisites();  // the all-reduce before it has ended
  for (std::size_t row = blockIdx.x; row < rows; row += gridDim.x) {
    if constexpr (Batch > 1) ep.template batched_row<Batch>(row);
    else ep.row(row);
  }
}

// The grid of rows_kernel: a block a row, up to this many.
inline constexpr std::size_t rows_kernel_max_blocks = std::size_t(1) << 20;

// The fused RMSNorm's kernel of rows loads 4 vectors a thread before using any (rows_kernel<E, 4>)
// for calls of at most this many rows: 256 x 8192 on 2x H200 1.03-1.04x of unfused under CUDA graphs
// where one vector at a time gave 0.99-1.00x; from 1024 rows it loses (16k x 4096: 7% slower), as
// 106 registers a thread leave two blocks a multiprocessor (docs/results/2026-11-26e-h200x2/).
inline constexpr std::size_t rows_kernel_batched_rows = 512;
inline constexpr int rows_kernel_batch = 4;

}  // namespace qreduce::algorithm
#endif
