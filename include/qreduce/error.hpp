// qreduce/error.hpp: the one exception type qreduce throws, with a category a caller can test.
#pragma once
#include <stdexcept>
#include <string>

namespace qreduce {

enum class errc {
  invalid_argument,  // bad input to a call: nothing was written
  mismatch,  // ranks of one communicator disagree (world size, workspace, version, ...)
  timeout,  // a peer did not arrive in time (a kernel's bounded wait, or the bootstrap)
  runtime,  // the CUDA/HIP runtime reported an error
  bootstrap,  // the rendezvous failed (socket errors, refused peers)
  unsupported,  // the build or the device cannot do what was asked
  failed_state,  // the communicator is unusable after an earlier timeout, or was destroyed
};

inline const char* errc_name(errc c) {
  switch (c) {
    case errc::invalid_argument: return "invalid argument";
    case errc::mismatch: return "rank mismatch";
    case errc::timeout: return "timeout";
    case errc::runtime: return "runtime error";
    case errc::bootstrap: return "bootstrap error";
    case errc::unsupported: return "unsupported";
    case errc::failed_state: return "communicator unusable";
  }
  return "error";
}

class error : public std::runtime_error {
 public:
  error(errc c, const std::string& what) : std::runtime_error("qreduce: " + what), code_(c) {}
  errc code() const noexcept { return code_; }

 private:
  errc code_;
};

}  // namespace qreduce
