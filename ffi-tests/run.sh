#!/usr/bin/env bash
# Runs every C test program given as an argument, plain or under valgrind
# (VALGRIND=1), and prints one closing line "N passed, N failed" that sums the
# programs' own closing lines. A program that crashes, leaks (under valgrind)
# or prints no summary line counts as one failure.
set -u
passed=0; failed=0
vg=()
if [ "${VALGRIND:-0}" = 1 ]; then
  vg=(valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect
      --errors-for-leak-kinds=definite,indirect --track-origins=yes)
fi
for prog in "$@"; do
  out=$(mktemp)
  "${vg[@]}" "$prog" >"$out" 2> >(sed "s|^|[$(basename "$prog")] |" >&2)
  rc=$?
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
  if [ -z "$line" ]; then
    echo "$(basename "$prog"): no summary line (exit $rc)"; cat "$out"
    failed=$((failed + 1))
  else
    p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
      echo "$(basename "$prog"): exit $rc (valgrind error, sanitizer report or crash)"; failed=$((failed + 1))
    fi
    echo "$(basename "$prog"): $line"
  fi
  rm -f "$out"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
