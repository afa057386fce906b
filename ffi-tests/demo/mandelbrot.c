/* Demo: a Mandelbrot image rendered by the sphere pool through the C API.
 * Rows near the set cost far more than rows outside it, so the work is
 * uneven: cllm_pool_parallel_for's work stealing keeps every core busy.
 * Prints the time on one thread and on all cores, the speed-up, and checks
 * that both images are identical. Writes build/mandelbrot.pgm. */
#define _POSIX_C_SOURCE 200809L
#include "cllm_threaded.h"
#include "load.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { W = 1200, H = 900, MAX_ITER = 2000 };

static void render_rows(uint8_t *img, size_t y0, size_t y1) {
    for (size_t y = y0; y < y1; y++) {
        for (size_t x = 0; x < W; x++) {
            double cr = -2.2 + 3.0 * (double)x / W, ci = -1.2 + 2.4 * (double)y / H;
            double zr = 0, zi = 0;
            int i = 0;
            while (i < MAX_ITER && zr * zr + zi * zi < 4.0) {
                double t = zr * zr - zi * zi + cr;
                zi = 2 * zr * zi + ci;
                zr = t;
                i++;
            }
            img[y * W + x] = (uint8_t)(i == MAX_ITER ? 0 : 255 - (i * 4 % 256));
        }
    }
}

static int render_chunk(void *arg, size_t begin, size_t end, size_t participant) {
    (void)participant;
    render_rows(arg, begin, end);
    return 0;
}

int main(void) {
    uint8_t *seq = malloc((size_t)W * H), *par = malloc((size_t)W * H);
    if (!seq || !par) return 1;

    load_snapshot load = load_begin();
    double t0 = load_now_s();
    render_rows(seq, 0, H);
    double t_seq = load_now_s() - t0;

    cllm_pool *pool = NULL;
    if (cllm_pool_create(NULL, &pool) != CLLM_OK) { /* all cores: cores-1 spheres + caller */
        fprintf(stderr, "cllm_pool_create: %s\n", cllm_last_error());
        return 1;
    }
    size_t spheres = 0;
    cllm_pool_num_spheres(pool, &spheres);
    double best = 1e9;
    for (int rep = 0; rep < 3; rep++) {
        t0 = load_now_s();
        if (cllm_pool_parallel_for(pool, 0, H, 4, render_chunk, par) != CLLM_OK) {
            fprintf(stderr, "cllm_pool_parallel_for: %s\n", cllm_last_error());
            return 1;
        }
        double t = load_now_s() - t0;
        if (t < best) best = t;
    }
    cllm_pool_free(pool);

    int same = memcmp(seq, par, (size_t)W * H) == 0;
    FILE *f = fopen("build/mandelbrot.pgm", "wb");
    if (f) {
        fprintf(f, "P5\n%d %d\n255\n", W, H);
        fwrite(par, 1, (size_t)W * H, f);
        fclose(f);
    }
    printf("mandelbrot %dx%d, %d iterations max\n", W, H, MAX_ITER);
    printf("  1 thread:            %7.1f ms\n", t_seq * 1e3);
    printf("  %zu spheres + caller: %7.1f ms (best of 3)\n", spheres, best * 1e3);
    printf("  speed-up %.2fx on %zu cores; images identical: %s\n", t_seq / best, cllm_available_cores(), same ? "yes" : "NO");
    load_report(load, "the speed-up");
    free(seq);
    free(par);
    return same ? 0 : 1;
}
