#!/usr/bin/env bash
# The real-CLLM check: trains the unmodified train_model linked three ways
# (see build.sh), evaluates the saved models with eval_model, and prints one
# line:
#   cllm original_first=.. original_last=.. serial_first=.. serial_last=..
#        replica_first=.. replica_last=.. eval_init=.. eval_replica=..
#        replica_speedup=.. threads=.. bitwise_runs=0|1 bitwise_threads=0|1
#
#   check.sh BUILD_DIR full|short
#
# Every variant starts from the same weights (check_wrap.c fixes srand).
# - original/serial: CLLM's module and our drop-in without adapter,
#   --threads = all cores (at least 2: train_model never calls the threaded
#   module with 1).
# - replica: our drop-in + adapter, CLLM_TRAINING_GROUP_SIZE=$GROUP fixed,
#   run with 1, 2, 3 and 4 spheres (CLLM_TRAINING_SPHERES), and twice with
#   all cores: bitwise_threads=1 if the final weights (every float of the
#   model, check_wrap.c) are identical for 1-4 spheres, bitwise_runs=1 if the
#   two all-core runs are. replica_first/last and eval_replica: the all-core run.
# - eval_init: the model train_model saves with --epochs 0.
# - replica_speedup: epoch time (threaded_training_create to _free) with 1
#   sphere over all cores, same group size, in turns in this run; "full" uses
#   a larger model where an epoch takes over 1 s, "short" reuses the small
#   runs above (informational only). Best epoch of each side; the spread goes
#   to stderr.
# Exit status 1 if a run failed or fell back, the replica leg is missing, or
# the results are wrong: a loss that does not fall (serial, replica), a saved
# model no better than the initial one, bitwise_runs or bitwise_threads 0.
# The speed-up is a benchmark figure, never a pass/fail criterion.
set -uo pipefail
B=$(cd "${1:?usage: check.sh BUILD_DIR full|short}" && pwd)
MODE=${2:-full}
W=$B/check-$MODE
rm -rf "$W" && mkdir -p "$W"
DATA=$B/data/raw
NPROC=$(nproc)
THREADS=$(( NPROC < 2 ? 2 : NPROC ))
GROUP=4
case $MODE in
  full)  EPOCHS=3 ;;
  short) EPOCHS=2 ;;
  *) echo "check.sh: mode is full or short" >&2; exit 2 ;;
esac
# 3822 tokens on data/raw: 2x21 divides them (CLLM's iterator with
# drop_last=0 only ends when num_tokens mod batch*seq is 0 or 1).
MODEL=(--vocab-size 200 --embed-dim 32 --num-layers 2 --num-heads 8 --batch-size 2 --seq-len 21)
EVAL_ARGS=(8 2 21)   # num_heads batch_size seq_len, as in MODEL
# Learning rates. Without the adapter the drop-in can only call CLLM's
# optimizer step: no warmup, and train_model's default 1e-4 learns (higher
# rates make CLLM's plain SGD on the non-embedding weights oscillate: 3e-4
# and above stayed flat here). With the adapter the step is CLLM's own
# (cllm_train_epoch's): a linear warmup over 1000 steps, so at 1e-4 a few
# epochs of 23 steps (group 4) move the loss less than its noise; 0.03
# reaches 2e-3 by step 69.
LR_SERIAL=0.0001
LR_REPLICA=0.03
# Only the settings this script gives.
unset CLLM_TRAINING_SPHERES CLLM_TRAINING_MODE CLLM_TRAINING_GROUP_SIZE
fail=0
die() { echo "check.sh: $*" >&2; fail=1; }

# run NAME VARIANT EPOCHS [VAR=VALUE...] [-- extra train_model args]: trains
# into $W/NAME; fails on a bad exit or a fallback to CLLM's own MT.
run() {
  local name=$1 variant=$2 epochs=$3; shift 3
  local envs=() extra=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
  [ "${1:-}" = -- ] && { shift; extra=("$@"); }
  local log=$W/$name.log
  if ! env "${envs[@]}" "$B/tm_$variant" "$DATA" "${MODEL[@]}" "${extra[@]}" --epochs "$epochs" \
      --threads "$THREADS" --checkpoint-dir "$W/$name" >"$log" 2>&1; then
    die "$name: train_model failed (exit $?), see $log"; return 1
  fi
  if grep -q "falling back" "$log"; then die "$name: train_model fell back to CLLM's own MT, see $log"; return 1; fi
  return 0
}
# losses NAME: "first last" epoch losses as train_model printed them.
losses() {
  local l
  l=$(sed -n 's/.*Epoch [0-9]* complete: Avg Loss = \([-0-9.naif]*\),.*/\1/p' "$W/$1.log")
  [ -n "$l" ] || { echo "na na"; return; }
  echo "$(echo "$l" | head -1) $(echo "$l" | tail -1)"
}
# epoch_times NAME: the epoch times check_wrap.c printed, one a line.
epoch_times() { grep -o 'cllm-check epoch_seconds=[0-9.]*' "$W/$1.log" | cut -d= -f2; }
evaluate() {
  "$B/eval_model" "$W/$1/final_model.cllm" "$W/init/dataset.bin" "${EVAL_ARGS[@]}" 2>>"$W/eval.log" \
    | sed -n 's/^eval_loss=\([^ ]*\).*/\1/p'
}
same_weights() { cmp -s "$W/$1/final_model.cllm.weights" "$W/$2/final_model.cllm.weights"; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0 && a != "na" && b != "na") }'; }
# expect_mode NAME "N spheres, MODE mode, G batches per step": every epoch's
# statistics (threaded_training_print_stats) must say so.
expect_mode() {
  local got
  got=$(sed -n 's/^threaded training: \([^;]*\);.*/\1/p' "$W/$1.log" | sort -u)
  [ "$got" = "$2" ] || die "$1: expected \"$2\", the trainer printed \"$got\""
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
run init serial 0
run original original "$EPOCHS" -- --learning-rate $LR_SERIAL
run serial serial "$EPOCHS" -- --learning-rate $LR_SERIAL
expect_mode serial "$THREADS spheres, serialised mode, 1 batches per step"
read -r original_first original_last < <(losses original)
read -r serial_first serial_last < <(losses serial)
eval_init=$(evaluate init)

replica_first=na replica_last=na eval_replica=na speedup=na bitwise_runs=0 bitwise_threads=0
if [ ! -x "$B/tm_replica" ]; then
  die "no replica variant: hosts/crystalline/replica_adapter.c is not there yet"
else
  R=(CLLM_TRAINING_MODE=replica CLLM_TRAINING_GROUP_SIZE=$GROUP)
  for s in 1 2 3 4; do
    run "replica_s$s" replica "$EPOCHS" "${R[@]}" CLLM_TRAINING_SPHERES=$s -- --learning-rate $LR_REPLICA
    expect_mode "replica_s$s" "$s spheres, replicas mode, $GROUP batches per step"
  done
  run replica_all replica "$EPOCHS" "${R[@]}" CLLM_TRAINING_SPHERES=$NPROC -- --learning-rate $LR_REPLICA
  run replica_again replica "$EPOCHS" "${R[@]}" CLLM_TRAINING_SPHERES=$NPROC -- --learning-rate $LR_REPLICA
  read -r replica_first replica_last < <(losses replica_all)
  eval_replica=$(evaluate replica_all)
  same_weights replica_all replica_again && bitwise_runs=1
  bitwise_threads=1
  for s in 2 3 4; do same_weights replica_s1 "replica_s$s" || bitwise_threads=0; done
  same_weights replica_s1 replica_all || bitwise_threads=0

  # Speed-up: 1 sphere vs all cores, same group, in turns.
  if [ "$MODE" = full ]; then
    SPEED=(-- --learning-rate $LR_REPLICA --embed-dim 64)
    for turn in 1 2 3; do
      run "speed1_$turn" replica 2 "${R[@]}" CLLM_TRAINING_SPHERES=1 "${SPEED[@]}"
      run "speedN_$turn" replica 2 "${R[@]}" CLLM_TRAINING_SPHERES=$NPROC "${SPEED[@]}"
    done
    one=$(for t in 1 2 3; do epoch_times "speed1_$t"; done)
    all=$(for t in 1 2 3; do epoch_times "speedN_$t"; done)
  else
    one=$(epoch_times replica_s1)
    all=$(epoch_times replica_all; epoch_times replica_again)
  fi
  best1=$(echo "$one" | sort -g | head -1)
  bestN=$(echo "$all" | sort -g | head -1)
  if [ -n "$best1" ] && [ -n "$bestN" ]; then
    speedup=$(awk -v a="$best1" -v b="$bestN" 'BEGIN { printf "%.2f", a / b }')
    echo "check.sh: epoch seconds, 1 sphere: $(echo $one); $NPROC spheres: $(echo $all)" >&2
    # The speed-up is only meaningful on an otherwise idle machine: say
    # what it ran on.
    echo "check.sh: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $NPROC cores;" \
      "load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end" >&2
    [ "$MODE" = full ] && ! lt 1.0 "$bestN" && echo "check.sh: warning: the all-core epoch took under 1 s ($bestN s)" >&2
  fi
fi

echo "cllm original_first=$original_first original_last=$original_last serial_first=$serial_first" \
  "serial_last=$serial_last replica_first=$replica_first replica_last=$replica_last" \
  "eval_init=$eval_init eval_replica=$eval_replica replica_speedup=$speedup threads=$NPROC" \
  "bitwise_runs=$bitwise_runs bitwise_threads=$bitwise_threads"

lt "$serial_last" "$serial_first" || die "serial mode: the loss did not fall"
if [ -x "$B/tm_replica" ]; then
  lt "$replica_last" "$replica_first" || die "replica mode: the loss did not fall"
  lt "$eval_replica" "$eval_init" || die "the saved replica model is no better than the initial one"
  [ $bitwise_runs = 1 ] || die "two identical replica runs gave different weights"
  [ $bitwise_threads = 1 ] || die "replica weights differ between 1, 2, 3 and 4 spheres at group size $GROUP"
fi
exit $fail
