// qreduce/qreduce.hpp: the umbrella header. Host-only translation units get the codecs, the options
// and dispatch; CUDA/HIP ones also get the communicator and the device API.
#pragma once
#include "bootstrap/bootstrap.hpp"
#include "bootstrap/socket.hpp"
#include "codec/all.hpp"
#include "config.hpp"
#include "dispatch.hpp"
#include "epilogue/outputs.hpp"
#include "options.hpp"
#if !QR_BACKEND_HOST
#include "algorithm/one_shot.hpp"
#include "algorithm/two_shot.hpp"
#include "comm.hpp"
#endif
