#!/usr/bin/env bash
# The main job: qreduce's all-reduce benchmark against NCCL on the local GPUs, then the codec
# throughput, with CSV/JSON results and plots in build/bench (or --out DIR).
# Without a GPU it says so and runs what the CPU can: the codec accuracy table.
#   tools/run.sh [qreduce_bench options]      e.g. --ranks 2 --max-size 64M
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
usage() {
  cat <<'USAGE'
usage: tools/run.sh [--out DIR] [qreduce_bench options]
  --out DIR   where results go (default build/bench)
  qreduce_bench options (checked here, passed on): --ranks N (2, 4 or 8) --sizes a,b --max-size S
  --dtypes fp16,bf16 --codecs none,fp8,... --algorithms oneshot,twoshot,auto,nccl --iters N --warmup N
  --graph --threads --fused
With GPUs: the all-reduce benchmark against NCCL (it measures the device copy and peer-store
bandwidths first and prints the model's limit beside every row), the codec throughput, PyTorch's
symmetric-memory all-reduce where PyTorch is installed, and plots. Without a GPU: the codec accuracy
table computed on the CPU.
USAGE
}
out=build/bench
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --out) [ $# -ge 2 ] || { echo "run: --out needs a directory" >&2; exit 2; }; out="$2"; shift ;;
    --out=*) out="${1#--out=}" ;;
    --ranks)
      [ $# -ge 2 ] || { echo "run: --ranks needs a value" >&2; exit 2; }
      case "$2" in 2 | 4 | 8) ;; *) echo "run: --ranks $2: qreduce runs 2, 4 or 8 ranks" >&2; exit 2 ;; esac
      args+=("$1" "$2"); shift ;;
    --sizes | --max-size | --dtypes | --codecs | --algorithms | --iters | --warmup)
      [ $# -ge 2 ] || { echo "run: $1 needs a value" >&2; exit 2; }
      args+=("$1" "$2"); shift ;;
    --graph | --threads | --fused) args+=("$1") ;;
    *) echo "run: unknown option $1 (tools/run.sh --help)" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$out" build

gpus=0
if command -v nvidia-smi >/dev/null 2>&1; then gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true); fi
if [ "$gpus" -eq 0 ]; then
  echo "run: no GPU visible on this machine: the all-reduce benchmark needs a machine with an NVIDIA GPU."
  echo "run: running what the CPU can: the codec accuracy table (the host reference of the exact bytes)."
  bash tools/setup.sh --host
  g++ -std=c++20 -O2 -Iinclude bench/accuracy.cpp -o build/qreduce_accuracy
  ./build/qreduce_accuracy --csv "$out/accuracy.csv" --markdown "$out/accuracy.md" --svg "$out/accuracy.svg"
  echo "run: wrote $out/accuracy.csv, $out/accuracy.md and $out/accuracy.svg (error against bits per value)"
  exit 0
fi

nvcc="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
echo "run: $gpus GPU(s): building qreduce_bench for this GPU"
"$nvcc" -std=c++20 -O3 -Iinclude -arch=native -o build/qreduce_bench bench/bench.cu -ldl
./build/qreduce_bench "${args[@]}" --out "$out"
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
