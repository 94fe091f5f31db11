#!/bin/bash
# Round size and grid sweep of the two-shot (fdd4cca) through QREDUCE_ROUND_BYTES / QREDUCE_MAX_BLOCKS.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
R=$OUT/r; mkdir -p $R
run() { echo "=== $1" >> $R/sweep.log; env $1 build/dev/bench2 --ranks 2 --dtypes bf16 --algorithms twoshot,nccl --sizes 4M,16M,64M,256M,1G --codecs none,fp8,int6,int4,fp4,mxfp4,int4m --out $R/x 2>&1 | tr '\r' '\n' | grep -v elapsed >> $R/sweep.log; }
for pass in 1 2; do
  for v in QREDUCE_ROUND_BYTES=16384 QREDUCE_ROUND_BYTES=8192 QREDUCE_ROUND_BYTES=12288 QREDUCE_ROUND_BYTES=24576 QREDUCE_ROUND_BYTES=32768 QREDUCE_MAX_BLOCKS=792 QREDUCE_MAX_BLOCKS=528; do run $v; done
done
grep -c twoshot $R/sweep.log
rm -rf $R/x; tar czf $OUT/sweep.tgz -C $R .
