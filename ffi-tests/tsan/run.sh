#!/usr/bin/env bash
# run.sh PLANTED PROGRAM...: checks that TSan reports the planted race, then
# runs the programs with ffi-tests/run.sh (a TSan report makes a program
# exit with 66, counted as a failure). GCC 12's TSan runtime cannot map its
# shadow memory when the kernel randomises mmap with more than 28 bits:
# run without address randomisation where setarch can.
set -u
planted=$1; shift
noaslr=()
setarch "$(uname -m)" -R true 2>/dev/null && noaslr=(setarch "$(uname -m)" -R)
out=$(mktemp)
"${noaslr[@]}" "$planted" >"$out" 2>&1
rc=$?
if [ "$rc" -ne 66 ] || ! grep -q "WARNING: ThreadSanitizer: data race" "$out"; then
  echo "tsan: the planted race was not reported (exit $rc): TSan is not live"; cat "$out"
  rm -f "$out"; echo "0 passed, 1 failed"; exit 1
fi
rm -f "$out"
echo "$(basename "$planted"): reported, as it must be"
exec "${noaslr[@]}" "$(dirname "$0")/../run.sh" "$@"
