#!/usr/bin/env bash
# The test command (CI runs it through .ci/run). Steps, each reported as passed or failed:
#   source format (.clang-format), host tests (doctest, g++ and clang-22), self-contained headers,
#   install + find_package (C++, CUDA and HIP consumers), the dispatch table matches its generator,
#   every example/test/benchmark compiles for sm_90 and sm_100a (CMake, nvcc) and the examples for
#   gfx942 and gfx950 (CMake, clang-22 HIP), the machine-code checks, the Python package's pure-Python
#   tests, and, where a GPU is visible, the GPU tests.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash tools/setup.sh || exit 1
b=build/test
mkdir -p "$b"
nvcc="${NVCC:-/usr/local/cuda/bin/nvcc}"
nv_build="$b/cuda"  # CMake build trees of the GPU programs (CMakeLists.txt: QREDUCE_BUILD_CUDA / _HIP)
hip_build="$b/hip"
passed=0
failed=0
failures=()
step() {  # name, command...
  local name="$1"
  shift
  local t0=$SECONDS
  printf '  ....  %s\n' "$name"  # a long compile should not look like a hang
  if "$@" >"$b/$name.log" 2>&1; then
    passed=$((passed + 1))
    printf '  pass  %-34s %4ds\n' "$name" $((SECONDS - t0))
  else
    failed=$((failed + 1))
    failures+=("$name")
    printf '  FAIL  %-34s %4ds (log: %s)\n' "$name" $((SECONDS - t0)) "$b/$name.log"
    tail -n 30 "$b/$name.log" | sed 's/^/        /'
  fi
}

host_gcc() {
  cmake -S . -B "$b/gcc" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++ &&
    cmake --build "$b/gcc" -j2 && (cd "$b/gcc" && ctest --output-on-failure) &&
    "$b/gcc/tests/host/qreduce_host_tests" | tail -n 4
}
host_clang() {
  cmake -S . -B "$b/clang" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++-22 &&
    cmake --build "$b/clang" -j2 && "$b/clang/tests/host/qreduce_host_tests" | tail -n 4
}
headers() {  # every header that needs no GPU runtime compiles alone as plain C++
  local h
  for h in $(cd include && find qreduce -name '*.hpp' | sort); do
    case "$h" in qreduce/epilogue/outputs.hpp) ;; qreduce/runtime.hpp | qreduce/comm.hpp | qreduce/epilogue/* | qreduce/algorithm/* ) continue ;; esac
    echo "#include <$h>" | g++ -std=c++20 -Wall -Wextra -Werror -Iinclude -x c++ -fsyntax-only - || { echo "not self-contained: $h"; return 1; }
  done
}
install_consumer() {  # find_package from a C++ project, a CUDA one building example 01 (sm_90), a HIP one (gfx950)
  rm -rf "$b/prefix" "$b/consumer" "$b/consumer-hip"
  cmake --install "$b/gcc" --prefix "$b/prefix" &&
    cmake -S tests/install_consumer -B "$b/consumer" -DCMAKE_PREFIX_PATH="$root/$b/prefix" \
      -DQREDUCE_CONSUMER_CUDA_EXAMPLE="$root/examples/01_allreduce/main.cpp" -DCMAKE_CUDA_COMPILER="$nvcc" \
      -DCMAKE_CUDA_ARCHITECTURES=90 &&
    cmake --build "$b/consumer" && "$b/consumer/consumer" &&
    { CUDA_VISIBLE_DEVICES= "$b/consumer/cuda_consumer"; [ $? -eq 2 ]; } &&  # built, runs, says "no GPU" here
    cmake -S tests/install_consumer -B "$b/consumer-hip" -DCMAKE_PREFIX_PATH="$root/$b/prefix" \
      -DQREDUCE_CONSUMER_HIP_EXAMPLE="$root/examples/01_allreduce/main.cpp" -DCMAKE_TOOLCHAIN_FILE="$root/cmake/hip-clang.cmake" \
      -DCMAKE_HIP_ARCHITECTURES=gfx950 &&
    cmake --build "$b/consumer-hip" --target hip_consumer
}
dispatch_table() {  # the committed table is what its generator writes from the sources its header names
  local args=() line
  while IFS= read -r line; do
    case "$line" in
      *"performance model"*) args+=(--model) ;;
      *"measured: "*) args+=(--tuning "${line##*, }") ;;
    esac
  done < <(sed -n '/^\/\/ Generated/,/^\/\/ arch:/p' include/qreduce/dispatch_table.hpp)
  [ ${#args[@]} -gt 0 ] || { echo "dispatch_table.hpp names no source"; return 1; }
  python3 tools/gen_dispatch.py "${args[@]}" --out "$b/dispatch_table.hpp" &&
    diff <(grep -v '^// Generated' include/qreduce/dispatch_table.hpp) <(grep -v '^// Generated' "$b/dispatch_table.hpp")
}
accuracy_tool() {  # the table (the tool built with the host tests), and bad command lines refused (not a signal) with the option named
  local tool="$b/gcc/qreduce_accuracy"
  "$tool" --world 2 --values 65536 | tail -n 5 || return 1
  local args want out rc
  while IFS='|' read -r args want; do
    out=$("$tool" $args 2>&1)
    rc=$?
    echo "qreduce_accuracy $args -> $rc: ${out%%$'\n'*}"
    [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] && grep -qF -- "$want" <<<"$out" || return 1
  done <<'CASES'
--world abc|--world abc: expected one of 2, 4, 8
--world 3|--world 3: expected one of 2, 4, 8
--values -5|--values -5: expected a positive multiple of 32
--values 1.5|--values 1.5: expected a positive multiple of 32
--csv /nonexistent/a.csv|cannot write /nonexistent/a.csv
--bogus|unknown option --bogus
--world|--world needs a value
CASES
}
nv_configure() {  # the GPU programs for sm_90 and sm_100a (CMakeLists.txt's defaults)
  rm -rf "$nv_build"
  cmake -S . -B "$nv_build" -DCMAKE_BUILD_TYPE=Release -DQREDUCE_BUILD_TESTS=OFF -DQREDUCE_BUILD_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc"
}
hip_configure() {  # the examples for gfx942 and gfx950, with the toolchain tools/setup.sh unpacked
  rm -rf "$hip_build"
  cmake -S . -B "$hip_build" -DCMAKE_BUILD_TYPE=Release -DQREDUCE_BUILD_TESTS=OFF -DQREDUCE_BUILD_HIP=ON \
    -DCMAKE_TOOLCHAIN_FILE="$root/cmake/hip-clang.cmake"
}
examples_without_gpu() {  # with no GPU visible each example says so and exits with status 2, not a signal
  local ex n out rc
  for ex in examples/*/main.cpp; do
    n=$(basename "$(dirname "$ex")")
    out=$(CUDA_VISIBLE_DEVICES= HIP_VISIBLE_DEVICES= "$nv_build/examples/example_$n" 2>&1)
    rc=$?
    echo "$n: exit $rc: $out"
    [ "$rc" -eq 2 ] && grep -q "no GPU visible" <<<"$out" || return 1
  done
}
python_tests() {
  python3 -m unittest discover -s python/tests -v
}

echo "test: host"
source_format() {  # every tracked C++/CUDA source follows .clang-format
  local files
  mapfile -t files < <(git ls-files '*.hpp' '*.cpp' '*.cu' | grep -v '^docs/')
  clang-format --dry-run -Werror "${files[@]}"
}
step format source_format
step host-tests-gcc host_gcc
step host-tests-clang22 host_clang
step headers-self-contained headers
step install-find-package install_consumer
step dispatch-table-generated dispatch_table
step accuracy-tool accuracy_tool
echo "test: NVIDIA builds (CMake, sm_90 + sm_100a)"
step nv-configure nv_configure
step nv-test-codecs-device cmake --build "$nv_build" --target test_codecs_device
step nv-test-allreduce cmake --build "$nv_build" --target test_allreduce
step nv-bench cmake --build "$nv_build" --target qreduce_bench
for ex in examples/*/main.cpp; do
  n=$(basename "$(dirname "$ex")")
  step "nv-example-$n" cmake --build "$nv_build" --target "example_$n"
done
step examples-without-gpu examples_without_gpu
echo "test: AMD builds (CMake, gfx942 + gfx950)"
step hip-configure hip_configure
for ex in examples/*/main.cpp; do
  n=$(basename "$(dirname "$ex")")
  step "hip-example-$n" cmake --build "$hip_build" --target "example_${n}_hip"
done
step isa-fast-paths bash tests/isa/check.sh "$b/isa"
step python python_tests

echo "test: GPU"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  step gpu-codecs "$nv_build/tests/gpu/test_codecs_device"
  for w in 2 4 8; do step "gpu-allreduce-threads-$w" timeout 900 "$nv_build/tests/gpu/test_allreduce" --ranks $w --mode threads; done
  for w in 2 4; do step "gpu-allreduce-procs-$w" timeout 600 "$nv_build/tests/gpu/test_allreduce" --ranks $w --mode procs --quick; done
else
  echo "  skip  GPU tests: no GPU visible here (on a machine with an NVIDIA GPU: tools/gpu_tests.sh)"
fi

echo
[ ${#failures[@]} -gt 0 ] && echo "failed steps: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
