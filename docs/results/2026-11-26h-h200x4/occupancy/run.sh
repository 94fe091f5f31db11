#!/bin/bash
# 4 GPUs: the two-shot at 4 ranks with 3 (fdd4cca), 4 and 6 blocks a multiprocessor, alternating;
# the all-reduce tests with the big-rounds scenario (threads, 2 and 4 ranks), and a build without the
# kernel's max_step_tiles check, which must fail it. One archive back.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
R=$OUT/r; mkdir -p $R
S=$R/summary.txt
step() { local name=$1; shift; local t0=$SECONDS; "$@" > $R/$name.log 2>&1; echo "$name rc=$? $((SECONDS - t0))s" | tee -a $S; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $R/machine.txt
for pass in 1 2; do
  for b in bench2_w4 bench_b4_w4 bench_b6_w4; do
    echo "=== $b" >> $R/ab-occupancy-w4.log
    build/dev/$b --ranks 4 --dtypes bf16 --algorithms twoshot,nccl --sizes 4M,16M,64M,256M,1G --out $R/x 2>&1 | tr '\r' '\n' | grep -v elapsed >> $R/ab-occupancy-w4.log
  done
done
rm -rf $R/x
step allreduce-threads-2 timeout 300 build/dev/test_allreduce --ranks 2 --mode threads
step allreduce-threads-4 timeout 300 build/dev/test_allreduce --ranks 4 --mode threads --quick
step k17-mutant-threads-2 timeout 300 build/dev/test_allreduce_k17 --ranks 2 --mode threads --quick
step allreduce-procs-4 timeout 200 build/dev/test_allreduce --ranks 4 --mode procs --quick
cat $S
grep -E "big rounds|passed|failed" $R/allreduce-threads-2.log $R/allreduce-threads-4.log | tail -4
grep -E "FAIL|passed|failed" $R/k17-mutant-threads-2.log | tail -4
grep -E "===|1 GiB" $R/ab-occupancy-w4.log | awk '{print $1, $2, $3, $4, $5, $6}'
tar czf $OUT/r91.tgz -C $R . && rm -rf $R
