/* Example (c) of issue 14: role pools with a frame guard writing the
 * monitoring CSV, with no hand-written glue.
 *
 *   roles_frame_monitor [CSV_PATH] [FRAMES]
 *
 * Without CSV_PATH the CSV goes to a temporary file, removed at the end.
 * The role pools and the frame guard are configured from the environment
 * (cllm_roles_create_from_env: MAX_AI_THREADS, ...; cllm_frame_options_from_env:
 * FRAME_BUDGET_MS, MONITOR_INTERVAL_MS, ...). Each frame steps 64 "agents"
 * on the ai pool (cllm_roles_parallel_for), each eating from a shared food
 * store behind a counting lock; every 8th frame a statistics task goes to
 * the stats pool. When a row is due, one call samples every counter
 * (cllm_roles_monitor_inputs) and one call writes the row
 * (cllm_frame_monitor_write, the CSV header first).
 *
 * At the end the program reads its CSV back and checks it: the header, at
 * least two rows, every share in [0, 1], every frame counted, no emergency
 * stop. It prints a one-line summary and exits non-zero if a check failed. */
#define _POSIX_C_SOURCE 200809L
#include "cllm_threaded.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AGENTS 64

struct world {
    double energy[AGENTS];
    double food;
    cllm_lock *food_lock;
    unsigned long long frame;
};

/* One agent's frame: some arithmetic, then a bite of the shared food. */
static int step_agent(void *arg, size_t i) {
    struct world *w = arg;
    double x = (double)(i + 1);
    for (int k = 0; k < 2000 + (int)(i % 7) * 300; k++) x = x * 0.999 + 0.5 / (x + 1.0);
    if (cllm_lock_lock(w->food_lock) != CLLM_OK) return 1;
    double bite = w->food > 0.01 ? 0.01 : w->food;
    w->food -= bite;
    cllm_lock_unlock(w->food_lock);
    w->energy[i] += bite + x * 1e-9;
    return 0;
}

/* The statistics task: the mean energy (read while the loop is idle). */
struct stats {
    const struct world *w;
    double mean;
};

static int compute_stats(void *arg) {
    struct stats *s = arg;
    double sum = 0;
    for (int i = 0; i < AGENTS; i++) sum += s->w->energy[i];
    s->mean = sum / AGENTS;
    return 0;
}

static int fail(const char *what) {
    fprintf(stderr, "roles_frame_monitor: %s: %s\n", what, cllm_last_error());
    return 1;
}

/* Checks the CSV the run wrote; returns the number of failed checks. */
static int check_csv(const char *path, unsigned long long frames_run) {
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return 1;
    }
    char header[1024], line[CLLM_FRAME_ROW_MAX];
    int failed = 0, rows = 0;
    unsigned long long frames = 0;
    if (!fgets(header, sizeof header, f) || strncmp(header, "timestamp,", 10) != 0) {
        fprintf(stderr, "check: the CSV does not start with the header\n");
        fclose(f);
        return 1;
    }
    /* Column names, in order. */
    char names[32][40];
    int columns = 0;
    for (char *p = header; *p && columns < 32; columns++) {
        size_t n = strcspn(p, ",\n");
        snprintf(names[columns], sizeof names[columns], "%.*s", (int)n, p);
        p += n;
        if (*p == ',') p++;
        else break;
    }
    while (fgets(line, sizeof line, f)) {
        rows++;
        int col = 0;
        for (char *p = line; col < columns; col++) {
            size_t n = strcspn(p, ",\n");
            char cell[64];
            snprintf(cell, sizeof cell, "%.*s", (int)n, p);
            const char *name = names[col];
            int is_share = strstr(name, "efficiency") || strstr(name, "utilization") ||
                           strcmp(name, "lock_contention_rate") == 0 || strcmp(name, "under_budget_share") == 0;
            if (cell[0] != 0) {
                char *end;
                double v = strtod(cell, &end);
                if (*end != 0 || !isfinite(v)) {
                    fprintf(stderr, "check: row %d %s = '%s' is not a number\n", rows, name, cell);
                    failed++;
                } else if (is_share && (v < 0 || v > 1)) {
                    fprintf(stderr, "check: row %d %s = %g outside [0, 1]\n", rows, name, v);
                    failed++;
                } else if (strcmp(name, "frames") == 0) {
                    frames += (unsigned long long)v;
                } else if (strcmp(name, "emergency_stop") == 0 && v != 0) {
                    fprintf(stderr, "check: row %d reports an emergency stop\n", rows);
                    failed++;
                } else if (strcmp(name, "parallel_speedup_ratio") == 0 && v < 0) {
                    fprintf(stderr, "check: row %d negative speed-up %g\n", rows, v);
                    failed++;
                }
            } else if (strcmp(name, "ai_thread_efficiency") == 0 || strcmp(name, "frames") == 0) {
                fprintf(stderr, "check: row %d has no %s\n", rows, name);
                failed++;
            }
            p += n;
            if (*p == ',') p++;
            else if (col + 1 < columns) {
                fprintf(stderr, "check: row %d has %d cells, the header %d\n", rows, col + 1, columns);
                failed++;
                break;
            }
        }
    }
    fclose(f);
    if (rows < 2) {
        fprintf(stderr, "check: %d rows, expected at least 2\n", rows);
        failed++;
    }
    if (frames != frames_run) {
        fprintf(stderr, "check: the rows count %llu frames, the loop ran %llu\n", frames, frames_run);
        failed++;
    }
    printf("roles_frame_monitor: %d rows, %llu frames, %d failed checks (%s)\n", rows, frames, failed, path);
    return failed;
}

int main(int argc, char **argv) {
    unsigned long long frames = argc > 2 ? strtoull(argv[2], NULL, 10) : 120;
    char temp[4096];
    const char *path = argc > 1 ? argv[1] : NULL;
    int fd;
    if (path) {
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    } else {
        const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(temp, sizeof temp, "%s/roles_frame_monitor-XXXXXX", dir);
        fd = mkstemp(temp);
        path = temp;
    }
    if (fd < 0) {
        perror(path);
        return 1;
    }

    cllm_roles *roles = NULL;
    if (cllm_roles_create_from_env(&roles) != CLLM_OK) return fail("cllm_roles_create_from_env");
    cllm_frame_options options;
    if (cllm_frame_options_from_env(&options) != CLLM_OK) {
        cllm_roles_free(roles);
        return fail("cllm_frame_options_from_env");
    }
    if (!getenv("MONITOR_INTERVAL_MS")) options.monitor_interval_ns = 100000000; /* a short run: rows every 0.1 s */
    cllm_frame *guard = NULL;
    if (cllm_frame_create(&options, &guard) != CLLM_OK) {
        cllm_roles_free(roles);
        return fail("cllm_frame_create");
    }
    struct world w = {.food = 1e9};
    if (cllm_lock_create("food", &w.food_lock) != CLLM_OK) return fail("cllm_lock_create");
    /* The counters before the loop are the first row's starting point. */
    cllm_frame_monitor_inputs inputs;
    if (cllm_roles_monitor_inputs(roles, &inputs) != CLLM_OK ||
        cllm_frame_monitor_baseline(guard, &inputs) != CLLM_OK)
        return fail("baseline");

    struct stats stats = {&w, 0};
    int status = 0;
    /* At least `frames` frames, and on until two rows are written: on a fast,
     * quiet machine 120 frames take less than one monitoring interval. */
    int rows_written = 0;
    for (w.frame = 0; (w.frame < frames || rows_written < 2) && !status; w.frame++) {
        if (cllm_frame_begin(guard) != CLLM_OK) status = fail("cllm_frame_begin");
        if (cllm_roles_parallel_for(roles, CLLM_ROLE_AI, AGENTS, CLLM_PARTITION_DYNAMIC, 0, step_agent, &w) != CLLM_OK)
            status = fail("the agent loop");
        if (w.frame % 8 == 0) {
            cllm_task *task = NULL;
            if (cllm_roles_submit(roles, CLLM_ROLE_STATS, compute_stats, &stats, &task) != CLLM_OK ||
                cllm_task_wait(task) != CLLM_OK)
                status = fail("the statistics task");
            cllm_task_free(task);
        }
        if (cllm_frame_end(guard) != CLLM_OK) status = fail("cllm_frame_end");
        bool due = false;
        if (cllm_frame_monitor_due(guard, &due) != CLLM_OK) status = fail("cllm_frame_monitor_due");
        if (due && (cllm_roles_monitor_inputs(roles, &inputs) != CLLM_OK ||
                    cllm_frame_monitor_write(guard, &inputs, fd) != CLLM_OK))
            status = fail("writing a monitoring row");
        rows_written += due;
    }
    /* The last row covers the tail of the run. */
    if (!status && (cllm_roles_monitor_inputs(roles, &inputs) != CLLM_OK ||
                    cllm_frame_monitor_write(guard, &inputs, fd) != CLLM_OK))
        status = fail("writing the last row");
    close(fd);
    cllm_lock_free(w.food_lock);
    cllm_frame_free(guard);
    cllm_roles_free(roles);
    int failed = status ? status : check_csv(path, w.frame);
    if (path == temp) unlink(temp);
    return failed == 0 ? 0 : 1;
}
