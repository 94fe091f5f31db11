#!/usr/bin/env bash
# The main job: qreduce's all-reduce benchmark against NCCL on the local GPUs, then the codec
# throughput, with CSV/JSON results and plots in build/bench (or --out DIR).
# Without a GPU it says so and runs what the CPU can: the codec accuracy table.
#   tools/run.sh [qreduce_bench options]      e.g. --ranks 2 --max-size 64M
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out=build/bench
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do [ "${args[$i]}" = "--out" ] && out="${args[$((i + 1))]}"; done
mkdir -p "$out" build

gpus=0
if command -v nvidia-smi >/dev/null 2>&1; then gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true); fi
if [ "$gpus" -eq 0 ]; then
  echo "run: no GPU visible on this machine: the all-reduce benchmark needs one (see README: the device machine)."
  echo "run: running what the CPU can: the codec accuracy table (the host reference of the exact bytes)."
  bash tools/setup.sh --host >/dev/null
  g++ -std=c++20 -O2 -Iinclude bench/accuracy.cpp -o build/qreduce_accuracy
  ./build/qreduce_accuracy --csv "$out/accuracy.csv" --markdown "$out/accuracy.md"
  echo "run: wrote $out/accuracy.csv and $out/accuracy.md"
  exit 0
fi

nvcc="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
echo "run: $gpus GPU(s): building qreduce_bench for this GPU"
"$nvcc" -std=c++20 -O3 -Iinclude -arch=native -o build/qreduce_bench bench/bench.cu -ldl
./build/qreduce_bench "${args[@]}"
./build/qreduce_bench codecs --out "$out"
# PyTorch's symmetric-memory all-reduce as a second baseline, where PyTorch is installed
if python3 -c "import torch.distributed._symmetric_memory" 2>/dev/null; then
  ranks=()
  for ((i = 0; i < ${#args[@]}; i++)); do [ "${args[$i]}" = "--ranks" ] && ranks=(--ranks "${args[$((i + 1))]}"); done
  python3 python/bench/symm_mem.py "${ranks[@]}" --out "$out" || echo "run: the PyTorch symmetric-memory baseline failed (above)"
else
  echo "run: PyTorch with symmetric memory not installed: no PyTorch baseline"
fi
for f in "$out"/allreduce_w*.json; do
  [ -f "$f" ] || continue
  with=()
  s="$out/symm_mem_w${f##*allreduce_w}"
  [ -f "$s" ] && with=(--with "$s")
  python3 tools/plot_bench.py "$f" "$out" "${with[@]}" || true
done
