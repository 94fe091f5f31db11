// The PyTorch binding: communicators kept in a registry by integer id, and torch custom ops
// (qreduce::all_reduce, qreduce::all_reduce_rmsnorm) that take that id, so the ops work under
// CUDA-graph capture and torch.compile (python/qreduce/torch.py registers their fake versions).
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/extension.h>
#include <torch/library.h>

#include <map>
#include <memory>
#include <functional>
#include <mutex>
#include <vector>
#include "qreduce/qreduce.hpp"

namespace {

std::mutex registry_mu;
// shared_ptr: a call holds its communicator alive while destroy() runs on another thread.
std::map<int64_t, std::shared_ptr<qreduce::communicator>> registry;
int64_t next_id = 1;

std::shared_ptr<qreduce::communicator> get(int64_t id) {
  std::lock_guard l(registry_mu);
  auto it = registry.find(id);
  TORCH_CHECK(it != registry.end(), "qreduce: communicator ", id, " does not exist (destroyed?)");
  return it->second;
}

qreduce::dtype dtype_of(const at::Tensor& t) {
  TORCH_CHECK(t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16, "qreduce: tensors must be float16 or bfloat16, not ",
              t.scalar_type());
  return t.scalar_type() == at::kHalf ? qreduce::dtype::f16 : qreduce::dtype::bf16;
}

void check_tensor(const qreduce::communicator& c, const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), "qreduce: ", name, " must be a CUDA tensor");
  TORCH_CHECK(t.get_device() == c.device(), "qreduce: ", name, " is on cuda:", t.get_device(), ", the communicator on cuda:", c.device());
  TORCH_CHECK(t.is_contiguous(), "qreduce: ", name, " must be contiguous");
}

// allgather: a Python callable bytes -> bytes (the concatenation over ranks)
int64_t create(int64_t rank, int64_t world, int64_t device, py::object allgather, int64_t max_blocks, int64_t timeout_ms) {
  c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device));
  qreduce::callback_bootstrap bs(int(rank), int(world), [&](const void* send, void* recv, std::size_t bytes) {
    py::gil_scoped_acquire gil;
    py::bytes out = allgather(py::bytes(static_cast<const char*>(send), bytes));
    std::string s = out;
    TORCH_CHECK(s.size() == bytes * std::size_t(world), "qreduce: the all-gather returned ", s.size(), " bytes, expected ", bytes * world);
    std::memcpy(recv, s.data(), s.size());
  });
  // The environment is read inside the collective creation: a malformed variable on one rank fails
  // every rank, naming it.
  const std::function<qreduce::comm_config()> configure = [&] {
    qreduce::comm_config cfg = qreduce::config_from_env();
    if (max_blocks > 0) cfg.max_blocks = int(max_blocks);
    if (timeout_ms > 0) cfg.timeout_ms = std::uint64_t(timeout_ms);
    return cfg;
  };
  auto c = std::make_shared<qreduce::communicator>(bs, configure);
  std::lock_guard l(registry_mu);
  registry[next_id] = std::move(c);
  return next_id++;
}

void destroy(int64_t id) {
  std::shared_ptr<qreduce::communicator> c;  // freed here, or by the last call still using it
  {
    std::lock_guard l(registry_mu);
    auto it = registry.find(id);
    if (it == registry.end()) return;
    c = std::move(it->second);
    registry.erase(it);
  }
}

qreduce::allreduce_options options(int64_t codec, int64_t algorithm, bool rotate) {
  TORCH_CHECK(codec >= 0 && codec < int64_t(qreduce::all_codecs_set::size), "qreduce: bad codec id ", codec);
  TORCH_CHECK(algorithm >= 0 && algorithm <= 2, "qreduce: bad algorithm id ", algorithm);
  return {qreduce::codec_kind(codec), qreduce::algorithm_kind(algorithm), rotate};
}

void all_reduce_out(const at::Tensor& input, at::Tensor& out, int64_t comm, int64_t codec, int64_t algorithm, bool rotate) {
  const auto held = get(comm);
  auto& c = *held;
  check_tensor(c, input, "input");
  check_tensor(c, out, "out");
  TORCH_CHECK(out.scalar_type() == input.scalar_type() && out.numel() == input.numel(), "qreduce: out must match input");
  c10::cuda::CUDAGuard guard(input.device());
  try {
    c.all_reduce(input.data_ptr(), out.data_ptr(), std::size_t(input.numel()), dtype_of(input), options(codec, algorithm, rotate),
                 at::cuda::getCurrentCUDAStream().stream());
  } catch (const qreduce::error& e) {
    TORCH_CHECK(false, e.what());
  }
}

at::Tensor all_reduce(const at::Tensor& input, int64_t comm, int64_t codec, int64_t algorithm, bool rotate) {
  at::Tensor out = at::empty_like(input);
  all_reduce_out(input, out, comm, codec, algorithm, rotate);
  return out;
}

// The communicator of a fused RMSNorm call, after the checks of its tensors.
std::shared_ptr<qreduce::communicator> rmsnorm_comm(int64_t comm, const at::Tensor& x, const at::Tensor& residual, const at::Tensor& weight) {
  auto held = get(comm);
  auto& c = *held;
  for (auto* t : {&x, &weight}) check_tensor(c, *t, "tensor");
  check_tensor(c, residual, "residual");
  TORCH_CHECK(x.dim() >= 1 && x.sizes() == residual.sizes(), "qreduce: x and residual must have the same shape");
  TORCH_CHECK(weight.dim() == 1 && weight.size(0) == x.size(-1), "qreduce: weight must have the hidden size");
  TORCH_CHECK(x.size(-1) > 0, "qreduce: the hidden size (x's last dimension) must be positive");
  TORCH_CHECK(x.scalar_type() == residual.scalar_type() && x.scalar_type() == weight.scalar_type(), "qreduce: dtypes differ");
  return held;
}

// returns y; residual is updated in place
at::Tensor all_reduce_rmsnorm(const at::Tensor& x, at::Tensor& residual, const at::Tensor& weight, double eps, int64_t comm, int64_t codec,
                              int64_t algorithm, bool rotate) {
  const auto held = rmsnorm_comm(comm, x, residual, weight);
  auto& c = *held;
  const std::size_t hidden = std::size_t(x.size(-1)), rows = std::size_t(x.numel()) / hidden;
  at::Tensor y = at::empty_like(x);
  c10::cuda::CUDAGuard guard(x.device());
  try {
    c.all_reduce_rmsnorm(x.data_ptr(), residual.data_ptr(), weight.data_ptr(), residual.data_ptr(), y.data_ptr(), rows, hidden, float(eps),
                         dtype_of(x), options(codec, algorithm, rotate), at::cuda::getCurrentCUDAStream().stream());
  } catch (const qreduce::error& e) {
    TORCH_CHECK(false, e.what());
  }
  return y;
}

// The same with y quantized (epilogue/outputs.hpp). out_format: the output's
// qreduce::epilogue::norm_output_kind, 1 fp8 per token, 2 mxfp4, 3 nvfp4 (global_scale: a 1-element
// float32 tensor). Returns (codes, scales); residual is updated in place.
std::tuple<at::Tensor, at::Tensor> all_reduce_rmsnorm_quant(const at::Tensor& x, at::Tensor& residual, const at::Tensor& weight, double eps,
                                                            int64_t out_format, const std::optional<at::Tensor>& global_scale, int64_t comm,
                                                            int64_t codec, int64_t algorithm, bool rotate) {
  using qreduce::epilogue::norm_output_kind;
  const auto held = rmsnorm_comm(comm, x, residual, weight);
  auto& c = *held;
  TORCH_CHECK(out_format > int64_t(norm_output_kind::native) && out_format <= int64_t(norm_output_kind::nvfp4), "qreduce: bad output format id ",
              out_format);
  qreduce::epilogue::any_output<qreduce::bf16> out;  // T is y's type, which a quantized output does not write
  out.kind = norm_output_kind(out_format);
  const bool per_token = out.kind == norm_output_kind::fp8_per_token;
  const std::int64_t hidden = x.size(-1), rows = x.numel() / std::max<std::int64_t>(hidden, 1);
  auto shape = x.sizes().vec();
  auto u8 = x.options().dtype(at::kByte);
  at::Tensor q, scale;
  if (out.kind == norm_output_kind::nvfp4)
    TORCH_CHECK(global_scale.has_value() && global_scale->is_cuda() && global_scale->scalar_type() == at::kFloat && global_scale->numel() == 1 &&
                    global_scale->device() == x.device(),
                "qreduce: nvfp4 needs global_scale, a 1-element float32 tensor on the communicator's device");
  // values per scale: the FP4 outputs' group (fp8 per token has one scale a row)
  const std::int64_t group = per_token ? 1 : out.visit([](const auto& o) { return std::int64_t(std::decay_t<decltype(o)>::group); });
  TORCH_CHECK(hidden % group == 0, "qreduce: hidden must be a multiple of ", group, " for this output");
  c10::cuda::CUDAGuard guard(x.device());
  if (per_token) {
    q = at::empty(shape, u8);
    shape.back() = 1;
    scale = at::empty(shape, x.options().dtype(at::kFloat));
  } else {
    shape.back() = hidden / 2;
    q = at::empty(shape, u8);
    shape.back() = hidden / group;
    scale = at::empty(shape, u8);
  }
  out.q = q.data_ptr<std::uint8_t>();
  out.scale = scale.data_ptr();
  if (out.kind == norm_output_kind::nvfp4) out.global_scale = global_scale->data_ptr<float>();
  try {
    out.visit([&](const auto& o) {
      c.all_reduce_rmsnorm(x.data_ptr(), residual.data_ptr(), weight.data_ptr(), residual.data_ptr(), o, std::size_t(rows), std::size_t(hidden),
                           float(eps), dtype_of(x), options(codec, algorithm, rotate), at::cuda::getCurrentCUDAStream().stream());
    });
  } catch (const qreduce::error& e) {
    TORCH_CHECK(false, e.what());
  }
  return {q, scale};
}

int64_t max_oneshot_bytes(int64_t comm) { return int64_t(get(comm)->max_oneshot_values() * 2); }

// communicator::check(), abort() and dead_peers() (comm.hpp): qreduce errors become RuntimeError.
void check(int64_t comm) {
  try {
    get(comm)->check();
  } catch (const qreduce::error& e) {
    TORCH_CHECK(false, e.what());
  }
}
void abort_comm(int64_t comm) {
  try {
    get(comm)->abort();
  } catch (const qreduce::error& e) {
    TORCH_CHECK(false, e.what());
  }
}
std::vector<int64_t> dead_peers(int64_t comm) {
  const auto dead = get(comm)->dead_peers();
  return {dead.begin(), dead.end()};
}

}  // namespace

TORCH_LIBRARY(qreduce, m) {
  m.def("all_reduce(Tensor input, int comm, int codec, int algorithm, bool rotate) -> Tensor");
  m.def("all_reduce_out(Tensor input, Tensor(a!) out, int comm, int codec, int algorithm, bool rotate) -> ()");
  m.def("all_reduce_rmsnorm(Tensor x, Tensor(a!) residual, Tensor weight, float eps, int comm, int codec, int algorithm, bool rotate) -> Tensor");
  m.def(
      "all_reduce_rmsnorm_quant(Tensor x, Tensor(a!) residual, Tensor weight, float eps, int out_format, Tensor? global_scale, "
      "int comm, int codec, int algorithm, bool rotate) -> (Tensor, Tensor)");
}
TORCH_LIBRARY_IMPL(qreduce, CUDA, m) {
  m.impl("all_reduce", &all_reduce);
  m.impl("all_reduce_out", &all_reduce_out);
  m.impl("all_reduce_rmsnorm", &all_reduce_rmsnorm);
  m.impl("all_reduce_rmsnorm_quant", &all_reduce_rmsnorm_quant);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("create", &create, "create a communicator (returns its id)");
  m.def("destroy", &destroy);
  m.def("max_oneshot_bytes", &max_oneshot_bytes);
  m.def("check", &check);
  m.def("abort", &abort_comm);
  m.def("dead_peers", &dead_peers);
}
