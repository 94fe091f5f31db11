// qreduce/bootstrap/bootstrap.hpp: how the ranks of a communicator meet.
//
// A bootstrap knows this rank, the world size, and can all-gather a few bytes. qreduce uses it only
// while creating a communicator (to agree on the configuration and to exchange memory handles).
//   callback_bootstrap  wraps the caller's all-gather (MPI_Allgather, torch.distributed, ...)
//   thread_bootstrap    ranks that are threads of one process (tests, single-process multi-GPU)
//   socket_bootstrap    standalone processes on one host (bootstrap/socket.hpp)
#pragma once
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>
#include "../error.hpp"

namespace qreduce {

class bootstrap {
 public:
  virtual ~bootstrap() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Every rank contributes `bytes` bytes; recv receives size() * bytes, rank i's at offset i * bytes.
  virtual void allgather(const void* send, void* recv, std::size_t bytes) = 0;
};

class callback_bootstrap final : public bootstrap {
 public:
  using allgather_fn = std::function<void(const void* send, void* recv, std::size_t bytes)>;
  callback_bootstrap(int rank, int size, allgather_fn fn) : rank_(rank), size_(size), fn_(std::move(fn)) {
    if (size < 1 || rank < 0 || rank >= size)
      throw error(errc::invalid_argument, "bootstrap: rank " + std::to_string(rank) + " outside world size " + std::to_string(size));
    if (!fn_) throw error(errc::invalid_argument, "bootstrap: empty all-gather callback");
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void allgather(const void* send, void* recv, std::size_t bytes) override { fn_(send, recv, bytes); }

 private:
  int rank_, size_;
  allgather_fn fn_;
};

// Ranks that are threads of one process share one thread_group; each thread makes its own
// thread_bootstrap from it. The all-gather is a generation-counted barrier.
class thread_group {
 public:
  explicit thread_group(int size) : size_(size), slots_(std::size_t(size)) {
    if (size < 1) throw error(errc::invalid_argument, "thread_group: size must be positive");
  }
  int size() const { return size_; }

  void allgather(int rank, const void* send, void* recv, std::size_t bytes) {
    std::unique_lock lock(mu_);
    const std::size_t gen = generation_;
    slots_[std::size_t(rank)].assign(static_cast<const char*>(send), static_cast<const char*>(send) + bytes);
    if (++arrived_ == size_) {
      result_.clear();
      for (auto& s : slots_) {
        if (s.size() != bytes) {
          failed_ = true;
        }
        result_.insert(result_.end(), s.begin(), s.end());
      }
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != gen; });
    }
    if (failed_) throw error(errc::mismatch, "thread_group: ranks passed different all-gather sizes");
    std::memcpy(recv, result_.data(), bytes * std::size_t(size_));
  }

 private:
  int size_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::vector<char>> slots_;
  std::vector<char> result_;
  int arrived_ = 0;
  std::size_t generation_ = 0;
  bool failed_ = false;
};

class thread_bootstrap final : public bootstrap {
 public:
  thread_bootstrap(std::shared_ptr<thread_group> g, int rank) : g_(std::move(g)), rank_(rank) {
    if (!g_ || rank < 0 || rank >= g_->size())
      throw error(errc::invalid_argument, "thread_bootstrap: rank " + std::to_string(rank) + " outside the group");
  }
  int rank() const override { return rank_; }
  int size() const override { return g_->size(); }
  void allgather(const void* send, void* recv, std::size_t bytes) override { g_->allgather(rank_, send, recv, bytes); }

 private:
  std::shared_ptr<thread_group> g_;
  int rank_;
};

}  // namespace qreduce
