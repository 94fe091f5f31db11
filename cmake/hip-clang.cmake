# CMake toolchain for HIP with Debian's clang-22 and the HIP headers and device libraries that
# tools/setup.sh unpacks into .toolchain/rocm (nothing installed system-wide):
#   cmake -S . -B build/hip -DQREDUCE_BUILD_HIP=ON -DCMAKE_TOOLCHAIN_FILE=cmake/hip-clang.cmake
# Another ROCm: -DQREDUCE_ROCM=/opt/rocm (its clang and device libraries are found the same way).
set(QREDUCE_ROCM "${CMAKE_CURRENT_LIST_DIR}/../.toolchain/rocm/usr" CACHE PATH "the ROCm tree HIP builds against")
file(GLOB qreduce_bitcode LIST_DIRECTORIES true "${QREDUCE_ROCM}/lib/llvm-*/lib/clang/*/amdgcn/bitcode" "${QREDUCE_ROCM}/amdgcn/bitcode")
list(GET qreduce_bitcode 0 qreduce_bitcode)
if(NOT CMAKE_HIP_COMPILER)
  find_program(CMAKE_HIP_COMPILER NAMES clang++-22 clang++ REQUIRED)
endif()
set(CMAKE_HIP_COMPILER_ROCM_ROOT "${QREDUCE_ROCM}")
# clang-22 no longer defines __AMDGCN_WAVEFRONT_SIZE; -isystem: the HIP headers' own warnings are theirs
set(CMAKE_HIP_FLAGS_INIT "--rocm-path=${QREDUCE_ROCM} --rocm-device-lib-path=${qreduce_bitcode} -isystem ${QREDUCE_ROCM}/include \
-D__AMDGCN_WAVEFRONT_SIZE=64 -Wno-unused-command-line-argument")
# The unpacked runtime needs a newer C library than Debian 12's: CMake's compiler check compiles
# without linking.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
