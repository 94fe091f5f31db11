// bench/nccl_loader.hpp: NCCL loaded at run time (dlopen), so the benchmark builds without libnccl
// and runs the NCCL baseline wherever the library is installed.
#pragma once
#include <dlfcn.h>
#include <nccl.h>
#include <stdexcept>
#include <string>

struct nccl_api {
  void* lib = nullptr;
  decltype(&ncclGetUniqueId) get_unique_id = nullptr;
  decltype(&ncclCommInitRank) comm_init_rank = nullptr;
  decltype(&ncclAllReduce) all_reduce = nullptr;
  decltype(&ncclCommDestroy) comm_destroy = nullptr;
  decltype(&ncclGetErrorString) error_string = nullptr;
  decltype(&ncclGetVersion) get_version = nullptr;

  bool load() {
    for (const char* name : {"libnccl.so.2", "libnccl.so"}) {
      lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (lib) break;
    }
    if (!lib) return false;
    get_unique_id = reinterpret_cast<decltype(get_unique_id)>(dlsym(lib, "ncclGetUniqueId"));
    comm_init_rank = reinterpret_cast<decltype(comm_init_rank)>(dlsym(lib, "ncclCommInitRank"));
    all_reduce = reinterpret_cast<decltype(all_reduce)>(dlsym(lib, "ncclAllReduce"));
    comm_destroy = reinterpret_cast<decltype(comm_destroy)>(dlsym(lib, "ncclCommDestroy"));
    error_string = reinterpret_cast<decltype(error_string)>(dlsym(lib, "ncclGetErrorString"));
    get_version = reinterpret_cast<decltype(get_version)>(dlsym(lib, "ncclGetVersion"));
    return get_unique_id && comm_init_rank && all_reduce && comm_destroy && error_string && get_version;
  }
  void check(ncclResult_t r, const char* what) const {
    if (r != ncclSuccess) throw std::runtime_error(std::string(what) + ": " + error_string(r));
  }
};
