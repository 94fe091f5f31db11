#!/usr/bin/env bash
# The GPU tests, for a machine with an NVIDIA GPU and nvcc (the device machine): builds the GPU test
# programs for sm_90 + sm_100a, checks the SASS of the fast paths, and runs every GPU test with the
# ranks as threads and as processes. Logs go to ${OUT:-build/gpu-tests}.
#   tools/gpu_tests.sh [--quick]
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
quick=()
[ "${1:-}" = "--quick" ] && quick=(--quick)
log="${OUT:-build/gpu-tests}"
b=build/gpu-tests
mkdir -p "$log" "$b"
export PATH="$PATH:/usr/local/cuda/bin"
nv=(nvcc -std=c++20 -O3 -Iinclude -gencode arch=compute_90,code=sm_90 -gencode arch=compute_100a,code=sm_100a)
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
"${nv[@]}" -o $b/test_codecs_device tests/gpu/test_codecs_device.cu &
"${nv[@]}" -o $b/test_allreduce tests/gpu/test_allreduce.cu &
wait
step isa-sass bash tests/isa/check.sh "$b/isa"
step codecs-device $b/test_codecs_device
for w in 2 4 8; do step "allreduce-threads-$w" $b/test_allreduce --ranks $w --mode threads "${quick[@]}"; done
for w in 2 4 8; do step "allreduce-procs-$w" $b/test_allreduce --ranks $w --mode procs --quick; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
