#!/usr/bin/env bash
# Builds the real CLLM trainer three ways, plus our evaluation program:
#   build.sh OUT_DIR [SANITIZER_FLAGS]
# OUT_DIR gets a copy of $CLLM_SRC (the source under ../shared is read-only),
# built by ITS OWN Makefile (its flags, -O0; SANITIZER_FLAGS added through CC
# so that each upstream Makefile keeps its CFLAGS), then:
#   OUT_DIR/tm_original  train_model + CLLM's own cllm_training_threaded.o
#   OUT_DIR/tm_serial    train_model + our drop-in archive (no adapter)
#   OUT_DIR/tm_replica   train_model + our drop-in archive + the CLLM adapter
#                        (only once hosts/crystalline/replica_adapter.c exists)
#   OUT_DIR/eval_model   our evaluation program (CLLM only, no drop-in)
#   OUT_DIR/tm_planted   under TSan only: tm_replica with a planted race
#                        (tsan_planted.c)
# Every train_model is linked with check_wrap.c (fixed srand seed, epoch
# times, weight dumps; see there). train_model.c is compiled with the flags
# of CLLM's tools/Makefile; the drop-in variants compile it against our
# header dropped into a copy of CLLM's include directory.
set -euo pipefail
OUT=${1:?usage: build.sh OUT_DIR [SANITIZER_FLAGS]}
SAN=${2:-}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
CLLM_SRC=${CLLM_SRC:-$ROOT/../shared/hosts/crystalline-6de8f88}
DROPIN_A=${DROPIN_A:-$ROOT/target/release/libcllm_training_threaded.a}
ADAPTER=$ROOT/hosts/crystalline/replica_adapter.c
CHECK=$ROOT/hosts/crystalline/check
NATIVE_LIBS="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"
CC_SAN="gcc $SAN"
# CLLM's own flags (its Makefile for the libraries, tools/Makefile for train_model).
CLLM_CFLAGS="-Wall -Wextra -g -O0 -fPIC -mavx2 -mfma"
TOOLS_CFLAGS="-Wall -Wextra -O2"

[ -d "$CLLM_SRC" ] || { echo "build.sh: no CLLM source at $CLLM_SRC" >&2; exit 1; }
CLLM_SRC=$(cd "$CLLM_SRC" && pwd)
[ -f "$DROPIN_A" ] || { echo "build.sh: no drop-in archive at $DROPIN_A (make libs)" >&2; exit 1; }

# A fresh copy when the source or the sanitizer flags changed.
stamp="$CLLM_SRC $SAN"
if [ ! -f "$OUT/.check-stamp" ] || [ "$(cat "$OUT/.check-stamp")" != "$stamp" ]; then
  rm -rf "$OUT"
  mkdir -p "$(dirname "$OUT")"
  cp -r "$CLLM_SRC" "$OUT"
  chmod -R u+w "$OUT"
  echo "$stamp" > "$OUT/.check-stamp"
fi
OUT=$(cd "$OUT" && pwd)
cd "$OUT"
make -s -j2 CC="$CC_SAN" libcrystalline.so libalgorithms.so libcllm.so >build.log 2>&1 \
  || { cat build.log >&2; echo "build.sh: CLLM's own build failed" >&2; exit 1; }

# Static archives of CLLM's objects, without the module we replace.
rm -f libck_ai.a libck_algo.a libck_core.a
ar rcs libck_ai.a $(ls src/ai/*.o src/ai/infrastructure/*.o | grep -v '/cllm_training_threaded\.o$')
ar rcs libck_algo.a algorithms/src/*.o
ar rcs libck_core.a src/core/*.o src/transcendental/*.o src/geometry/*.o
CLLM_LIBS="-Wl,--start-group libck_ai.a libck_algo.a libck_core.a -Wl,--end-group"

# The drop-in's include directory: CLLM's headers with ours in place of
# cllm_training_threaded.h (as a CLLM user drops it in).
rm -rf dropin && mkdir -p dropin/include dropin/tools
for h in include/*; do ln -s "$OUT/$h" "dropin/$h"; done
ln -sf "$ROOT/include/cllm_training_threaded.h" dropin/include/cllm_training_threaded.h
cp tools/train_model.c dropin/tools/

$CC_SAN $TOOLS_CFLAGS -I include -c tools/train_model.c -o tools/train_model.o
$CC_SAN $TOOLS_CFLAGS -I dropin/include -I "$ROOT/include" -c dropin/tools/train_model.c \
  -o dropin/tools/train_model.o
$CC_SAN $CLLM_CFLAGS -Werror -I include -c "$CHECK/check_wrap.c" -o check_wrap.o
$CC_SAN $CLLM_CFLAGS -Werror -I include -c "$CHECK/eval_model.c" -o eval_model.o

WRAP="-Wl,--wrap=srand,--wrap=threaded_training_create,--wrap=threaded_training_free,--wrap=cllm_write_model"
$CC_SAN -o tm_original tools/train_model.o check_wrap.o src/ai/cllm_training_threaded.o \
  $CLLM_LIBS $WRAP -lpthread -lm
$CC_SAN -o tm_serial dropin/tools/train_model.o check_wrap.o "$DROPIN_A" \
  $CLLM_LIBS $WRAP $NATIVE_LIBS
rm -f tm_replica
if [ -f "$ADAPTER" ]; then
  $CC_SAN $CLLM_CFLAGS -I "$ROOT/include" -I include -c "$ADAPTER" -o replica_adapter.o
  $CC_SAN -o tm_replica dropin/tools/train_model.o check_wrap.o replica_adapter.o "$DROPIN_A" \
    $CLLM_LIBS $WRAP $NATIVE_LIBS
fi
$CC_SAN -o eval_model eval_model.o $CLLM_LIBS -lpthread -lm
# Under TSan, also the trainer with a planted race (tsan_planted.c).
rm -f tm_planted
if [[ "$SAN" == *thread* ]] && [ -f replica_adapter.o ]; then
  $CC_SAN $CLLM_CFLAGS -Werror -I include -c "$CHECK/tsan_planted.c" -o tsan_planted.o
  $CC_SAN -o tm_planted dropin/tools/train_model.o check_wrap.o tsan_planted.o replica_adapter.o \
    "$DROPIN_A" $CLLM_LIBS $WRAP -Wl,--wrap=cllm_batch_iterator_next,--wrap=cllm_batch_free $NATIVE_LIBS
fi
echo "build.sh: $OUT: tm_original tm_serial$( [ -f tm_replica ] && echo ' tm_replica') eval_model$( [ -f tm_planted ] && echo ' tm_planted')"
