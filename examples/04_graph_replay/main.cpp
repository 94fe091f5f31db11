// 04_graph_replay: capture qreduce calls in a CUDA/HIP graph and replay it with fresh data each time,
// as inference engines do for decode steps. The flags live in device memory, so every replay is a
// new, correctly ordered collective.
//   QREDUCE_RANK=0 QREDUCE_WORLD=2 ./04_graph_replay & QREDUCE_RANK=1 QREDUCE_WORLD=2 ./04_graph_replay
#include <cstdio>
#include <cstdlib>
#include <vector>
#include "qreduce/qreduce.hpp"
#include "../common/rank.hpp"

#if defined(__HIP__)
#define GPU(name) hip##name
#else
#define GPU(name) cuda##name
#endif

int main() {
  const example_rank me = example_setup("04_graph_replay");
  const int rank = me.rank, world = me.world;
  namespace rt = qreduce::rt;
  using qreduce::bf16;
  try {
    qreduce::socket_bootstrap bs(rank, world, "example-04");
    qreduce::communicator_for<qreduce::codec::passthrough> comm(bs);  // unquantized only
    rt::stream_t s;
    rt::check(GPU(StreamCreateWithFlags)(&s, GPU(StreamNonBlocking)), "StreamCreate");

    const std::size_t n = 8192;  // a decode step's hidden state
    auto* x = static_cast<bf16*>(rt::malloc_device(n * sizeof(bf16)));
    GPU(Graph_t) graph;
    GPU(GraphExec_t) exec;
    rt::check(GPU(StreamBeginCapture)(s, GPU(StreamCaptureModeThreadLocal)), "StreamBeginCapture");
    comm.all_reduce(x, x, n, qreduce::dtype::bf16, {}, s);  // auto: the one-shot at this size
    rt::check(GPU(StreamEndCapture)(s, &graph), "StreamEndCapture");
    rt::check(GPU(GraphInstantiateWithFlags)(&exec, graph, 0), "GraphInstantiate");

    std::vector<bf16> h(n);
    int wrong = 0;
    for (int step = 0; step < 100; ++step) {
      for (auto& v : h) v = qreduce::numeric::to_bf16(float(step + rank));
      rt::check(GPU(MemcpyAsync)(x, h.data(), n * sizeof(bf16), GPU(MemcpyHostToDevice), s), "MemcpyAsync");
      rt::check(GPU(GraphLaunch)(exec, s), "GraphLaunch");
      rt::check(GPU(MemcpyAsync)(h.data(), x, n * sizeof(bf16), GPU(MemcpyDeviceToHost), s), "MemcpyAsync");
      rt::stream_synchronize(s);
      const float want = float(world * step + world * (world - 1) / 2);
      wrong += qreduce::numeric::to_float(h[n - 1]) != want;
    }
    comm.check();
    std::printf("rank %d: 100 replays, %d wrong\n", rank, wrong);
    rt::check(GPU(GraphExecDestroy)(exec), "GraphExecDestroy");
    rt::check(GPU(GraphDestroy)(graph), "GraphDestroy");
    rt::free_device(x);
    return wrong == 0 ? 0 : 1;
  } catch (const qreduce::error& e) {
    std::fprintf(stderr, "rank %d: %s\n", rank, e.what());
    return 1;
  }
}
