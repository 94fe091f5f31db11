# CMake toolchain for HIP with Debian's clang-22 and the HIP headers and device libraries that
# tools/setup.sh unpacks into .toolchain/rocm (nothing installed system-wide):
#   cmake -S . -B build/hip -DQREDUCE_BUILD_HIP=ON -DCMAKE_TOOLCHAIN_FILE=cmake/hip-clang.cmake
# Another ROCm: -DQREDUCE_ROCM=/opt/rocm (its device libraries are found the same way; the compiler
# is CMAKE_HIP_COMPILER, else clang++-22 or clang++ on the PATH).
set(QREDUCE_ROCM "${CMAKE_CURRENT_LIST_DIR}/../.toolchain/rocm/usr" CACHE PATH "the ROCm tree HIP builds against")
file(GLOB qreduce_bitcode LIST_DIRECTORIES true "${QREDUCE_ROCM}/lib/llvm-*/lib/clang/*/amdgcn/bitcode" "${QREDUCE_ROCM}/amdgcn/bitcode")
if(NOT qreduce_bitcode)
  message(FATAL_ERROR "no AMD device libraries under ${QREDUCE_ROCM} (run tools/setup.sh, or set QREDUCE_ROCM)")
endif()
list(GET qreduce_bitcode 0 qreduce_bitcode)
if(NOT CMAKE_HIP_COMPILER)
  find_program(CMAKE_HIP_COMPILER NAMES clang++-22 clang++ REQUIRED)
endif()
set(CMAKE_HIP_COMPILER_ROCM_ROOT "${QREDUCE_ROCM}")
# clang-22 no longer defines __AMDGCN_WAVEFRONT_SIZE; -isystem: the HIP headers' own warnings are theirs
set(CMAKE_HIP_FLAGS_INIT "--rocm-path=${QREDUCE_ROCM} --rocm-device-lib-path=${qreduce_bitcode} -isystem ${QREDUCE_ROCM}/include \
-D__AMDGCN_WAVEFRONT_SIZE=64 -Wno-unused-command-line-argument")
# CMake 3.25 does not identify clang-22 as a HIP compiler, so it has no flags of its own per build
# type: these are clang's usual ones.
set(CMAKE_HIP_FLAGS_RELEASE_INIT "-O3 -DNDEBUG")
set(CMAKE_HIP_FLAGS_RELWITHDEBINFO_INIT "-O2 -g -DNDEBUG")
set(CMAKE_HIP_FLAGS_DEBUG_INIT "-O0 -g")
# The unpacked runtime needs a newer C library than Debian 12's: CMake's compiler check compiles
# without linking.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
