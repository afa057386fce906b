/* How loaded the machine was while a demo measured its speed-up. A speed-up
 * needs idle cores: on a shared machine other programs take some, and the
 * figure then says more about them than about the library. load_begin() and
 * load_end() bracket the timed runs; load_report() prints the 1-minute load
 * average and how much CPU other programs (and the hypervisor: steal time)
 * used in between, that is the machine's busy time (/proc/stat) less this
 * process's own (getrusage), and says when that depressed the speed-up.
 * Linux only; elsewhere it prints that it cannot tell. */
#ifndef CLLM_DEMO_LOAD_H
#define CLLM_DEMO_LOAD_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime; include this header first */
#endif
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    double wall_s, own_cpu_s, busy_s, steal_s;
    int ok;
} load_snapshot;

static double load_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static load_snapshot load_take(void) {
    load_snapshot s = {0};
    s.wall_s = load_now_s();
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        s.own_cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
                      (double)ru.ru_stime.tv_usec * 1e-6;
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return s;
    unsigned long long user, nice, sys, idle, iowait, irq, softirq, steal;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle, &iowait, &irq, &softirq,
               &steal) == 8) {
        double tick = (double)sysconf(_SC_CLK_TCK);
        s.busy_s = (double)(user + nice + sys + irq + softirq + steal) / tick;
        s.steal_s = (double)steal / tick;
        s.ok = 1;
    }
    fclose(f);
    return s;
}

static load_snapshot load_begin(void) { return load_take(); }

/* Prints the load and returns 1 when other programs used more than a fifth of
 * a CPU on average during the timed runs (the speed-up is then depressed). */
static int load_report(load_snapshot begin, const char *what) {
    load_snapshot end = load_take();
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    double avg1 = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &avg1) != 1) avg1 = -1;
        fclose(f);
    }
    double wall = end.wall_s - begin.wall_s;
    if (!begin.ok || !end.ok || wall <= 0) {
        printf("  load: cannot tell on this system (no /proc/stat)\n");
        return 0;
    }
    double others = (end.busy_s - begin.busy_s) - (end.own_cpu_s - begin.own_cpu_s);
    double others_cpus = others > 0 ? others / wall : 0;
    double steal_cpus = (end.steal_s - begin.steal_s) / wall;
    printf("  load: 1-minute load average %.2f on %ld CPUs; during the timed runs other programs used %.2f CPU "
           "(of which steal %.2f)\n",
           avg1, cpus, others_cpus, steal_cpus);
    if (others_cpus > 0.2) {
        printf("  note: the machine was busy, so %s is depressed by load: with %.2f of %ld CPUs taken by others,\n"
               "        an idle machine would show more; run it again when the machine is idle\n",
               what, others_cpus, cpus);
        return 1;
    }
    return 0;
}

#endif
