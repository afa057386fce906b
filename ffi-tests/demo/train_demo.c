/* The training demo (make demo): a CLLM-like C model (ffi-tests/host) trained
 * through the drop-in API (threaded_training_*) on the corpus shipped in
 * data/corpus, loaded by the corpus loader (cllm_loader_*, read once, then
 * from its cache).
 *   1. replica mode on every core, one progress line per epoch;
 *   2. the speed-up of replica mode with every core over one sphere, each
 *      timed on one epoch from the same starting weights, in this process
 *      (the two take turns three times; the fastest of each is kept).
 * Ends with: demo epochs=<n> first_loss=<x> last_loss=<x> speedup=<x> threads=<n> */
#define _POSIX_C_SOURCE 200809L
#include "cllm_training_threaded.h"
#include "host/cllm_host.h"
#include "load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EPOCHS = 6, MAX_TOKENS = 96 * 1024 };

static void die(const char *what) {
    fprintf(stderr, "train_demo: %s: %s\n", what, cllm_last_error());
    exit(1);
}

/* Seconds for one epoch of replica mode with `threads` spheres, from the
 * weights of a fresh model (the same for every call). */
static double time_one_epoch(const cllm_host_config *cfg, const uint32_t *tokens, size_t n, int threads) {
    CLLMTraining *t = cllm_host_training_create(cfg);
    CLLMBatchIterator *it = cllm_host_iterator_create(tokens, n, cfg->batch_size, cfg->seq_len, 1);
    cllm_replica_ops ops = cllm_host_replica_ops();
    ThreadedTrainingSystem *sys = threaded_training_create_with_replicas(t, it, threads, &ops);
    if (!t || !it || !sys) die("create");
    double t0 = load_now_s();
    if (threaded_train_epoch(sys) < 0) die("epoch");
    double secs = load_now_s() - t0;
    threaded_training_free(sys);
    cllm_host_iterator_free(it);
    cllm_host_training_free(t);
    return secs;
}

int main(int argc, char **argv) {
    const char *corpus = argc > 1 ? argv[1] : "data/corpus";

    /* The corpus: every file read once, byte-level tokens, cached. */
    cllm_loader_options lo = cllm_loader_options_default();
    lo.tokenizer = CLLM_TOKENIZER_BYTES;
    lo.max_vocab = 128;
    lo.cache_path = "build/demo/corpus.cache";
    cllm_loader *loader = NULL;
    if (cllm_loader_create(corpus, &lo, &loader) != CLLM_OK) die(corpus);
    cllm_loader_report rep;
    if (cllm_loader_get_report(loader, &rep) != CLLM_OK) die("report");
    const uint32_t *all = NULL;
    size_t count = 0, vocab = 0;
    if (cllm_loader_tokens(loader, &all, &count) != CLLM_OK || cllm_loader_vocab_size(loader, &vocab) != CLLM_OK)
        die("tokens");
    printf("corpus %s: %llu files, %llu bytes, %llu tokens, vocabulary %zu; files opened %llu (%s)\n", corpus,
           (unsigned long long)rep.files, (unsigned long long)rep.bytes, (unsigned long long)rep.tokens, vocab,
           (unsigned long long)rep.files_opened, rep.cache_status == CLLM_LOADER_CACHE_STATUS_HIT ? "from the cache" : "read");
    size_t n = count < MAX_TOKENS ? count : MAX_TOKENS;

    cllm_host_config cfg = cllm_host_config_demo();
    cfg.vocab_size = (uint32_t)vocab;
    int threads = (int)cllm_available_cores();

    /* 1. Train on every core. */
    CLLMTraining *t = cllm_host_training_create(&cfg);
    CLLMBatchIterator *it = cllm_host_iterator_create(all, n, cfg.batch_size, cfg.seq_len, 1);
    cllm_replica_ops ops = cllm_host_replica_ops();
    ThreadedTrainingSystem *sys = threaded_training_create_with_replicas(t, it, threads, &ops);
    if (!t || !it || !sys) die("threaded_training_create_with_replicas");
    printf("model: %zu parameters; %zu tokens per epoch in batches of %ux%u; replica mode, %d spheres\n",
           cllm_host_num_params(t), n, cfg.batch_size, cfg.seq_len, threaded_training_get_num_workers(sys));
    float first = 0, last = 0;
    for (int e = 1; e <= EPOCHS; e++) {
        float loss = threaded_train_epoch(sys);
        if (loss < 0) die("threaded_train_epoch");
        cllm_training_stats st;
        threaded_training_get_stats(sys, &st);
        printf("epoch %d/%d  loss %.4f  %8.0f tokens/s  %.2f s  gradient norm %.4f\n", e, EPOCHS, loss,
               st.last_epoch_tokens_per_second, st.last_epoch_seconds, st.gradient_norm);
        fflush(stdout);
        if (e == 1) first = loss;
        last = loss;
    }
    threaded_training_print_stats(sys);
    threaded_training_free(sys);
    cllm_host_iterator_free(it);
    cllm_host_training_free(t);

    /* 2. Speed-up of every core over one sphere, same data, same start:
     * the two take turns three times and the fastest of each is kept
     * (other programs on a shared machine only ever slow a run down). */
    double one = 1e30, many = 1e30;
    load_snapshot load = load_begin();
    for (int r = 0; r < 3; r++) {
        double a = time_one_epoch(&cfg, all, n, 1), b = time_one_epoch(&cfg, all, n, threads);
        if (a < one) one = a;
        if (b < many) many = b;
    }
    printf("one epoch (fastest of 3 each): 1 sphere %.2f s, %d spheres %.2f s\n", one, threads, many);
    load_report(load, "the speed-up");
    cllm_loader_free(loader);
    printf("demo epochs=%d first_loss=%.4f last_loss=%.4f speedup=%.2f threads=%d\n", EPOCHS, first, last, one / many,
           threads);
    return last < first ? 0 : 1;
}
