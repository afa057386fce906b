/* The planted bugs of `make asan` (mk/sanitize.mk): proof that the sanitizers
 * are live on every run. Without an argument the program runs itself once per
 * mode (a child process each, since the first report ends a process) and
 * checks what the child printed and how it exited:
 *   clean   no bug: exit 0, no report (the control)
 *   heap    one byte written past a malloc'd block: ASan's heap-buffer-overflow
 *   signed  INT_MAX - 5 + 6: UBSan's signed integer overflow
 *   leak    a block whose last pointer is dropped: LeakSanitizer's report
 * Built without -fsanitize, the heap, signed and leak modes exit 0 with no
 * report, and this test fails. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

/* Volatile: the compiler can neither prove the bugs nor drop them. */
static void *volatile leak_sink;

static int planted_heap(size_t n) {
    char *p = malloc(n);
    if (p == NULL) return 2;
    volatile size_t at = n; /* one past the end */
    p[at] = 'x';
    int r = p[0];
    free(p);
    return r == 'x';
}

static int planted_signed(int k) {
    volatile int big = INT_MAX - 5;
    int sum = big + k; /* k = 6: overflows */
    printf("sum %d\n", sum);
    return 0;
}

/* noinline, and the stack overwritten after it returns: no stale copy of the
 * pointer is left for LeakSanitizer's conservative scan to find. */
__attribute__((noinline)) static void planted_leak_alloc(void) {
    leak_sink = malloc(4096);
    memset(leak_sink, 1, 4096);
    leak_sink = NULL;
}

__attribute__((noinline)) static void scrub_stack(void) {
    volatile char pad[4096];
    for (size_t i = 0; i < sizeof pad; i++) pad[i] = 0;
}

static int child(const char *mode) {
    if (strcmp(mode, "clean") == 0) {
        char *p = malloc(16);
        if (p == NULL) return 2;
        p[15] = 0;
        free(p);
        return 0;
    }
    if (strcmp(mode, "heap") == 0) return planted_heap(strlen(mode));
    if (strcmp(mode, "signed") == 0) return planted_signed((int)strlen(mode));
    if (strcmp(mode, "leak") == 0) {
        planted_leak_alloc();
        scrub_stack();
        return 0;
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}

/* Runs this program with `mode`, its stdout and stderr into out (truncated
 * to cap - 1 bytes, NUL-terminated); returns the wait status, or -1. */
static int run_child(const char *mode, char *out, size_t cap) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execl("/proc/self/exe", "test_planted", mode, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    char buf[4096];
    ssize_t got;
    while ((got = read(fds[0], buf, sizeof buf)) > 0) {
        size_t take = (size_t)got;
        if (take > cap - 1 - len) take = cap - 1 - len;
        memcpy(out + len, buf, take);
        len += take;
    }
    out[len] = 0;
    close(fds[0]);
    int status;
    if (waitpid(pid, &status, 0) != pid) return -1;
    return status;
}

static void expect(const char *mode, const char *report) {
    static char out[1 << 16];
    int status = run_child(mode, out, sizeof out);
    int exited_zero = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    int reported = strstr(out, "Sanitizer") != NULL || strstr(out, "runtime error:") != NULL;
    if (report == NULL) {
        CHECK(exited_zero && !reported, "mode %s: status %#x, output:\n%s", mode, status, out);
    } else {
        CHECK(!exited_zero && strstr(out, report) != NULL,
              "mode %s: status %#x, wanted a failure with \"%s\", output:\n%s", mode, status, report, out);
        /* The report names the planted line: the stack trace is symbolised. */
        CHECK(strstr(out, "test_planted.c:") != NULL, "mode %s: no source line in the report:\n%s", mode, out);
    }
}

int main(int argc, char **argv) {
    if (argc > 1) return child(argv[1]);
    expect("clean", NULL);
    expect("heap", "ERROR: AddressSanitizer: heap-buffer-overflow");
    expect("signed", "runtime error: signed integer overflow");
    expect("leak", "ERROR: LeakSanitizer: detected memory leaks");
    return check_summary();
}
