/* A tiny test harness for the C tests: CHECK counts, the program ends with
 * check_summary(), which prints the one closing line "N passed, N failed"
 * and returns the process exit code. ffi-tests/run.sh sums those lines. */
#ifndef CLLM_FFI_CHECK_H
#define CLLM_FFI_CHECK_H

#include <stdio.h>

static int check_passed_count = 0;
static int check_failed_count = 0;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            check_passed_count++;                                          \
        } else {                                                           \
            check_failed_count++;                                          \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
        }                                                                  \
    } while (0)

/* Checks that a cllm_status-returning expression gave `expected`. */
#define CHECK_STATUS(expr, expected)                                               \
    do {                                                                           \
        int check_got_ = (int)(expr);                                              \
        CHECK(check_got_ == (int)(expected), "%s returned %s (%s), expected %s",   \
              #expr, cllm_status_str(check_got_), cllm_last_error(),               \
              cllm_status_str((int)(expected)));                                   \
    } while (0)

static inline int check_summary(void) {
    fflush(stdout);
    printf("%d passed, %d failed\n", check_passed_count, check_failed_count);
    return check_failed_count == 0 ? 0 : 1;
}

#endif
