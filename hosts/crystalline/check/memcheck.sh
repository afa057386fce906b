#!/usr/bin/env bash
# The real trainer with our drop-in under ASan+UBSan and under valgrind:
#   memcheck.sh PLAIN_BUILD ASAN_BUILD
# PLAIN_BUILD and ASAN_BUILD come from build.sh (ASAN_BUILD with
# -fsanitize=address,undefined on CLLM and our C code; our Rust archive is
# linked uninstrumented). Runs the drop-in in serialised mode, in replica
# mode (3 spheres, group 4: one sphere trains two batches of a group) and
# eval_model, each once under ASan+UBSan and once under valgrind (the flags
# of ffi-tests/run.sh: errors and definite/indirect leaks fail). A small
# model, one epoch. No suppression file: none was needed. Prints
#   cllm-memcheck asan_runs=<n> asan_errors=<n> valgrind_runs=<n> valgrind_errors=<n>
# and fails if any run failed or reported an error.
set -uo pipefail
P=$(cd "${1:?usage: memcheck.sh PLAIN_BUILD ASAN_BUILD}" && pwd)
A=$(cd "${2:?usage: memcheck.sh PLAIN_BUILD ASAN_BUILD}" && pwd)
unset CLLM_TRAINING_SPHERES CLLM_TRAINING_MODE CLLM_TRAINING_GROUP_SIZE ASAN_OPTIONS UBSAN_OPTIONS
MODEL=(--vocab-size 200 --embed-dim 16 --num-layers 1 --num-heads 8 --batch-size 2 --seq-len 21
       --epochs 1 --threads 2)
VG=(valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect
    --errors-for-leak-kinds=definite,indirect --track-origins=yes)
runs=0; errors=0; vruns=0; verrors=0

# one KIND B NAME [VAR=VALUE...] -- PROGRAM ARGS...: runs it in build B,
# under valgrind if KIND is valgrind; counts a failure or a report.
one() {
  local kind=$1 b=$2 name=$3; shift 3
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  local log=$b/memcheck-$name.log pre=()
  [ "$kind" = valgrind ] && pre=("${VG[@]}")
  (cd "$b" && timeout 600 env "${envs[@]}" "${pre[@]}" "$@" >"$log" 2>&1)
  local rc=$? bad=0
  [ $rc -eq 0 ] || bad=1
  grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|falling back" "$log" && bad=1
  if [ "$kind" = valgrind ]; then
    vruns=$((vruns + 1)); verrors=$((verrors + bad))
  else
    runs=$((runs + 1)); errors=$((errors + bad))
  fi
  [ $bad -eq 0 ] || echo "memcheck.sh: $kind $name failed (exit $rc), see $log" >&2
}

for kind in asan valgrind; do
  b=$A; [ $kind = valgrind ] && b=$P
  one $kind "$b" serial -- ./tm_serial data/raw "${MODEL[@]}" --checkpoint-dir "mc-$kind-serial"
  one $kind "$b" replica CLLM_TRAINING_SPHERES=3 CLLM_TRAINING_GROUP_SIZE=4 -- \
    ./tm_replica data/raw "${MODEL[@]}" --checkpoint-dir "mc-$kind-replica"
  one $kind "$b" eval -- ./eval_model "mc-$kind-replica/final_model.cllm" \
    "mc-$kind-serial/dataset.bin" 8 2 21
done
echo "cllm-memcheck asan_runs=$runs asan_errors=$errors valgrind_runs=$vruns valgrind_errors=$verrors"
[ $errors -eq 0 ] && [ $verrors -eq 0 ]
