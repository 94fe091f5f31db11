#!/usr/bin/env bash
# The GPU tests, for a machine with an NVIDIA GPU, nvcc and CMake: builds the GPU test programs and
# the examples for sm_90 + sm_100a through CMake (CMakeLists.txt, QREDUCE_BUILD_CUDA), checks the SASS
# of the fast paths, and runs every GPU test with the ranks as threads and as processes. Logs go to
# ${OUT:-build/gpu-tests}.
#   tools/gpu_tests.sh [--quick] [--no-python] [--archs "90 100a"]
# --archs: the targets the test programs are built for (default sm_90 and sm_100a; the machine-code
# check always builds both); --no-python: skip the PyTorch extension and its test.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
quick=()
python=1
archs="90 100a"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=(--quick) ;;
    --no-python) python=0 ;;
    --archs) archs="$2"; shift ;;
    *) echo "gpu_tests.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_tests: no NVIDIA GPU visible here: nothing to run (tools/test.sh builds and checks what needs no GPU)"
  exit 0
fi
log="${OUT:-build/gpu-tests}"
b=build/gpu-tests
mkdir -p "$log" "$b"
log="$(cd "$log" && pwd)"  # absolute: the PyTorch step runs from python/
export PATH="$PATH:/usr/local/cuda/bin"
cuda_archs=""
for a in $archs; do cuda_archs="${cuda_archs:+$cuda_archs;}$a-real"; done
passed=0
failed=0
step() {
  local name="$1"
  shift
  local t0=$SECONDS
  if "$@" >"$log/$name.log" 2>&1; then
    passed=$((passed + 1)); printf '  pass  %-30s %4ds  %s\n' "$name" $((SECONDS - t0)) "$(grep -E 'passed|SKIPPED' "$log/$name.log" | tail -n1)"
  else
    failed=$((failed + 1)); printf '  FAIL  %-30s %4ds\n' "$name" $((SECONDS - t0)); tail -n 20 "$log/$name.log" | sed 's/^/        /'
  fi
}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -n1
[ $python -eq 1 ] && (cd python && QREDUCE_CUDA_ARCHS=90 python3 setup.py build_ext --inplace >"$log/python-build.log" 2>&1) &
if ! { cmake -S . -B "$b" -DCMAKE_BUILD_TYPE=Release -DQREDUCE_BUILD_TESTS=OFF -DQREDUCE_BUILD_CUDA=ON -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" \
         -DCMAKE_CUDA_ARCHITECTURES="$cuda_archs" &&
       cmake --build "$b" -j "$(nproc)" --target test_codecs_device test_allreduce $(for ex in examples/*/main.cpp; do echo "example_$(basename "$(dirname "$ex")")"; done); } \
       >"$log/build.log" 2>&1; then
  echo "gpu_tests: the build failed ($log/build.log)"; tail -n 20 "$log/build.log"; wait; exit 1
fi
wait
run_example() {  # two processes sharing the GPU(s)
  local exe="$1" pids=() rc=0
  for r in 0 1; do QREDUCE_RANK=$r QREDUCE_WORLD=2 "$exe" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  return $rc
}
step isa-sass bash tests/isa/check.sh "$b/isa"
step codecs-device $b/tests/gpu/test_codecs_device
for w in 2 4 8; do step "allreduce-threads-$w" timeout 900 $b/tests/gpu/test_allreduce --ranks $w --mode threads "${quick[@]}"; done
for w in 2 4 8; do step "allreduce-procs-$w" timeout 300 $b/tests/gpu/test_allreduce --ranks $w --mode procs --quick; done
for ex in examples/*/main.cpp; do n=$(basename "$(dirname "$ex")"); step "example-$n" run_example "$b/examples/example_$n"; done
[ $python -eq 1 ] && step python-torch env PYTHONPATH=python python3 python/tests/gpu_torch.py 2
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
