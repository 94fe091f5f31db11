// qreduce/bootstrap/socket.hpp: a rendezvous over a local socket, for standalone processes.
//
// Rank 0 listens on a Unix socket file named after the job, in a directory only this user can enter:
// $QREDUCE_BOOTSTRAP_DIR (default /tmp) / qreduce-<effective uid> / <name>. Every rank creates or
// checks that directory (a directory, not a link, owned by this user, no access for anyone else)
// before it listens or connects, so no other user can take the name or reach the socket; and both
// sides check the other's credentials (SO_PEERCRED): rank 0 admits only processes of this user, and a
// connecting rank talks only to a listener of this user. A connection that does not introduce
// itself within a second is dropped, so a silent one cannot stall the others' admission. Rank 0
// removes the socket file once every rank joined (or it failed); a file left by a crashed job (no
// one listening) is replaced, a live job's is an error. Every step is bounded by the timeout: a rank
// that never comes makes the others fail with an error naming it. All-gathers go through rank 0.
#pragma once
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>
#include "../config.hpp"
#include "bootstrap.hpp"

namespace qreduce {

class socket_bootstrap final : public bootstrap {
 public:
  // name: the job's rendezvous name, the same on every rank (e.g. from an environment variable): 1 to
  // 80 characters, no '/', not "." or "..".
  socket_bootstrap(int rank, int size, const std::string& name, std::chrono::milliseconds timeout = std::chrono::seconds(60))
      : rank_(rank), size_(size), timeout_(timeout) {
    if (size < 1 || rank < 0 || rank >= size)
      throw error(errc::invalid_argument, "socket_bootstrap: rank " + std::to_string(rank) + " outside world size " + std::to_string(size));
    if (name.empty() || name.size() > 80 || name.find('/') != std::string::npos || name.find('\0') != std::string::npos || name == "." ||
        name == "..")
      throw error(errc::invalid_argument, "socket_bootstrap: name must have 1 to 80 characters, no '/', and not be \".\" or \"..\"");
    if (size_ == 1) return;
    addr_ = make_address(private_dir() + "/" + name);
    try {
      if (rank_ == 0) listen_and_admit();
      else connect_to_root();
    } catch (...) {  // the destructor does not run for a constructor that throws
      close_all();
      throw;
    }
  }
  ~socket_bootstrap() override { close_all(); }

  // The directory the rendezvous sockets of this user live in: created (mode 0700) if missing, and
  // refused unless it is a directory (not a link) owned by this user with no access for anyone else.
  static std::string private_dir() {
    const char* base = std::getenv("QREDUCE_BOOTSTRAP_DIR");
    const std::string dir = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/qreduce-" + std::to_string(::geteuid());
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
      throw error(errc::bootstrap, "socket_bootstrap: cannot create " + dir + ": " + std::strerror(errno));
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0) throw error(errc::bootstrap, "socket_bootstrap: " + dir + ": " + std::strerror(errno));
    if (!S_ISDIR(st.st_mode)) throw error(errc::bootstrap, "socket_bootstrap: " + dir + " is not a directory (a link or a file is refused)");
    if (st.st_uid != ::geteuid())
      throw error(errc::bootstrap, "socket_bootstrap: " + dir + " is owned by uid " + std::to_string(st.st_uid) + ", not by this user (uid " +
                                       std::to_string(::geteuid()) + "): another user may have taken it; remove it or set QREDUCE_BOOTSTRAP_DIR");
    if ((st.st_mode & 077) != 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%03o", unsigned(st.st_mode & 0777));
      throw error(errc::bootstrap, "socket_bootstrap: " + dir + " has mode " + mode + ": other users can enter it (it must be 700)");
    }
    return dir;
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

  sockaddr_un make_address(const std::string& path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof a.sun_path)
      throw error(errc::invalid_argument, "socket_bootstrap: " + path + " is longer than a socket path can be (" +
                                              std::to_string(sizeof a.sun_path - 1) + " characters): a shorter name or QREDUCE_BOOTSTRAP_DIR");
    std::memcpy(a.sun_path, path.data(), path.size());
    addr_len_ = socklen_t(offsetof(sockaddr_un, sun_path) + path.size() + 1);
    path_ = path;
    return a;
  }

  void close_all() {
    for (int& fd : peers_)
      if (fd >= 0) ::close(std::exchange(fd, -1));
    if (root_ >= 0) ::close(std::exchange(root_, -1));
  }

  // The uid of the process at the other end of a connected socket.
  static bool peer_uid(int fd, uid_t& uid) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
    uid = cred.uid;
    return true;
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

  // Whether a process listens on the socket file (a live job), as opposed to a file a crashed job
  // left. Asked twice, 50 ms apart: a job that has just bound the name listens a moment later.
  bool someone_listens() const {
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      if (fd < 0) return false;
      const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr_), addr_len_);
      const bool live = rc == 0 || errno == EAGAIN;  // EAGAIN: listening, its backlog full
      ::close(fd);
      if (live) return true;
    }
    return false;
  }

  void listen_and_admit() {
    const int ls = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ls < 0) throw error(errc::bootstrap, std::string("socket_bootstrap: socket: ") + std::strerror(errno));
    int rc = ::bind(ls, reinterpret_cast<const sockaddr*>(&addr_), addr_len_);
    if (rc != 0 && errno == EADDRINUSE && !someone_listens()) {  // left by a crashed job: replace it
      ::unlink(path_.c_str());
      rc = ::bind(ls, reinterpret_cast<const sockaddr*>(&addr_), addr_len_);
    }
    if (rc != 0) {
      const int e = errno;
      ::close(ls);
      throw error(errc::bootstrap, "socket_bootstrap: cannot listen on " + path_ + (e == EADDRINUSE ? " (another job is using this name): " : ": ") +
                                       std::strerror(e));
    }
    struct stat bound {};
    if (::listen(ls, 64) != 0 || ::stat(path_.c_str(), &bound) != 0) {
      const int e = errno;
      ::close(ls);
      throw error(errc::bootstrap, "socket_bootstrap: cannot listen on " + path_ + ": " + std::strerror(e));
    }
    // Nobody joins after admission: the socket file goes when it ends (success or not), before the
    // socket closes, and only if it is still this job's (a job that replaced it keeps its own).
    const auto close_listener = [&] {
      struct stat now {};
      if (::stat(path_.c_str(), &now) == 0 && now.st_ino == bound.st_ino && now.st_dev == bound.st_dev) ::unlink(path_.c_str());
      ::close(ls);
    };
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
        uid_t uid = 0;
        if (!peer_uid(fd, uid) || uid != ::geteuid()) {
          ::close(fd);  // another user: not admitted
          continue;
        }
        hello h{};
        try {  // a connection that does not introduce itself at once is dropped: it cannot stall the others
          const auto hello_deadline = clock::now() + hello_timeout;
          read_all(fd, &h, sizeof h, hello_deadline < deadline ? hello_deadline : deadline, -1);
        } catch (const error&) {
          ::close(fd);
          continue;
        }
        if (h.magic != magic) {
          ::close(fd);
          continue;
        }
        peers_.push_back(fd);  // so that fail_all reaches it too
        if (h.abi != abi_version)
          fail_all(errc::mismatch,
                   "rank " + std::to_string(h.rank) + " runs qreduce ABI " + std::to_string(h.abi) + ", rank 0 runs " + std::to_string(abi_version));
        if (h.size != size_)
          fail_all(errc::mismatch, "rank " + std::to_string(h.rank) + " says the world has " + std::to_string(h.size) + " ranks, rank 0 says " +
                                       std::to_string(size_));
        if (h.rank <= 0 || h.rank >= size_ || peers_[std::size_t(h.rank)] >= 0)
          fail_all(errc::mismatch, "two processes claim rank " + std::to_string(h.rank));
        peers_.pop_back();
        peers_[std::size_t(h.rank)] = fd;
        ++joined;
      }
    } catch (...) {
      close_listener();
      throw;
    }
    close_listener();
  }

  void connect_to_root() {
    const auto deadline = clock::now() + timeout_;
    for (;;) {
      root_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (root_ < 0) throw error(errc::bootstrap, std::string("socket_bootstrap: socket: ") + std::strerror(errno));
      if (::connect(root_, reinterpret_cast<const sockaddr*>(&addr_), addr_len_) == 0) break;
      ::close(root_);
      root_ = -1;
      if (clock::now() > deadline)
        throw error(errc::timeout, "socket_bootstrap: rank 0 did not open the rendezvous within " + std::to_string(timeout_.count()) + " ms");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    uid_t uid = 0;
    if (!peer_uid(root_, uid) || uid != ::geteuid()) {
      ::close(root_);
      root_ = -1;
      throw error(errc::bootstrap, "socket_bootstrap: the rendezvous " + path_ + " is held by uid " + std::to_string(uid) +
                                       ", not by this user (uid " + std::to_string(::geteuid()) + "): nothing was sent to it");
    }
    const hello h{magic, abi_version, rank_, size_};
    write_all(root_, &h, sizeof h, deadline, 0);
  }

  static constexpr std::chrono::seconds hello_timeout{1};

  int rank_, size_;
  std::chrono::milliseconds timeout_;
  sockaddr_un addr_{};
  socklen_t addr_len_ = 0;
  std::string path_;
  std::vector<int> peers_;
  int root_ = -1;
};

}  // namespace qreduce
