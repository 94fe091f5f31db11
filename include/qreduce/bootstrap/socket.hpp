// qreduce/bootstrap/socket.hpp: a rendezvous over a local socket, for standalone processes.
//
// Rank 0 listens on an abstract-namespace Unix socket named after the effective user id and the
// job name; the other ranks connect to it. Rank 0 admits a connection only when the kernel reports
// (SO_PEERCRED) the same effective user id: other users' processes, and other hosts, cannot join.
// Every step is bounded by the timeout: a rank that never comes makes the others fail with an error
// naming it. All-gathers go through rank 0.
#pragma once
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>
#include "../config.hpp"
#include "bootstrap.hpp"

namespace qreduce {

class socket_bootstrap final : public bootstrap {
 public:
  // name: the job's rendezvous name, the same on every rank (e.g. from an environment variable).
  socket_bootstrap(int rank, int size, const std::string& name, std::chrono::milliseconds timeout = std::chrono::seconds(60))
      : rank_(rank), size_(size), timeout_(timeout) {
    if (size < 1 || rank < 0 || rank >= size)
      throw error(errc::invalid_argument, "socket_bootstrap: rank " + std::to_string(rank) + " outside world size " + std::to_string(size));
    if (name.empty() || name.size() > 80) throw error(errc::invalid_argument, "socket_bootstrap: name must have 1 to 80 characters");
    addr_ = make_address(name);
    if (size_ == 1) return;
    if (rank_ == 0) listen_and_admit();
    else connect_to_root();
  }
  ~socket_bootstrap() override {
    for (int fd : peers_)
      if (fd >= 0) ::close(fd);
    if (root_ >= 0) ::close(root_);
  }
  socket_bootstrap(const socket_bootstrap&) = delete;
  socket_bootstrap& operator=(const socket_bootstrap&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void allgather(const void* send, void* recv, std::size_t bytes) override {
    auto* out = static_cast<char*>(recv);
    if (size_ == 1) {
      std::memcpy(out, send, bytes);
      return;
    }
    const auto deadline = clock::now() + timeout_;
    if (rank_ == 0) {
      std::memcpy(out, send, bytes);
      for (int r = 1; r < size_; ++r) {
        std::uint64_t n = 0;
        read_all(peers_[std::size_t(r)], &n, sizeof n, deadline, r);
        if (n != bytes) fail_all(errc::mismatch, "all-gather size differs on rank " + std::to_string(r));
        read_all(peers_[std::size_t(r)], out + std::size_t(r) * bytes, bytes, deadline, r);
      }
      for (int r = 1; r < size_; ++r) {
        const std::uint8_t ok = 1;
        write_all(peers_[std::size_t(r)], &ok, 1, deadline, r);
        write_all(peers_[std::size_t(r)], out, bytes * std::size_t(size_), deadline, r);
      }
    } else {
      const std::uint64_t n = bytes;
      write_all(root_, &n, sizeof n, deadline, 0);
      write_all(root_, send, bytes, deadline, 0);
      std::uint8_t ok = 0;
      read_all(root_, &ok, 1, deadline, 0);
      if (ok != 1) {  // rank 0 failed: its error, with its code (status_of)
        const errc c = ok >= failure_status && ok <= failure_status + std::uint8_t(errc::failed_state) ? errc(ok - failure_status) : errc::bootstrap;
        throw error(c, "socket_bootstrap: rank 0 reports: " + read_message(deadline));
      }
      read_all(root_, out, bytes * std::size_t(size_), deadline, 0);
    }
  }

 private:
  using clock = std::chrono::steady_clock;
  struct hello {
    std::uint32_t magic, abi;
    std::int32_t rank, size;
  };
  static constexpr std::uint32_t magic = 0x71726564u;  // "qred"

  sockaddr_un make_address(const std::string& name) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    const std::string path = "qreduce." + std::to_string(::geteuid()) + "." + name;
    std::memcpy(a.sun_path + 1, path.data(), path.size());  // sun_path[0] == 0: abstract namespace
    addr_len_ = socklen_t(offsetof(sockaddr_un, sun_path) + 1 + path.size());
    return a;
  }

  static int remaining_ms(clock::time_point deadline) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    return ms < 0 ? 0 : int(ms);
  }

  std::string who(int r) const { return r == 0 ? "rank 0" : "rank " + std::to_string(r); }

  void wait_io(int fd, short ev, clock::time_point deadline, int r) const {
    pollfd p{fd, ev, 0};
    for (;;) {
      const int rc = ::poll(&p, 1, remaining_ms(deadline));
      if (rc > 0) return;
      if (rc == 0) throw error(errc::timeout, "socket_bootstrap: " + who(r) + " did not answer within " + std::to_string(timeout_.count()) + " ms");
      if (errno != EINTR) throw error(errc::bootstrap, std::string("socket_bootstrap: poll: ") + std::strerror(errno));
    }
  }
  void read_all(int fd, void* buf, std::size_t n, clock::time_point deadline, int r) const {
    auto* p = static_cast<char*>(buf);
    while (n > 0) {
      wait_io(fd, POLLIN, deadline, r);
      const ssize_t k = ::recv(fd, p, n, 0);
      if (k == 0) throw error(errc::bootstrap, "socket_bootstrap: " + who(r) + " closed the connection");
      if (k < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        throw error(errc::bootstrap, "socket_bootstrap: recv from " + who(r) + ": " + std::strerror(errno));
      }
      p += k;
      n -= std::size_t(k);
    }
  }
  void write_all(int fd, const void* buf, std::size_t n, clock::time_point deadline, int r) const {
    auto* p = static_cast<const char*>(buf);
    while (n > 0) {
      wait_io(fd, POLLOUT, deadline, r);
      const ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
      if (k < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        throw error(errc::bootstrap, "socket_bootstrap: send to " + who(r) + ": " + std::strerror(errno));
      }
      p += k;
      n -= std::size_t(k);
    }
  }
  std::string read_message(clock::time_point deadline) const {
    std::uint32_t n = 0;
    read_all(root_, &n, sizeof n, deadline, 0);
    std::string m(n > 4096 ? 4096 : n, '\0');
    read_all(root_, m.data(), m.size(), deadline, 0);
    return m;
  }
  // The status byte after an all-gather: 1 = done, failure_status + the error code = rank 0 failed so.
  static constexpr std::uint8_t failure_status = 16;

  // Rank 0: tell every connected rank what went wrong (with the error's code), then throw it here too.
  [[noreturn]] void fail_all(errc c, const std::string& msg) {
    const auto deadline = clock::now() + std::chrono::seconds(2);
    for (std::size_t r = 1; r < peers_.size(); ++r) {
      if (peers_[r] < 0) continue;
      try {
        const std::uint8_t bad = std::uint8_t(failure_status + std::uint8_t(c));
        const auto n = std::uint32_t(msg.size());
        write_all(peers_[r], &bad, 1, deadline, int(r));
        write_all(peers_[r], &n, sizeof n, deadline, int(r));
        write_all(peers_[r], msg.data(), msg.size(), deadline, int(r));
      } catch (const error&) {
      }
    }
    throw error(c, "socket_bootstrap: " + msg);
  }

  void listen_and_admit() {
    const int ls = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ls < 0) throw error(errc::bootstrap, std::string("socket_bootstrap: socket: ") + std::strerror(errno));
    if (::bind(ls, reinterpret_cast<const sockaddr*>(&addr_), addr_len_) != 0) {
      const int e = errno;
      ::close(ls);
      throw error(errc::bootstrap, std::string("socket_bootstrap: cannot listen (is another job using this name?): ") + std::strerror(e));
    }
    ::listen(ls, 64);
    peers_.assign(std::size_t(size_), -1);
    const auto deadline = clock::now() + timeout_;
    int joined = 1;
    try {
      while (joined < size_) {
        pollfd p{ls, POLLIN, 0};
        const int rc = ::poll(&p, 1, remaining_ms(deadline));
        if (rc == 0) {
          std::string missing;
          for (int r = 1; r < size_; ++r)
            if (peers_[std::size_t(r)] < 0) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
          fail_all(errc::timeout, "rank(s) " + missing + " did not join within " + std::to_string(timeout_.count()) + " ms");
        }
        if (rc < 0) continue;
        const int fd = ::accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != ::geteuid()) {
          ::close(fd);  // another user: not admitted
          continue;
        }
        hello h{};
        try {
          read_all(fd, &h, sizeof h, deadline, -1);
        } catch (const error&) {
          ::close(fd);
          continue;
        }
        if (h.magic != magic) {
          ::close(fd);
          continue;
        }
        peers_.push_back(fd);  // so that fail_all reaches it too
        if (h.abi != abi_version) fail_all(errc::mismatch, "rank " + std::to_string(h.rank) + " runs qreduce ABI " + std::to_string(h.abi) + ", rank 0 runs " + std::to_string(abi_version));
        if (h.size != size_) fail_all(errc::mismatch, "rank " + std::to_string(h.rank) + " says the world has " + std::to_string(h.size) + " ranks, rank 0 says " + std::to_string(size_));
        if (h.rank <= 0 || h.rank >= size_ || peers_[std::size_t(h.rank)] >= 0) fail_all(errc::mismatch, "two processes claim rank " + std::to_string(h.rank));
        peers_.pop_back();
        peers_[std::size_t(h.rank)] = fd;
        ++joined;
      }
    } catch (...) {
      ::close(ls);
      throw;
    }
    ::close(ls);
  }

  void connect_to_root() {
    const auto deadline = clock::now() + timeout_;
    for (;;) {
      root_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (root_ < 0) throw error(errc::bootstrap, std::string("socket_bootstrap: socket: ") + std::strerror(errno));
      if (::connect(root_, reinterpret_cast<const sockaddr*>(&addr_), addr_len_) == 0) break;
      ::close(root_);
      root_ = -1;
      if (clock::now() > deadline) throw error(errc::timeout, "socket_bootstrap: rank 0 did not open the rendezvous within " + std::to_string(timeout_.count()) + " ms");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const hello h{magic, abi_version, rank_, size_};
    write_all(root_, &h, sizeof h, deadline, 0);
  }

  int rank_, size_;
  std::chrono::milliseconds timeout_;
  sockaddr_un addr_{};
  socklen_t addr_len_ = 0;
  std::vector<int> peers_;
  int root_ = -1;
};

}  // namespace qreduce
