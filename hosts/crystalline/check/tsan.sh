#!/usr/bin/env bash
# The real trainer with our drop-in under ThreadSanitizer:
#   tsan.sh TSAN_BUILD
# TSAN_BUILD comes from build.sh with -fsanitize=thread (CLLM and our C code
# instrumented; our Rust archive is not, and makes its hand-offs visible
# through thread_support::tsan, see docs/c-api.md). No suppression file,
# no TSAN_OPTIONS. Runs train_model in serialised mode and in replica mode
# (two epochs each, 2 spheres, group 4 in replica mode), counts TSan's
# reports, then runs tm_planted (tsan_planted.c: the host touches each batch
# after handing it to us) in both modes: each must report that race, and
# nothing else. Prints
#   cllm-tsan reports=<n> planted_found=<0|1>
# (reports: those of the clean runs plus any planted-run report that is not
# the planted race) and fails unless reports=0 and planted_found=1.
set -uo pipefail
T=$(cd "${1:?usage: tsan.sh TSAN_BUILD}" && pwd)
unset TSAN_OPTIONS CLLM_TRAINING_SPHERES CLLM_TRAINING_MODE CLLM_TRAINING_GROUP_SIZE
MODEL=(--vocab-size 200 --embed-dim 16 --num-layers 1 --num-heads 8 --batch-size 2 --seq-len 21
       --threads 2)
# GCC 12's TSan runtime cannot map its shadow memory when the kernel
# randomises mmap with more than 28 bits (vm.mmap_rnd_bits = 32 on recent
# distributions): run without address randomisation where setarch can.
NOASLR=()
setarch "$(uname -m)" -R true 2>/dev/null && NOASLR=(setarch "$(uname -m)" -R)
fail=0
# reports LOG [planted]: TSan's reports in LOG; with "planted", only those
# that do not involve plant_touch.
reports() {
  awk -v skip_planted="${2:-}" '
    /^WARNING: ThreadSanitizer/ { if (inrep && !(skip_planted && planted)) n++; inrep = 1; planted = 0 }
    /plant_touch/ { planted = 1 }
    END { if (inrep && !(skip_planted && planted)) n++; print n + 0 }' "$1"
}
run() {   # run NAME EPOCHS PROGRAM [VAR=VALUE...]
  local name=$1 epochs=$2 prog=$3; shift 3
  # A timeout: with unannotated hand-offs TSan reports on every batch and
  # runs 100 times slower.
  (cd "$T" && timeout 150 env "$@" "${NOASLR[@]}" "./$prog" data/raw "${MODEL[@]}" --epochs "$epochs" \
     --checkpoint-dir "tsan-$name" >"tsan-$name.log" 2>&1)
  echo $?
}
total=0
for mode in serial replica; do
  group=(); [ $mode = replica ] && group=(CLLM_TRAINING_GROUP_SIZE=4)
  rc=$(run "$mode" 2 tm_replica CLLM_TRAINING_MODE=$mode CLLM_TRAINING_SPHERES=2 "${group[@]}")
  n=$(reports "$T/tsan-$mode.log")
  total=$((total + n))
  if [ "$rc" != 0 ] || ! grep -q "Epoch 2 complete" "$T/tsan-$mode.log" || grep -q "falling back" "$T/tsan-$mode.log"; then
    echo "tsan.sh: $mode run failed (exit $rc, $n reports), see $T/tsan-$mode.log" >&2; fail=1
  fi
done
planted_found=1
for mode in serial replica; do
  group=(); [ $mode = replica ] && group=(CLLM_TRAINING_GROUP_SIZE=4)
  rc=$(run "planted-$mode" 1 tm_planted CLLM_TRAINING_MODE=$mode CLLM_TRAINING_SPHERES=2 "${group[@]}")
  log=$T/tsan-planted-$mode.log
  other=$(reports "$log" planted)
  total=$((total + other))
  # TSan exits with 66 when it reported something.
  if [ "$rc" != 66 ] || [ "$(reports "$log")" -le "$other" ]; then
    echo "tsan.sh: the planted race was not reported in $mode mode (exit $rc), see $log" >&2
    planted_found=0
  fi
done
echo "cllm-tsan reports=$total planted_found=$planted_found"
[ $fail -eq 0 ] && [ $total -eq 0 ] && [ $planted_found -eq 1 ]
