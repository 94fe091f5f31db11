// qreduce/bootstrap/process.hpp: which process a rank is, and whether it still runs, from the host.
//
// A rank's process is named by its pid, its start time (so that a pid the kernel reused is not taken
// for it), its pid namespace and the kernel's boot id (a pid means something only within one
// namespace of one boot of one host). Ranks exchange these at creation; a communicator then tells a
// peer whose process exited from one that is merely late (communicator::dead_peers, and check()'s
// error after a timeout). Linux /proc only; elsewhere every peer's liveness is unknown.
#pragma once
#include <sys/stat.h>
#include <unistd.h>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace qreduce {

struct process_id {
  std::int32_t pid = 0;
  std::uint64_t start = 0;  // clock ticks from boot to its start (/proc/<pid>/stat, field 22)
  std::uint64_t pid_ns = 0;  // inode of its pid namespace; 0: unknown
  char boot_id[40] = {};  // /proc/sys/kernel/random/boot_id

  // This process.
  static process_id self() {
    process_id p = of_pid(std::int32_t(::getpid()));
    struct stat ns {};
    if (::stat("/proc/self/ns/pid", &ns) == 0) p.pid_ns = std::uint64_t(ns.st_ino);
    std::ifstream b("/proc/sys/kernel/random/boot_id");
    std::string id;
    if (b >> id) id.copy(p.boot_id, sizeof p.boot_id - 1);
    return p;
  }
  // Process `pid` of this namespace as /proc shows it now (no namespace or boot: the caller's).
  static process_id of_pid(std::int32_t pid) {
    process_id p;
    p.pid = pid;
    char state = 0;
    stat_of(pid, state, p.start);
    return p;
  }
  // Reads /proc/<pid>/stat: the state letter and the start time; false if there is no such process.
  static bool stat_of(std::int32_t pid, char& state, std::uint64_t& start) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(f, line)) return false;
    const auto close = line.rfind(')');  // the command name, in parentheses, may hold spaces
    if (close == std::string::npos) return false;
    std::istringstream rest(line.substr(close + 1));
    std::string field;
    for (int k = 3; k <= 22 && rest >> field; ++k) {
      if (k == 3) state = field.empty() ? 0 : field[0];
      if (k == 22) {
        start = std::strtoull(field.c_str(), nullptr, 10);
        return true;
      }
    }
    return false;
  }
};

enum class liveness { alive, exited, unknown };

// Whether process `p` still runs, as this process can tell: unknown where its pid means nothing here
// (another host or boot, another pid namespace, no /proc); exited where no such process runs now (or
// only a zombie is left of it, or the pid now names a later process).
inline liveness process_liveness(const process_id& p) {
  static const process_id me = process_id::self();  // only its namespace and boot id are compared: fixed for life
  if (p.pid <= 0 || p.pid_ns == 0 || p.pid_ns != me.pid_ns || p.boot_id[0] == '\0' || std::strncmp(p.boot_id, me.boot_id, sizeof p.boot_id) != 0)
    return liveness::unknown;
  char state = 0;
  std::uint64_t start = 0;
  if (!process_id::stat_of(p.pid, state, start)) return liveness::exited;
  if (start != p.start || state == 'Z' || state == 'X') return liveness::exited;
  return liveness::alive;
}

}  // namespace qreduce
