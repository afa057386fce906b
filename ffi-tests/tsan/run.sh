#!/usr/bin/env bash
# run.sh PLANTED... -- PROGRAM...: each PLANTED ("program" or
# "program:mode") must get a ThreadSanitizer report (exit 66), so that a run
# with TSan not live, or with the program's code hidden from it, fails; then
# the PROGRAMs run through ffi-tests/run.sh (a TSan report makes a program
# exit with 66, counted as a failure). GCC 12's TSan runtime cannot map its
# shadow memory when the kernel randomises mmap with more than 28 bits: run
# without address randomisation where setarch can.
set -u
noaslr=()
setarch "$(uname -m)" -R true 2>/dev/null && noaslr=(setarch "$(uname -m)" -R)
missed=0; reported=0
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  prog=${1%%:*}; mode=(); [ "$1" != "$prog" ] && mode=("${1#*:}")
  shift
  out=$(mktemp)
  "${noaslr[@]}" "$prog" "${mode[@]}" >"$out" 2>&1
  rc=$?
  if [ "$rc" -ne 66 ] || ! grep -q "WARNING: ThreadSanitizer: data race" "$out"; then
    echo "tsan: the race planted in $(basename "$prog") ${mode[*]} was not reported (exit $rc)"; cat "$out"
    missed=$((missed + 1))
  else
    reported=$((reported + 1))
  fi
  rm -f "$out"
done
shift
echo "planted races: $reported reported, $missed missed"
if [ "$missed" -ne 0 ]; then
  echo "$reported passed, $missed failed"; exit 1
fi
exec "${noaslr[@]}" "$(dirname "$0")/../run.sh" "$@"
