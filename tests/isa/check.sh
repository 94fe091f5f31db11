#!/usr/bin/env bash
# Fails if a fast path silently fell back on its target. Compiles tests/isa/kernels.cpp for each
# target and looks for the instructions in the machine code (AMD: assembly) or, for NVIDIA on a
# machine without cuobjdump, in the PTX that ptxas turns 1:1 into SASS conversions; where cuobjdump is
# present (the GPU machine) the SASS is checked too.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${1:-$root/build/isa}"
mkdir -p "$out"
src="$root/tests/isa/kernels.cpp"
nvcc="${NVCC:-/usr/local/cuda/bin/nvcc}"
rocm="$root/.toolchain/rocm"
bitcode=$(ls -d "$rocm"/usr/lib/llvm-*/lib/clang/*/amdgcn/bitcode 2>/dev/null | head -n1 || true)
fail=0
pass=0

expect() {  # file, pattern, meaning
  if grep -qE "$2" "$1"; then pass=$((pass + 1)); echo "  ok    $3"
  else fail=$((fail + 1)); echo "  FAIL  $3: '$2' not found in $(basename "$1")"; fi
}
# The two-shot kernels are compiled for twoshot_blocks_per_sm(world) resident blocks per
# multiprocessor (the header's numbers: 2 ranks, 4 ranks, then the others): NVIDIA, the PTX entry carries
# .minnctapersm with it; AMD, the assembler's occupancy note for the kernel says at least that many
# waves per SIMD (one per block of 256 threads on a compute unit of 4 SIMDs).
read -r blocks_w2 blocks_w4 blocks_wn < <(sed -n 's/.*twoshot_blocks_per_sm(int world) { return world == 2 ? \([0-9]*\) : world == 4 ? \([0-9]*\) : \([0-9]*\); }.*/\1 \2 \3/p' \
  "$root/include/qreduce/transport/workspace.hpp") || true
[ -n "${blocks_wn:-}" ] || { echo "check: twoshot_blocks_per_sm not found in transport/workspace.hpp" >&2; exit 1; }
expect_two_shot_occupancy() {  # file (ptx or .s), world size (the kernel's mangled Li<W>E), blocks, meaning
  local got
  case "$1" in
    *.ptx) got=$(awk -v w="Li$2E" '/\.entry _ZN7qreduce9algorithm15two_shot_kernel/ && index($0, w) {k = 1} k && /^\.minnctapersm/ {print $2; exit}' "$1") ;;
    *) got=$(awk -v w="Li$2E" '/^_ZN7qreduce9algorithm15two_shot_kernel.*:/ && index($0, w) {k = 1} k && /; Occupancy:/ {print $3; exit}' "$1") ;;
  esac
  if [ -n "$got" ] && [ "$got" -ge "$3" ]; then pass=$((pass + 1)); echo "  ok    $4 ($got)"
  else fail=$((fail + 1)); echo "  FAIL  $4: found '${got:-nothing}'"; fi
}
# Every system-scope L2 write-back belongs to a release: the next instruction after it (waits and nops aside) is
# the flag's system-scope store or atomic; and there is at least one such pair.
expect_release_pairs() {  # file.s, meaning
  local bad
  bad=$(awk '/buffer_wbl2 sc0 sc1/ {w = 1; n++; next}
             w && /^[ \t]*s_(waitcnt|nop)/ {next}
             w {w = 0; if ($0 !~ /global_(store|atomic)[a-z_0-9]* .* sc0 sc1/) bad++; else ok++}
             END {print (n == 0 ? "none" : bad + 0)}' "$1")
  if [ "$bad" = "0" ]; then pass=$((pass + 1)); echo "  ok    $2"
  else fail=$((fail + 1)); echo "  FAIL  $2: ${bad} write-back(s) not followed by a system-scope store"; fi
}
# The PTX entries, or the AMD kernels of a .s file, whose names match a regex: file, regex.
ptx_entries() { awk -v k="$2" '$0 ~ "\\.entry " && $0 ~ k {on = 1} on {print} on && /^}/ {on = 0}' "$1"; }
amd_kernels() { awk -v k="$2" '/^_Z[^ ]*:/ && $0 ~ k {on = 1} on {print} on && /s_endpgm/ {on = 0}' "$1"; }
# A pattern inside the kernels an extractor (ptx_entries, amd_kernels) finds: extractor, file, name
# regex, pattern, meaning. The body is captured first: grep -q closing the pipe early would fail it
# under pipefail.
expect_in_body() {
  local body
  body=$("$1" "$2" "$3")
  if grep -qE "$4" <<<"$body"; then
    pass=$((pass + 1)); echo "  ok    $5"
  else fail=$((fail + 1)); echo "  FAIL  $5: '$4' not found in the kernels matching '$3' of $(basename "$2")"; fi
}
# A pattern that must not occur there (and the kernels must exist): the same arguments.
expect_not_in_body() {
  local body
  body=$("$1" "$2" "$3")
  if [ -z "$body" ]; then fail=$((fail + 1)); echo "  FAIL  $5: no kernels matching '$3' in $(basename "$2")"
  elif grep -qE "$4" <<<"$body"; then fail=$((fail + 1)); echo "  FAIL  $5: '$4' found in the kernels matching '$3' of $(basename "$2")"
  else pass=$((pass + 1)); echo "  ok    $5"; fi
}
# A loop (a label and a later branch back to it) holding instructions that match every regex of `want`
# (separated by spaces) and none that matches `avoid`, in the kernels an extractor finds: extractor,
# file, name regex, want, avoid, meaning. Labels and branches as PTX ($L__BB0_1:, bra) and AMD
# assembly (.LBB0_1:, s_branch, s_cbranch_*) write them. The regexes reach awk through its
# environment (-v would take their backslashes as escapes in gawk).
expect_loop() {
  local body found
  body=$("$1" "$2" "$3")
  found=$(want="$4" avoid="$5" awk '{line[NR] = $0}
    match($0, /^[$.]L[_A-Za-z0-9]*:/) {lab[substr($0, 1, RLENGTH - 1)] = NR}
    match($0, /(bra(\.uni)?|s_branch|s_cbranch_[a-z0-9]+)[ \t]+[$.]L[_A-Za-z0-9]+/) {
      t = substr($0, RSTART, RLENGTH); sub(/.*[ \t]/, "", t)
      if (t in lab && lab[t] < NR) {nl++; from[nl] = lab[t]; to[nl] = NR}}
    END {nw = split(ENVIRON["want"], w, " "); avoid = ENVIRON["avoid"]
      for (i = 1; i <= nl; i++) {
        split("", got); n = 0; bad = 0
        for (j = from[i]; j <= to[i]; j++) {
          for (k = 1; k <= nw; k++) if (!(k in got) && line[j] ~ w[k]) {got[k] = 1; n++}
          if (line[j] ~ avoid) bad = 1}
        if (n == nw && !bad) {print "yes"; exit}}}' <<<"$body")
  if [ "$found" = yes ]; then pass=$((pass + 1)); echo "  ok    $6"
  else fail=$((fail + 1)); echo "  FAIL  $6: no loop with '$4' and without '$5' in the kernels matching '$3' of $(basename "$2")"; fi
}
# A PTX fused multiply-add by a float constant (a literal operand, or a register moved from it) in the
# entries matching a regex: file, entry regex, constant (0fXXXXXXXX), meaning.
expect_fma_by_constant() {
  local body found
  body=$(ptx_entries "$1" "$2")
  found=$(awk -v c="$3" '$1 == "mov.f32" && $3 == c ";" {r[substr($2, 1, length($2) - 1)] = 1}
    $1 == "fma.rn.f32" {gsub(/[,;]/, ""); if ($3 == c || $4 == c || ($3 in r) || ($4 in r)) {print "yes"; exit}}' <<<"$body")
  if [ "$found" = yes ]; then pass=$((pass + 1)); echo "  ok    $4"
  else fail=$((fail + 1)); echo "  FAIL  $4: no fma.rn.f32 by $3 in the kernels matching '$2' of $(basename "$1")"; fi
}
expect_in_kernel() { expect_in_body ptx_entries "$@"; }  # PTX: file, entry-name regex, pattern, meaning
expect_not_in_kernel() { expect_not_in_body ptx_entries "$@"; }
expect_in_amd_kernel() { expect_in_body amd_kernels "$@"; }  # AMD .s: file, kernel-name regex, pattern, meaning
expect_not_in_amd_kernel() { expect_not_in_body amd_kernels "$@"; }
expect_not() {
  if grep -qE "$2" "$1"; then fail=$((fail + 1)); echo "  FAIL  $3: '$2' found in $(basename "$1")"
  else pass=$((pass + 1)); echo "  ok    $3"; fi
}

echo "isa: NVIDIA (nvcc $("$nvcc" --version | grep -oE 'release [0-9.]+' | cut -d' ' -f2))"
"$nvcc" -std=c++20 -O3 -I"$root/include" -x cu -ptx -arch=sm_90 "$src" -o "$out/sm_90.ptx" &
"$nvcc" -std=c++20 -O3 -I"$root/include" -x cu -ptx -gencode arch=compute_100a,code=sm_100a "$src" -o "$out/sm_100a.ptx" &
wait
expect "$out/sm_90.ptx" 'cvt\.rn\.satfinite\.e4m3x2\.f32' "sm_90: fp8 encode uses cvt.rn.satfinite.e4m3x2"
expect_not "$out/sm_90.ptx" 'e2m1x2' "sm_90: no e2m1x2 (FP4 is software there)"
expect "$out/sm_90.ptx" 'prmt\.b32 .*, 64256;' "sm_90: fp4 encode gathers sign bytes with prmt (software FP4 fast path)"
expect_in_kernel "$out/sm_90.ptx" 'isa_decode.*3fp4' 'prmt\.b32 %r[0-9]+, %r[0-9]+, %r[0-9]+, %r[0-9]+;' \
  "sm_90: fp4 decode looks its magnitudes up with prmt (a register selector: the software E2M1 fast path)"
expect_not_in_kernel "$out/sm_90.ptx" 'isa_(en|de)code.*codec4int[468]' 'cvt\.(rni|rzi|rn\.f32\.[su]32)' \
  "sm_90: int4/int6/int8 encode and decode without conversion instructions (the float's own rounding)"
expect "$out/sm_90.ptx" 'st\.release\.sys\.global\.u32' "sm_90: flags raised with st.release.sys"
expect "$out/sm_90.ptx" 'ld\.acquire\.sys\.global\.u32' "sm_90: flags read with ld.acquire.sys"
expect_two_shot_occupancy "$out/sm_90.ptx" 2 "$blocks_w2" "sm_90: 2-rank two-shot kernel compiled for $blocks_w2 blocks per multiprocessor"
expect_two_shot_occupancy "$out/sm_90.ptx" 4 "$blocks_w4" "sm_90: 4-rank two-shot kernel compiled for $blocks_w4 blocks per multiprocessor"
expect_two_shot_occupancy "$out/sm_90.ptx" 8 "$blocks_wn" "sm_90: 8-rank two-shot kernel compiled for $blocks_wn blocks per multiprocessor"
# The fused RMSNorm's kernels of rows, one for each output type and batch (1 and rows_kernel_batch;
# ptxas on their PTX entries alone): those of y in the tensor's type and of the FP8 output loading a
# vector at a time fit 8 blocks of 256 threads a multiprocessor, at most 32 registers a thread (one
# kernel for every output took 36).
expect_rows_registers() {
  local entries args=() e n ok=0
  entries=$(sed -n 's/^\.visible \.entry \(_ZN7qreduce9algorithm11rows_kernel[^(]*\)(.*/\1/p' "$out/sm_90.ptx")
  for e in $entries; do args+=(-e "$e"); done
  "$(dirname "$nvcc")/ptxas" -arch=sm_90 -v "${args[@]}" "$out/sm_90.ptx" -o "$out/rows.cubin" 2>"$out/rows-ptxas.txt" || true
  for e in out_native out_fp8_per_token; do
    n=$(awk -v k="$e" '/Compiling entry/ {on = index($0, k) > 0 && index($0, "Li1EEEv") > 0} on && /Used [0-9]+ registers/ {for (i = 1; i <= NF; i++) if ($i == "Used") print $(i + 1); exit}' \
      "$out/rows-ptxas.txt")
    [ -n "$n" ] && [ "$n" -le 32 ] && ok=$((ok + 1))
    echo "        rows_kernel, $e: ${n:-not compiled} registers"
  done
  if [ "$(wc -w <<<"$entries")" -eq 8 ] && [ "$ok" -eq 2 ]; then
    pass=$((pass + 1)); echo "  ok    sm_90: the fused RMSNorm's kernels of rows, one for each output and batch; native and FP8 at <= 32 registers"
  else fail=$((fail + 1)); echo "  FAIL  sm_90: kernels of rows: $(wc -w <<<"$entries") entries (want 8), $ok of native/FP8 at <= 32 registers"; fi
}
expect_rows_registers
# The fused RMSNorm's one-shot (rows in registers from the sums to y), 2 ranks: one kernel for each
# output, none spilling (ptxas: no stack frame, no spill stores).
expect_one_shot_rows_registers() {
  local entries args=() e n ok=0
  entries=$(sed -n 's/^\.visible \.entry \(_ZN7qreduce9algorithm23one_shot_rmsnorm_kernel[^(]*\)(.*/\1/p' "$out/sm_90.ptx")
  for e in $entries; do args+=(-e "$e"); done
  "$(dirname "$nvcc")/ptxas" -arch=sm_90 -v "${args[@]}" "$out/sm_90.ptx" -o "$out/one-shot-rows.cubin" 2>"$out/one-shot-rows-ptxas.txt" || true
  n=$(grep -c ' 0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads' "$out/one-shot-rows-ptxas.txt" || true)
  if [ "$(wc -w <<<"$entries")" -eq 4 ] && [ "$n" -eq 4 ]; then
    pass=$((pass + 1)); echo "  ok    sm_90: the fused RMSNorm's one-shot, one kernel for each output, none spilling"
  else fail=$((fail + 1)); echo "  FAIL  sm_90: fused one-shot kernels: $(wc -w <<<"$entries") entries (want 4), $n without spills"; fi
}
expect_one_shot_rows_registers
expect_in_kernel "$out/sm_90.ptx" 'isa_encode.*3fp4' 'rcp\.approx\.ftz\.f32' \
  "sm_90: the scale's reciprocal is an approximate reciprocal and a Newton step (codec/scale.hpp)"
for arch in sm_90 sm_100a; do
  expect_in_kernel "$out/$arch.ptx" 'isa_encode.*5int4m' 'prmt\.b32' "$arch: int4m packs its codes with byte gathers (prmt)"
  expect_in_kernel "$out/$arch.ptx" 'isa_encode.*5int4m' 'fma\.rn\.f16x2' "$arch: int4m searches its multipliers in packed binary16 (fma.rn.f16x2)"
  expect_not_in_kernel "$out/$arch.ptx" 'isa_encode.*5int4m' 'div\.rn\.f32|rcp\.rn\.f32' \
    "$arch: int4m's reciprocals without a division's slow path (an approximate reciprocal and a Newton step)"
  expect_in_kernel "$out/$arch.ptx" 'one_shot_kernel' 'ld\.relaxed\.sys\.global\.v4\.b32' \
    "$arch: the one-shot polls its slots with 16-byte relaxed system-scope loads (its flag is in the data)"
  expect_in_kernel "$out/$arch.ptx" 'one_shot_rmsnorm_kernel' 'ld\.relaxed\.sys\.global\.v4\.b32' \
    "$arch: the fused one-shot polls its slots as the one-shot does"
  expect_not_in_kernel "$out/$arch.ptx" 'one_shot_rmsnorm_kernel' 'griddepcontrol' \
    "$arch: the fused one-shot is one kernel (no dependent launch around it)"
  expect_in_kernel "$out/$arch.ptx" 'two_shot_kernel' 'cp\.async\.ca\.shared\.global' \
    "$arch: the two-shot fetches its peers' call signatures with cp.async (no load latency in a round)"
  expect_not_in_kernel "$out/$arch.ptx" 'isa_encode.*codec(3fp4|5mxfp4|4int[468]|3fp8|8fp8_fnuz)E|two_shot_kernel' 'div\.rn\.f32|rcp\.rn\.f32' \
    "$arch: the scaled codecs' encode and the two-shot derive scales without an IEEE division"
  expect_in_kernel "$out/$arch.ptx" 'two_shot_kernel.*4int6' 'ld\.shared\.v4\.u32' \
    "$arch: the INT6 two-shot copies its staged tiles out of shared memory 16 bytes at a time"
  expect_in_kernel "$out/$arch.ptx" 'two_shot_kernel.*bf16' 'cvt\.rn\.bf16x2\.f32' \
    "$arch: the two-shot rounds its bf16 results two at a time (cvt.rn.bf16x2.f32, numeric::from_float8)"
  expect_in_kernel "$out/$arch.ptx" 'rows_kernel' 'griddepcontrol\.wait' \
    "$arch: the kernel of rows waits for the all-reduce it follows (programmatic dependent launch)"
  expect_in_kernel "$out/$arch.ptx" 'one_shot_kernel' 'griddepcontrol\.launch_dependents' \
    "$arch: the one-shot lets the kernel of rows after it start (programmatic dependent launch)"
  expect_in_kernel "$out/$arch.ptx" 'two_shot_kernel' 'griddepcontrol\.launch_dependents' \
    "$arch: the two-shot lets the kernel of rows after it start (programmatic dependent launch)"
  for k in 'two_shot_kernel.*3fp4.*Li8E:FP4 (8 ranks)' 'two_shot_kernel.*4int4.*Li2E:INT4'; do
    expect_in_kernel "$out/$arch.ptx" "${k%%:*}" 'st\.shared\.u16' \
      "$arch: the ${k#*:} two-shot puts its groups' 2-byte scales into shared memory (stages_scales)"
    expect_in_kernel "$out/$arch.ptx" "${k%%:*}" 'ld\.shared\.v4\.u32' \
      "$arch: the ${k#*:} two-shot copies its scales out 16 bytes at a time (copy_scales)"
  done
  expect_in_kernel "$out/$arch.ptx" 'two_shot_kernel.*5mxfp4' 'st\.shared\.u8' \
    "$arch: the MXFP4 two-shot puts its groups' 1-byte scales into shared memory (stages_scales)"
  expect_in_kernel "$out/$arch.ptx" 'two_shot_kernel.*5mxfp4' 'ld\.shared\.v4\.u32' \
    "$arch: the MXFP4 two-shot copies its scales out 16 bytes at a time (copy_scales)"
  expect_in_kernel "$out/$arch.ptx" 'isa_encode.*3fp4' 'max\.NaN\.f32' \
    "$arch: the group's largest magnitude taken in float with NaN kept (codec::absmax_bits8)"
  expect_not_in_kernel "$out/$arch.ptx" 'isa_encode.*codec4int[468]E' 'min\.f32|max\.f32' \
    "$arch: int4/int6/int8 encode without a clamp (their bf16 scales bound the products: scaled_codec::bounded_products)"
  expect_not_in_kernel "$out/$arch.ptx" 'isa_encode.*codec4int[468]E' 'fma\.rn\.f32.*0f4B400000' \
    "$arch: int4/int6/int8 round their products before adding 1.5 * 2^23 (no fused multiply-add: numeric::mul_rn)"
  expect_not_in_kernel "$out/$arch.ptx" 'two_shot_kernel.*4bf16' 'setp\.nan' \
    "$arch: the two-shot's bf16 results without a NaN test (the conversion writes the canonical NaN 0x7fff)"
  expect_in_kernel "$out/$arch.ptx" 'two_shot_kernel.*3fp4.*4bf16' 'mul\.rn\.bf16x2' \
    "$arch: the FP4 two-shot decodes straight to bf16 into its output (mul.rn.bf16x2, decode_code_rounded)"
  expect_in_kernel "$out/$arch.ptx" 'two_shot_kernel.*4int4.*4bf16' 'sub\.rn\.bf16x2' \
    "$arch: the INT4 two-shot decodes straight to bf16 into its output (sub.rn.bf16x2 and mul.rn.bf16x2)"
  expect_in_kernel "$out/$arch.ptx" 'isa_decode_rotated.*5int4m' 'add\.rn\.bf16x2' \
    "$arch: int4m rotates its levels back in bf16 pairs (add.rn.bf16x2), not its values in f32"
  expect_in_kernel "$out/$arch.ptx" 'two_shot_kernel.*5int4m.*4bf16' 'fma\.rn\.bf16x2' \
    "$arch: the INT4M two-shot scales its rotated-back levels straight into bf16 (fma.rn.bf16x2, decode_unrotate_rounded)"
  expect_not_in_kernel "$out/$arch.ptx" 'two_shot_kernel.*5int4m.*4bf16' 'cvt\.rn\.bf16x2\.f32' \
    "$arch: the INT4M two-shot writes no f32 result (no cvt.rn.bf16x2.f32)"
  expect_fma_by_constant "$out/$arch.ptx" 'two_shot_kernel.*5int4m.*4bf16' 0f3D800000 \
    "$arch: the INT4M two-shot folds its rotation's 1/16 into the first butterflies (fma.rn.f32, rotate_loaded)"
  expect_loop ptx_entries "$out/$arch.ptx" 'two_shot_kernel.*5int4m.*4bf16.*Li2E' 'ld\.global\.v4 st\.shared\.u16' 'ld\.global\.u16|setp\.[a-z]+\.[su]64' \
    "$arch: the 2-rank INT4M two-shot encodes whole chunks in a loop without bound tests (split_bounds: 16-byte loads only)"
  expect_loop ptx_entries "$out/$arch.ptx" 'two_shot_kernel.*5int4m.*4bf16.*Li2E' 'fma\.rn\.bf16x2 st\.global\.v4' 'st\.global\.u16|setp\.[a-z]+\.[su]64' \
    "$arch: the 2-rank INT4M two-shot writes whole chunks' results in a loop without bound tests (16-byte stores only)"
  expect_fma_by_constant "$out/$arch.ptx" 'two_shot_kernel.*4int6' 0f3D000000 \
    "$arch: the INT6 two-shot (rotated on request) folds the rotation's 1/32 into the first butterflies"
done
expect "$out/sm_100a.ptx" 'cvt\.rn\.satfinite\.e2m1x2\.f32' "sm_100a: fp4 encode uses cvt.rn.satfinite.e2m1x2"
expect "$out/sm_100a.ptx" 'cvt\.rn\.satfinite\.e4m3x2\.f32' "sm_100a: fp8 encode uses cvt.rn.satfinite.e4m3x2"
if command -v cuobjdump >/dev/null 2>&1; then
  "$nvcc" -std=c++20 -O3 -I"$root/include" -x cu -c -gencode arch=compute_90,code=sm_90 \
    -gencode arch=compute_100a,code=sm_100a "$src" -o "$out/kernels.o"
  cuobjdump --dump-sass "$out/kernels.o" > "$out/sass.txt"
  expect "$out/sass.txt" 'F2FP\.SATFINITE\.E4M3' "SASS: E4M3 conversion instruction"
  expect "$out/sass.txt" 'F2FP\.SATFINITE\.E2M1' "SASS (sm_100a): E2M1 conversion instruction"
  expect "$out/sass.txt" 'MUFU\.RCP' "SASS: the scale's reciprocal on the multifunction unit (MUFU.RCP)"
  expect "$out/sass.txt" 'F2FP\.BF16\.F32\.PACK_AB' "SASS: bf16 results rounded two at a time (F2FP.BF16.F32.PACK_AB)"
  expect "$out/sass.txt" 'HMUL2\.BF16|HFMA2\.BF16' "SASS: codes decoded straight to bf16 by packed bf16 multiplies"
  expect "$out/sass.txt" 'FMNMX\.NAN R[0-9]+, \|R[0-9]+\|' "SASS: absmax as FMNMX.NAN with the absolute value folded into its operand"
else
  echo "  (no cuobjdump here: SASS not checked; the GPU machine checks it)"
fi

echo "isa: AMD (clang-22 HIP)"
if ! command -v clang++-22 >/dev/null 2>&1 || [ -z "$bitcode" ]; then
  echo "  (no clang-22 or HIP toolchain here: AMD not checked; tools/setup.sh installs them)"
  echo "isa: $pass passed, $fail failed"
  [ "$fail" -eq 0 ]
  exit
fi
for arch in gfx942 gfx950; do
  clang++-22 -x hip --offload-arch=$arch --offload-device-only -S -std=c++20 -O3 -I"$root/include" \
    -isystem "$rocm/usr/include" --rocm-path="$rocm/usr" --rocm-device-lib-path="$bitcode" \
    -D__AMDGCN_WAVEFRONT_SIZE=64 -Wno-unused-command-line-argument "$src" -o "$out/$arch.s" &
done
wait
expect "$out/gfx950.s" 'v_cvt_scalef32_pk_fp4_f32' "gfx950: fp4 encode uses v_cvt_scalef32_pk_fp4_f32"
expect "$out/gfx950.s" 'v_cvt_scalef32_pk_f32_fp4' "gfx950: fp4 decode uses v_cvt_scalef32_pk_f32_fp4"
expect "$out/gfx950.s" 'v_cvt_scalef32_pk_fp8_f32' "gfx950: fp8 encode uses v_cvt_scalef32_pk_fp8_f32"
expect "$out/gfx942.s" 'v_cvt_pk_fp8_f32' "gfx942: fp8_fnuz encode uses v_cvt_pk_fp8_f32"
expect_not "$out/gfx942.s" 'v_cvt_scalef32' "gfx942: no gfx950-only conversions"
for arch in gfx942 gfx950; do
  expect_release_pairs "$out/$arch.s" "$arch: each system-scope release writes back L2 right before its flag store"
  expect_two_shot_occupancy "$out/$arch.s" 2 "$blocks_w2" "$arch: 2-rank two-shot kernel at $blocks_w2 waves per SIMD"
  expect_two_shot_occupancy "$out/$arch.s" 4 "$blocks_w4" "$arch: 4-rank two-shot kernel at $blocks_w4 waves per SIMD"
  expect_two_shot_occupancy "$out/$arch.s" 8 "$blocks_wn" "$arch: 8-rank two-shot kernel at $blocks_wn waves per SIMD"
  expect_in_amd_kernel "$out/$arch.s" 'one_shot_kernel' 'global_load_dword .*offset:12 sc0 sc1' \
    "$arch: the one-shot polls its slots with system-scope (sc0 sc1) word loads (its flag is in the data)"
  for k in 'two_shot_kernel.*3fp4.*Li8E:FP4 (8 ranks):ds_write_b16' 'two_shot_kernel.*4int4.*Li2E:INT4:ds_write_b16' \
    'two_shot_kernel.*5mxfp4:MXFP4:ds_write_b8'; do
    IFS=: read -r kern name store <<<"$k"
    expect_in_amd_kernel "$out/$arch.s" "$kern" "$store" "$arch: the $name two-shot puts its groups' scales into the LDS (stages_scales)"
    expect_in_amd_kernel "$out/$arch.s" "$kern" 'ds_read_b128' "$arch: the $name two-shot copies its scales out 16 bytes at a time (copy_scales)"
  done
  expect_loop amd_kernels "$out/$arch.s" 'two_shot_kernel.*5int4m.*Li2E' 'global_load_dwordx4 ds_write_b16' 'global_load_ushort|v_cmp_[a-z]+_u64' \
    "$arch: the 2-rank INT4M two-shot encodes whole chunks in a loop without bound tests (split_bounds: 16-byte loads only)"
  expect_in_amd_kernel "$out/$arch.s" 'isa_encode.*5int4m' 'v_pk_fma_f16' \
    "$arch: int4m searches its multipliers in packed binary16 (v_pk_fma_f16)"
  expect_in_amd_kernel "$out/$arch.s" 'isa_decode_rotated.*5int4m' 'v_pk_add_f16' \
    "$arch: int4m rotates its levels back in binary16 pairs (v_pk_add_f16)"
  expect_not_in_amd_kernel "$out/$arch.s" 'isa_encode.*codec4int[468]E' 'v_pk_fma_f32|v_fma[a-z0-9_]* .*0x4b400000' \
    "$arch: int4/int6/int8 round their products before adding 1.5 * 2^23 (no fused multiply-add: numeric::mul_rn)"
done
echo "isa: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
