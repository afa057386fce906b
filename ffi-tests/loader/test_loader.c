/* C tests of the corpus loader (cllm_loader_*): loads, report, tokens,
 * decode, batches and shards, prefetch, the cache and its invalidation, and
 * every documented bad input. Each test works in a temporary directory it
 * creates and removes. Small corpora: the file runs under valgrind. */
#define _GNU_SOURCE /* F_SETLEASE */
#include <fcntl.h>
#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "cllm_threaded.h"

static char root[256];

static void path_of(char* out, size_t size, const char* rel) {
    snprintf(out, size, "%s/%s", root, rel);
}

static void write_file(const char* rel, const char* data, size_t len) {
    char path[512];
    path_of(path, sizeof path, rel);
    /* Create parent directories. */
    for (char* p = path + strlen(root) + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            mkdir(path, 0755);
            *p = '/';
        }
    }
    FILE* f = fopen(path, "wb");
    CHECK(f != NULL, "cannot write %s", path);
    if (f) {
        fwrite(data, 1, len, f);
        fclose(f);
    }
}

static void write_text(const char* rel, const char* text) { write_file(rel, text, strlen(text)); }

static int remove_entry(const char* path, const struct stat* st, int flag, struct FTW* ftw) {
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static void remove_tree(const char* path) { nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* True if the file system under root grants read leases (ext4, xfs and
 * tmpfs do, NFS does not) with a break time of at least 5 s: where it does,
 * a load served from the cache maps the tokens; elsewhere it copies them,
 * and the tests check whichever happens. */
static int leases_work(void) {
    char probe[512];
    path_of(probe, sizeof probe, "lease-probe");
    write_text("lease-probe", "x");
    int fd = open(probe, O_RDONLY);
    int leased = fd >= 0 && fcntl(fd, F_SETLEASE, F_RDLCK) == 0;
    if (fd >= 0) close(fd);
    unlink(probe);
    FILE* f = fopen("/proc/sys/fs/lease-break-time", "r");
    long seconds = 0;
    if (f) {
        if (fscanf(f, "%ld", &seconds) != 1) seconds = 0;
        fclose(f);
    }
    return leased && seconds >= 5;
}

/* Lets the file system clock move past the files just written, so that a
 * cache built next does not treat them as "racy" (too recent to trust). */
static void settle(void) { sleep_ms(30); }

/* The words corpus of most tests: 3 documents in 2 directories, 1 binary
 * file and 1 empty file. */
static void make_corpus(const char* dir) {
    char rel[128];
    snprintf(rel, sizeof rel, "%s/a.txt", dir);
    write_text(rel, "the quick brown fox jumps over the lazy dog. the dog sleeps, the fox runs.\n");
    snprintf(rel, sizeof rel, "%s/sub/b.txt", dir);
    write_text(rel, "a fox, a dog and a cat: the cat watches the fox and the dog.\n");
    snprintf(rel, sizeof rel, "%s/sub/c.txt", dir);
    write_text(rel, "every dog has its day; every fox has its den. the end.\n");
    snprintf(rel, sizeof rel, "%s/blob.bin", dir);
    write_file(rel, "\x89PNG\0\0\0\x0d", 8);
    snprintf(rel, sizeof rel, "%s/empty.txt", dir);
    write_text(rel, "");
}

/* True if the ids cllm_loader_stored_tokens gives (16 or 32 bits, no copy)
 * are `want`'s `n` ids. */
static int stored_tokens_are(const cllm_loader* loader, const uint32_t* want, size_t n) {
    const void* ids = NULL;
    size_t count = 0, width = 0;
    if (cllm_loader_stored_tokens(loader, &ids, &count, &width) != CLLM_OK || count != n) return 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t id = width == 2 ? ((const uint16_t*)ids)[i] : width == 4 ? ((const uint32_t*)ids)[i] : UINT32_MAX;
        if (id != want[i]) return 0;
    }
    return 1;
}

static cllm_loader* load_dir(const char* dir, const cllm_loader_options* options) {
    char path[512];
    path_of(path, sizeof path, dir);
    cllm_loader* loader = NULL;
    CHECK_STATUS(cllm_loader_create(path, options, &loader), CLLM_OK);
    return loader;
}

static void test_defaults_and_layout(void) {
    cllm_loader_options o = cllm_loader_options_default();
    CHECK(o.tokenizer == CLLM_TOKENIZER_WORDS && o.max_vocab == 32768 && o.num_threads == 0, "defaults");
    CHECK(o.cache_path == NULL && !o.durable_cache && o.document_markers, "defaults");
    cllm_loader_iter_options b = cllm_loader_iter_options_default();
    CHECK(b.batch_size == 8 && b.seq_len == 64 && b.shuffle && !b.drop_last && b.prefetch == 0, "batch defaults");
    /* The layout of the host's CLLMBatch: three pointers, then three uint32. */
    CHECK(offsetof(cllm_loader_batch, input_ids) == 0, "layout");
    CHECK(offsetof(cllm_loader_batch, target_ids) == sizeof(void*), "layout");
    CHECK(offsetof(cllm_loader_batch, attention_mask) == 2 * sizeof(void*), "layout");
    CHECK(offsetof(cllm_loader_batch, batch_size) == 3 * sizeof(void*), "layout");
    CHECK(offsetof(cllm_loader_batch, num_valid_tokens) == 3 * sizeof(void*) + 8, "layout");
    if (sizeof(void*) == 8) CHECK(sizeof(cllm_loader_batch) == 40, "40 bytes on 64-bit");
}

static void test_load_report_tokens_decode(void) {
    make_corpus("words");
    cllm_loader* loader = load_dir("words", NULL);
    if (!loader) return;
    cllm_loader_report r;
    CHECK_STATUS(cllm_loader_get_report(loader, &r), CLLM_OK);
    CHECK(r.inputs == 5 && r.regular_files == 5 && r.files == 3 && r.files_skipped == 2, "files %llu/%llu/%llu",
          (unsigned long long)r.inputs, (unsigned long long)r.files, (unsigned long long)r.files_skipped);
    CHECK(r.files_opened == 5, "each regular file opened once, got %llu", (unsigned long long)r.files_opened);
    CHECK(r.cache_status == CLLM_LOADER_CACHE_STATUS_DISABLED && !r.cache_written, "no cache");
    CHECK(r.total_ns > 0 && r.total_ns >= r.walk_ns && r.tokens > 40, "tokens %llu, %llu ns",
          (unsigned long long)r.tokens, (unsigned long long)r.total_ns);

    char name[64], reason[64];
    size_t name_len = 0, reason_len = 0;
    CHECK_STATUS(cllm_loader_skipped_file_name(loader, 0, name, sizeof name, &name_len), CLLM_OK);
    CHECK_STATUS(cllm_loader_skipped_file_reason(loader, 0, reason, sizeof reason, &reason_len), CLLM_OK);
    CHECK(strcmp(name, "blob.bin") == 0 && name_len == 8 && strstr(reason, "NUL byte") != NULL, "%s: %s", name, reason);
    CHECK(reason_len == strlen(reason), "reason length %zu", reason_len);
    CHECK_STATUS(cllm_loader_skipped_file_name(loader, 1, name, sizeof name, &name_len), CLLM_OK);
    CHECK_STATUS(cllm_loader_skipped_file_reason(loader, 1, reason, sizeof reason, &reason_len), CLLM_OK);
    CHECK(strcmp(name, "empty.txt") == 0 && strcmp(reason, "empty file") == 0, "%s: %s", name, reason);
    CHECK_STATUS(cllm_loader_skipped_file_name(loader, 2, name, sizeof name, &name_len), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_loader_skipped_file_reason(loader, 2, reason, sizeof reason, &reason_len),
                 CLLM_ERR_INVALID_ARGUMENT);
    /* "empty.txt" needs 10 bytes: 9 is too small, nothing written, 9 needed. */
    memset(name, 'x', sizeof name);
    CHECK_STATUS(cllm_loader_skipped_file_name(loader, 1, name, 9, &name_len), CLLM_ERR_BUFFER_TOO_SMALL);
    CHECK(name_len == 9 && name[0] == 'x', "needed %zu, buffer untouched", name_len);

    /* The report text: size query, then the text. */
    size_t text_len = 0, again = 0;
    CHECK_STATUS(cllm_loader_report_text(loader, NULL, 0, &text_len), CLLM_ERR_BUFFER_TOO_SMALL);
    CHECK(text_len > 20, "report length %zu", text_len);
    char* text = malloc(text_len + 1);
    if (text) {
        memset(text, 'x', text_len + 1);
        CHECK_STATUS(cllm_loader_report_text(loader, text, text_len, &again), CLLM_ERR_BUFFER_TOO_SMALL);
        CHECK(again == text_len && text[0] == 'x', "one byte short: nothing written");
        CHECK_STATUS(cllm_loader_report_text(loader, text, text_len + 1, &again), CLLM_OK);
        CHECK(again == text_len && strlen(text) == text_len, "length %zu of %zu", again, text_len);
        CHECK(strstr(text, "3 files") && strstr(text, "skipped blob.bin"), "report text: %s", text);
        free(text);
    }

    const uint32_t* tokens = NULL;
    size_t count = 0, vocab = 0;
    CHECK_STATUS(cllm_loader_tokens(loader, &tokens, &count), CLLM_OK);
    CHECK_STATUS(cllm_loader_vocab_size(loader, &vocab), CLLM_OK);
    CHECK(count == r.tokens && vocab == r.vocab_size, "tokens %zu vocab %zu", count, vocab);
    CHECK(tokens[0] == 2 && tokens[count - 1] == 3, "BOS first, EOS last");
    size_t bad = 0;
    for (size_t i = 0; i < count; i++) bad += tokens[i] >= vocab || tokens[i] == 0;
    CHECK(bad == 0, "%zu ids out of range or PAD", bad);

    char buf[256];
    size_t len = 0;
    CHECK_STATUS(cllm_loader_decode(loader, tokens, 11, buf, sizeof buf, &len), CLLM_OK);
    CHECK(strcmp(buf, "the quick brown fox jumps over the lazy dog.") == 0, "decoded '%s'", buf);
    CHECK(len == strlen(buf), "length %zu", len);
    /* Too small (the text and its NUL need len + 1 bytes): nothing
     * written, the length needed in *out_len; NULL with 0 asks the size. */
    char small[8];
    memset(small, 'x', sizeof small);
    size_t needed = 0;
    CHECK_STATUS(cllm_loader_decode(loader, tokens, 11, small, sizeof small, &needed), CLLM_ERR_BUFFER_TOO_SMALL);
    CHECK(needed == len && small[0] == 'x', "needed %zu, buffer untouched", needed);
    CHECK_STATUS(cllm_loader_decode(loader, tokens, 11, buf, len, &needed), CLLM_ERR_BUFFER_TOO_SMALL);
    needed = 0;
    CHECK_STATUS(cllm_loader_decode(loader, tokens, 11, NULL, 0, &needed), CLLM_ERR_BUFFER_TOO_SMALL);
    CHECK(needed == len, "length query");
    CHECK_STATUS(cllm_loader_decode(loader, tokens, 11, buf, len + 1, &needed), CLLM_OK);
    CHECK_STATUS(cllm_loader_decode(loader, tokens, 0, buf, 1, &needed), CLLM_OK);
    CHECK(needed == 0 && buf[0] == 0, "no ids: empty text");
    uint32_t out_of_range = (uint32_t)vocab;
    CHECK_STATUS(cllm_loader_decode(loader, &out_of_range, 1, buf, sizeof buf, &len), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_loader_decode(loader, NULL, 3, buf, sizeof buf, &len), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_loader_decode(loader, tokens, 3, NULL, 5, &len), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_loader_decode(loader, tokens, 3, buf, sizeof buf, NULL), CLLM_ERR_NULL);
    CHECK(stored_tokens_are(loader, tokens, count), "the stored ids are the tokens");
    const void* ids = NULL;
    size_t n = 0, width = 0;
    CHECK_STATUS(cllm_loader_stored_tokens(loader, &ids, &n, &width), CLLM_OK);
    CHECK(width == 2, "a small vocabulary is stored in 16 bits: %zu", width);
    CHECK_STATUS(cllm_loader_stored_tokens(NULL, &ids, &n, &width), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_loader_stored_tokens(loader, NULL, &n, &width), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_loader_stored_tokens(loader, &ids, NULL, &width), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_loader_stored_tokens(loader, &ids, &n, NULL), CLLM_ERR_NULL);
    cllm_loader_free(loader);
}

/* Reads every batch of an iterator into one array of (inputs, targets, mask
 * as 0/1, valid) per batch; returns the number of batches. */
static size_t drain(cllm_loader_iter* it, uint32_t* out, size_t cap_batches, size_t cells) {
    size_t n = 0;
    for (;;) {
        cllm_loader_batch* b = NULL;
        int s = cllm_loader_iter_next(it, &b);
        CHECK_STATUS(s, CLLM_OK);
        if (s != CLLM_OK || b == NULL) break;
        if (n < cap_batches) {
            uint32_t* row = out + n * (3 * cells + 1);
            memcpy(row, b->input_ids, cells * 4);
            memcpy(row + cells, b->target_ids, cells * 4);
            for (size_t i = 0; i < cells; i++) row[2 * cells + i] = b->attention_mask[i] == 1.0f;
            row[3 * cells] = b->num_valid_tokens;
        }
        n++;
        cllm_loader_batch_free(b);
    }
    return n;
}

static void test_batches_shards_prefetch(void) {
    char text[8192];
    size_t at = 0;
    for (int i = 0; i < 600 && at + 16 < sizeof text; i++) at += (size_t)snprintf(text + at, sizeof text - at, "w%d ", i % 97);
    write_text("batches/t.txt", text);
    cllm_loader_options o = cllm_loader_options_default();
    o.document_markers = false;
    cllm_loader* loader = load_dir("batches", &o);
    if (!loader) return;
    const uint32_t* tokens;
    size_t count;
    CHECK_STATUS(cllm_loader_tokens(loader, &tokens, &count), CLLM_OK);
    CHECK(count == 600, "600 tokens, got %zu", count);

    cllm_loader_iter_options b = cllm_loader_iter_options_default();
    b.batch_size = 4;
    b.seq_len = 16;
    b.shuffle = false;
    cllm_loader_iter* it = NULL;
    CHECK_STATUS(cllm_loader_iter_create(loader, &b, 0, 1, &it), CLLM_OK);
    size_t nb = 0;
    CHECK_STATUS(cllm_loader_iter_num_batches(it, &nb), CLLM_OK);
    CHECK(nb == 10, "599 pairs / 16 = 38 sequences (37 full) -> 10 batches, got %zu", nb);
    /* In order: batch 0 row 0 is tokens 0..15, targets 1..16. */
    cllm_loader_batch* first = NULL;
    CHECK_STATUS(cllm_loader_iter_next(it, &first), CLLM_OK);
    if (first) {
        CHECK(first->batch_size == 4 && first->seq_len == 16 && first->num_valid_tokens == 64, "full batch");
        CHECK(memcmp(first->input_ids, tokens, 16 * 4) == 0, "inputs");
        CHECK(memcmp(first->target_ids, tokens + 1, 16 * 4) == 0, "targets shifted by one");
        CHECK(first->input_ids[16] == tokens[16], "row 1 starts at token 16");
    }
    cllm_loader_batch_free(first);
    cllm_loader_batch_free(NULL);
    /* The last batch: 2 sequences (one of 7 tokens) and 2 padding rows. */
    enum { CELLS = 64, CAP = 16 };
    static uint32_t all[CAP * (3 * CELLS + 1)], mine[CAP * (3 * CELLS + 1)];
    size_t rest = drain(it, all, CAP, CELLS);
    CHECK(rest == 9, "9 more batches, got %zu", rest);
    uint32_t* last = all + 8 * (3 * CELLS + 1);
    CHECK(last[3 * CELLS] == 16 + 7, "last batch valid tokens %u", last[3 * CELLS]);
    CHECK(last[23] == 0 && last[CELLS + 23] == 0 && last[2 * CELLS + 23] == 0, "padding: PAD ids, mask 0");
    CHECK(last[2 * CELLS + 22] == 1, "last real token unmasked");
    cllm_loader_batch* end = (cllm_loader_batch*)1;
    CHECK_STATUS(cllm_loader_iter_next(it, &end), CLLM_OK);
    CHECK(end == NULL, "NULL at the end of the epoch");
    cllm_loader_iter_free(it);

    /* Shuffled: the full iterator, and 3 shards that together give the same
     * batches, batch k of shard s being batch s + 3k of the whole. */
    b.shuffle = true;
    b.seed = 5;
    CHECK_STATUS(cllm_loader_iter_create(loader, &b, 0, 1, &it), CLLM_OK);
    size_t total = drain(it, all, CAP, CELLS);
    CHECK(total == 10, "10 batches");
    for (uint32_t s = 0; s < 3; s++) {
        cllm_loader_iter* shard = NULL;
        CHECK_STATUS(cllm_loader_iter_create(loader, &b, s, 3, &shard), CLLM_OK);
        CHECK_STATUS(cllm_loader_iter_num_batches(shard, &nb), CLLM_OK);
        size_t got = drain(shard, mine, CAP, CELLS);
        CHECK(got == nb && got == (10 - s + 2) / 3, "shard %u: %zu batches", s, got);
        size_t differ = 0;
        for (size_t k = 0; k < got; k++)
            differ += memcmp(mine + k * (3 * CELLS + 1), all + (s + 3 * k) * (3 * CELLS + 1), (3 * CELLS + 1) * 4) != 0;
        CHECK(differ == 0, "shard %u: %zu batches differ from the plan", s, differ);
        cllm_loader_iter_free(shard);
    }
    /* A new epoch reshuffles; the same epoch repeats. */
    CHECK_STATUS(cllm_loader_iter_reset(it, 1), CLLM_OK);
    drain(it, mine, CAP, CELLS);
    CHECK(memcmp(mine, all, sizeof all) != 0, "epoch 1 differs from epoch 0");
    CHECK_STATUS(cllm_loader_iter_reset(it, 0), CLLM_OK);
    drain(it, mine, CAP, CELLS);
    CHECK(memcmp(mine, all, sizeof all) == 0, "epoch 0 again");
    cllm_loader_iter_free(it);

    /* Prefetch gives the same batches; reset and early free stop its thread. */
    b.prefetch = 3;
    CHECK_STATUS(cllm_loader_iter_create(loader, &b, 0, 1, &it), CLLM_OK);
    memset(mine, 0, sizeof mine);
    CHECK(drain(it, mine, CAP, CELLS) == 10 && memcmp(mine, all, sizeof all) == 0, "prefetched = direct");
    CHECK_STATUS(cllm_loader_iter_reset(it, 0), CLLM_OK);
    cllm_loader_batch* one = NULL;
    CHECK_STATUS(cllm_loader_iter_next(it, &one), CLLM_OK);
    CHECK(one && memcmp(one->input_ids, all, CELLS * 4) == 0, "after reset: batch 0 again");
    /* The loader may go first: the iterator and its batches keep the data. */
    cllm_loader_free(loader);
    cllm_loader_batch* two = NULL;
    CHECK_STATUS(cllm_loader_iter_next(it, &two), CLLM_OK);
    CHECK(two != NULL, "still iterating after the loader was freed");
    cllm_loader_iter_free(it);
    CHECK(one && one->input_ids[0] == all[0], "a batch outlives its iterator");
    cllm_loader_batch_free(one);
    cllm_loader_batch_free(two);
}

static void test_files_list_and_bytes(void) {
    write_text("list/x.txt", "x\n");
    write_text("list/y.txt", "Größe\n");
    char x[512], y[512], missing[512];
    path_of(x, sizeof x, "list/x.txt");
    path_of(y, sizeof y, "list/y.txt");
    path_of(missing, sizeof missing, "list/missing.txt");
    const char* paths[] = {y, x};
    cllm_loader_options o = cllm_loader_options_default();
    o.tokenizer = CLLM_TOKENIZER_BYTES;
    o.num_threads = 3;
    cllm_loader* loader = NULL;
    CHECK_STATUS(cllm_loader_create_from_files(paths, 2, &o, &loader), CLLM_OK);
    if (loader) {
        const uint32_t* t;
        size_t n;
        char buf[64];
        size_t len;
        CHECK_STATUS(cllm_loader_tokens(loader, &t, &n), CLLM_OK);
        CHECK(n == 8 + 2 + 4, "one token per byte plus markers: %zu", n);
        CHECK_STATUS(cllm_loader_decode(loader, t, n, buf, sizeof buf, &len), CLLM_OK);
        CHECK(strcmp(buf, "Größe\n\nx\n\n") == 0, "bytes round trip, in list order: '%s'", buf);
        cllm_loader_free(loader);
    }
    const char* with_missing[] = {x, missing};
    loader = (cllm_loader*)1;
    CHECK_STATUS(cllm_loader_create_from_files(with_missing, 2, NULL, &loader), CLLM_ERR_NOT_FOUND);
    CHECK(loader == (cllm_loader*)1, "output untouched on failure");
    CHECK(strstr(cllm_last_error(), "missing.txt") != NULL, "message names the file: %s", cllm_last_error());
    const char* twice[] = {x, x};
    CHECK_STATUS(cllm_loader_create_from_files(twice, 2, NULL, &loader), CLLM_ERR_INVALID_ARGUMENT);
    const char* with_null[] = {x, NULL};
    CHECK_STATUS(cllm_loader_create_from_files(with_null, 2, NULL, &loader), CLLM_ERR_NULL);
    CHECK(strstr(cllm_last_error(), "paths[1]") != NULL, "%s", cllm_last_error());
    CHECK_STATUS(cllm_loader_create_from_files(NULL, 2, NULL, &loader), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_loader_create_from_files(NULL, 0, NULL, &loader), CLLM_ERR_EMPTY);
    /* A file that cannot be read, even by root: /proc/self/mem at offset 0. */
    const char* unreadable[] = {"/proc/self/mem"};
    CHECK_STATUS(cllm_loader_create_from_files(unreadable, 1, NULL, &loader), CLLM_ERR_IO);
    CHECK(strstr(cllm_last_error(), "mem") != NULL, "%s", cllm_last_error());
    if (geteuid() != 0) {
        /* Permissions only stop other users than root. */
        chmod(x, 0);
        CHECK_STATUS(cllm_loader_create_from_files(paths, 2, NULL, &loader), CLLM_ERR_IO);
        chmod(x, 0644);
    }
}

static cllm_loader_report cached_load(const char* cache, uint32_t max_vocab) {
    cllm_loader_options o = cllm_loader_options_default();
    o.cache_path = cache;
    if (max_vocab) o.max_vocab = max_vocab;
    cllm_loader_report r;
    memset(&r, 0, sizeof r);
    cllm_loader* loader = load_dir("cached", &o);
    if (loader) CHECK_STATUS(cllm_loader_get_report(loader, &r), CLLM_OK);
    cllm_loader_free(loader);
    return r;
}

static void damage(const char* path, long offset, int truncate_to) {
    FILE* f = fopen(path, "r+b");
    CHECK(f != NULL, "open cache");
    if (!f) return;
    if (truncate_to >= 0) {
        fclose(f);
        CHECK(truncate(path, truncate_to) == 0, "truncate");
        return;
    }
    fseek(f, offset, offset < 0 ? SEEK_END : SEEK_SET);
    int c = fgetc(f);
    fseek(f, offset, offset < 0 ? SEEK_END : SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

static void test_cache(void) {
    make_corpus("cached");
    char cache[512];
    path_of(cache, sizeof cache, "cache-dir/corpus.cache");
    settle();
    cllm_loader_report r = cached_load(cache, 0);
    CHECK(r.cache_status == CLLM_LOADER_CACHE_STATUS_MISSING && r.cache_written && r.files_opened == 5, "cold: %u %llu",
          r.cache_status, (unsigned long long)r.files_opened);
    r = cached_load(cache, 0);
    CHECK(r.cache_status == CLLM_LOADER_CACHE_STATUS_HIT && r.files_opened == 1 && r.bytes_read == 0, "warm: %u %llu",
          r.cache_status, (unsigned long long)r.files_opened);
    CHECK(r.files == 3 && r.files_skipped == 2, "the report comes from the cache too");

    write_text("cached/sub/new.txt", "a new file.\n");
    r = cached_load(cache, 0);
    CHECK(r.cache_status == CLLM_LOADER_CACHE_STATUS_STALE && r.files == 4, "added file: %u", r.cache_status);
    write_text("cached/a.txt", "THE QUICK brown fox jumps over the lazy dog. the dog sleeps, the fox runs.\n");
    r = cached_load(cache, 0);
    CHECK(r.cache_status == CLLM_LOADER_CACHE_STATUS_STALE, "same size, new content: %u", r.cache_status);
    char gone[512];
    path_of(gone, sizeof gone, "cached/sub/new.txt");
    unlink(gone);
    r = cached_load(cache, 0);
    CHECK(r.cache_status == CLLM_LOADER_CACHE_STATUS_STALE && r.files == 3, "removed file: %u", r.cache_status);
    settle();
    write_text("cached/sub/c.txt", "every dog has its day; every fox has its den. the end.\n");
    settle();
    r = cached_load(cache, 0);
    CHECK(r.cache_status == CLLM_LOADER_CACHE_STATUS_REFRESHED && r.files_opened == 2, "touched, same content: %u %llu",
          r.cache_status, (unsigned long long)r.files_opened);
    settle();
    r = cached_load(cache, 0);
    CHECK(r.cache_status == CLLM_LOADER_CACHE_STATUS_HIT, "hit after refresh: %u", r.cache_status);
    r = cached_load(cache, 100);
    CHECK(r.cache_status == CLLM_LOADER_CACHE_STATUS_OPTIONS_CHANGED, "other max_vocab: %u", r.cache_status);

    long offsets[] = {0, 8, 50, 130, -1, -9};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        settle();
        cached_load(cache, 100); /* valid again */
        damage(cache, offsets[i], -1);
        r = cached_load(cache, 100);
        CHECK(r.cache_status == CLLM_LOADER_CACHE_STATUS_CORRUPT, "byte at %ld flipped: %u", offsets[i], r.cache_status);
    }
    int lengths[] = {0, 100, 200};
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        damage(cache, 0, lengths[i]);
        r = cached_load(cache, 100);
        CHECK(r.cache_status == CLLM_LOADER_CACHE_STATUS_CORRUPT, "truncated to %d: %u", lengths[i], r.cache_status);
    }
    /* A cache that cannot be written does not fail the load. */
    char blocked[512];
    path_of(blocked, sizeof blocked, "cached/a.txt/corpus.cache");
    r = cached_load(blocked, 0);
    CHECK(r.files == 3 && !r.cache_written && r.cache_write_failed, "unwritable cache");
    /* ... and is reported as unusable, not as a damaged cache (it said CORRUPT). */
    CHECK(r.cache_status == CLLM_LOADER_CACHE_STATUS_INACCESSIBLE, "cache under a file: %u", r.cache_status);
    char dir_cache[512];
    path_of(dir_cache, sizeof dir_cache, "cache-dir");
    r = cached_load(dir_cache, 0);
    CHECK(r.files == 3 && r.cache_status == CLLM_LOADER_CACHE_STATUS_INACCESSIBLE && r.cache_write_failed,
          "a directory as the cache: %u", r.cache_status);
}

static void test_bad_input(void) {
    cllm_loader* loader = (cllm_loader*)1;
    char path[512];
    CHECK_STATUS(cllm_loader_create(NULL, NULL, &loader), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_loader_create("", NULL, &loader), CLLM_ERR_INVALID_ARGUMENT);
    path_of(path, sizeof path, "no/such/dir");
    CHECK_STATUS(cllm_loader_create(path, NULL, &loader), CLLM_ERR_NOT_FOUND);
    CHECK(strstr(cllm_last_error(), "no/such/dir") != NULL, "%s", cllm_last_error());
    CHECK(loader == (cllm_loader*)1, "output untouched on failure");
    write_text("plain.txt", "text");
    path_of(path, sizeof path, "plain.txt");
    CHECK_STATUS(cllm_loader_create(path, NULL, &loader), CLLM_ERR_INVALID_ARGUMENT);
    path_of(path, sizeof path, "empty-dir");
    mkdir(path, 0755);
    CHECK_STATUS(cllm_loader_create(path, NULL, &loader), CLLM_ERR_EMPTY);
    write_file("empty-dir/only.bin", "\0\1\2", 3);
    CHECK_STATUS(cllm_loader_create(path, NULL, &loader), CLLM_ERR_EMPTY);
    CHECK(strstr(cllm_last_error(), "skipped") != NULL, "%s", cllm_last_error());

    make_corpus("bad");
    path_of(path, sizeof path, "bad");
    CHECK_STATUS(cllm_loader_create(path, NULL, NULL), CLLM_ERR_NULL);
    cllm_loader_options o = cllm_loader_options_default();
    o.max_vocab = 4;
    CHECK_STATUS(cllm_loader_create(path, &o, &loader), CLLM_ERR_INVALID_ARGUMENT);
    o = cllm_loader_options_default();
    o.tokenizer = 7;
    CHECK_STATUS(cllm_loader_create(path, &o, &loader), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "options.tokenizer = 7 is not a cllm_tokenizer") != NULL, "%s", cllm_last_error());
    o = cllm_loader_options_default();
    o.num_threads = 5000;
    CHECK_STATUS(cllm_loader_create(path, &o, &loader), CLLM_ERR_INVALID_ARGUMENT);
    o = cllm_loader_options_default();
    o.cache_path = "";
    CHECK_STATUS(cllm_loader_create(path, &o, &loader), CLLM_ERR_INVALID_ARGUMENT);

    loader = NULL;
    CHECK_STATUS(cllm_loader_create(path, NULL, &loader), CLLM_OK);
    cllm_loader_report r;
    const uint32_t* t;
    size_t n;
    char s[16];
    CHECK_STATUS(cllm_loader_get_report(NULL, &r), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_loader_get_report(loader, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_loader_tokens(NULL, &t, &n), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_loader_tokens(loader, NULL, &n), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_loader_tokens(loader, &t, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_loader_vocab_size(NULL, &n), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_loader_vocab_size(loader, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_loader_report_text(NULL, s, sizeof s, &n), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_loader_report_text(loader, s, sizeof s, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_loader_report_text(loader, NULL, 5, &n), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_loader_skipped_file_name(NULL, 0, s, sizeof s, &n), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_loader_skipped_file_name(loader, 0, s, sizeof s, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_loader_skipped_file_reason(loader, 0, NULL, 1, &n), CLLM_ERR_NULL);

    cllm_loader_iter_options b = cllm_loader_iter_options_default();
    cllm_loader_iter* it = (cllm_loader_iter*)1;
    b.seq_len = 4;
    b.batch_size = 0;
    CHECK_STATUS(cllm_loader_iter_create(loader, &b, 0, 1, &it), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "batch_size is 0") != NULL, "%s", cllm_last_error());
    b.batch_size = 2;
    b.seq_len = 0;
    CHECK_STATUS(cllm_loader_iter_create(loader, &b, 0, 1, &it), CLLM_ERR_INVALID_ARGUMENT);
    b.batch_size = 1u << 20;
    b.seq_len = 1u << 20;
    CHECK_STATUS(cllm_loader_iter_create(loader, &b, 0, 1, &it), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "larger than the limit") != NULL, "%s", cllm_last_error());
    b.batch_size = 2;
    b.seq_len = 100000;
    CHECK_STATUS(cllm_loader_iter_create(loader, &b, 0, 1, &it), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(strstr(cllm_last_error(), "longer than the corpus") != NULL, "%s", cllm_last_error());
    b.seq_len = 8;
    b.batch_size = 1000;
    b.drop_last = true;
    CHECK_STATUS(cllm_loader_iter_create(loader, &b, 0, 1, &it), CLLM_ERR_INVALID_ARGUMENT);
    b = cllm_loader_iter_options_default();
    b.seq_len = 4;
    CHECK_STATUS(cllm_loader_iter_create(loader, &b, 2, 2, &it), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_loader_iter_create(loader, &b, 0, 0, &it), CLLM_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(cllm_loader_iter_create(loader, &b, 0, 5000, &it), CLLM_ERR_INVALID_ARGUMENT);
    b.prefetch = 5000;
    CHECK_STATUS(cllm_loader_iter_create(loader, &b, 0, 1, &it), CLLM_ERR_INVALID_ARGUMENT);
    CHECK(it == (cllm_loader_iter*)1, "output untouched on failure");
    CHECK_STATUS(cllm_loader_iter_create(NULL, NULL, 0, 1, &it), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_loader_iter_create(loader, NULL, 0, 1, NULL), CLLM_ERR_NULL);
    cllm_loader_batch* batch;
    CHECK_STATUS(cllm_loader_iter_next(NULL, &batch), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_loader_iter_reset(NULL, 0), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_loader_iter_num_batches(NULL, &n), CLLM_ERR_NULL);
    it = NULL;
    b.prefetch = 0;
    CHECK_STATUS(cllm_loader_iter_create(loader, &b, 0, 1, &it), CLLM_OK);
    CHECK_STATUS(cllm_loader_iter_next(it, NULL), CLLM_ERR_NULL);
    CHECK_STATUS(cllm_loader_iter_num_batches(it, NULL), CLLM_ERR_NULL);
    cllm_loader_iter_free(it);
    cllm_loader_iter_free(NULL);
    cllm_loader_free(loader);
    cllm_loader_free(NULL);
}

/* Builds corpus `name` and loads it twice with the cache `name`.cache
 * (path written to `cache`): cold, then warm, served from the cache and
 * mapped where leases work. 0 (both freed) if a load failed. */
static int cold_and_warm(const char* name, char* cache, size_t cache_size, cllm_loader** cold, cllm_loader** warm) {
    make_corpus(name);
    char rel[128];
    snprintf(rel, sizeof rel, "%s.cache", name);
    path_of(cache, cache_size, rel);
    cllm_loader_options o = cllm_loader_options_default();
    o.cache_path = cache;
    settle();
    *cold = load_dir(name, &o);
    *warm = load_dir(name, &o);
    if (!*cold || !*warm) {
        cllm_loader_free(*cold);
        cllm_loader_free(*warm);
        return 0;
    }
    cllm_loader_report r;
    CHECK_STATUS(cllm_loader_get_report(*warm, &r), CLLM_OK);
    CHECK(r.cache_status == CLLM_LOADER_CACHE_STATUS_HIT, "served from the cache: %u", r.cache_status);
    CHECK(r.cache_mapped == leases_work(), "the tokens are mapped from the cache where leases work");
    return 1;
}

/* A loader served from its cache (its tokens mapped under a read lease),
 * then the cache truncated in place by someone else: the truncation waits
 * until the loader has copied its tokens, so reading them cannot fault (a
 * mapping without the lease died of SIGBUS here). */
static void test_cache_truncated_under_a_live_loader(void) {
    char cache[512];
    cllm_loader *cold = NULL, *warm = NULL;
    if (!cold_and_warm("shared", cache, sizeof cache, &cold, &warm)) return;
    CHECK(truncate(cache, 0) == 0, "truncate the cache in place");
    const uint32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    CHECK_STATUS(cllm_loader_tokens(cold, &a, &na), CLLM_OK);
    CHECK(stored_tokens_are(warm, a, na), "the stored ids (the mapping, or its copy) after the truncation");
    CHECK_STATUS(cllm_loader_tokens(warm, &b, &nb), CLLM_OK);
    CHECK(na == nb && na > 0 && memcmp(a, b, na * sizeof *a) == 0, "same tokens after the truncation");
    cllm_loader_iter_options bo = cllm_loader_iter_options_default();
    bo.batch_size = 2;
    bo.seq_len = 4;
    cllm_loader_iter* it = NULL;
    CHECK_STATUS(cllm_loader_iter_create(warm, &bo, 0, 1, &it), CLLM_OK);
    cllm_loader_batch* batch = NULL;
    size_t batches = 0;
    while (it && cllm_loader_iter_next(it, &batch) == CLLM_OK && batch) {
        batches++;
        cllm_loader_batch_free(batch);
    }
    CHECK(batches > 0, "batches after the truncation");
    cllm_loader_iter_free(it);
    cllm_loader_free(warm);
    cllm_loader_free(cold);
}

/* A corpus whose tokens are mapped from the cache, then fork: the child
 * truncates the cache and reads every token. The parent's lease does not
 * cover the child's mapping; the library's fork handler turned the mapping
 * into a private copy before the fork, so the child reads its tokens (it
 * died of SIGBUS without that). */
static void test_mapped_cache_across_fork(void) {
    char cache[512];
    cllm_loader *cold = NULL, *warm = NULL;
    if (!cold_and_warm("forked", cache, sizeof cache, &cold, &warm)) return;
    const uint32_t* a = NULL;
    size_t na = 0;
    CHECK_STATUS(cllm_loader_tokens(cold, &a, &na), CLLM_OK);
    fflush(NULL);
    pid_t child = fork();
    if (child == 0) {
        /* The warm loader's tokens are read here for the first time. */
        const uint32_t* b = NULL;
        size_t nb = 0;
        int ok = truncate(cache, 0) == 0 && cllm_loader_tokens(warm, &b, &nb) == CLLM_OK &&
                 nb == na && memcmp(a, b, na * sizeof *a) == 0;
        /* Ends by exec, not exit: under valgrind an exit would count the
         * memory of the parent's other threads (which the child does not
         * have) as the child's leaks. */
        if (ok) execl("/bin/true", "true", (char*)NULL);
        _exit(1);
    }
    CHECK(child > 0, "fork");
    int status = 0;
    if (child > 0) {
        CHECK(waitpid(child, &status, 0) == child, "waitpid");
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the child read its tokens after the truncation (%s %d)",
              WIFSIGNALED(status) ? "signal" : "exit status",
              WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
    const uint32_t* b = NULL;
    size_t nb = 0;
    CHECK_STATUS(cllm_loader_tokens(warm, &b, &nb), CLLM_OK);
    CHECK(nb == na && memcmp(a, b, na * sizeof *a) == 0, "the parent's tokens after the child's truncation");
    cllm_loader_free(warm);
    cllm_loader_free(cold);
}

/* A 100 GiB sparse file beside the text: the loader reserved its whole size
 * and the process died of SIGABRT. Now it reads its first piece, finds a NUL
 * byte and skips it, without allocating or reading anything near its size. */
static void test_huge_sparse_file(void) {
    make_corpus("huge");
    char path[512];
    path_of(path, sizeof path, "huge/sparse.bin");
    FILE* f = fopen(path, "wb");
    CHECK(f != NULL, "create %s", path);
    if (!f) return;
    fclose(f);
    CHECK(truncate(path, (off_t)100 << 30) == 0, "make a 100 GiB sparse file");
    cllm_loader* loader = load_dir("huge", NULL);
    if (!loader) return;
    cllm_loader_report r;
    CHECK_STATUS(cllm_loader_get_report(loader, &r), CLLM_OK);
    CHECK(r.files == 3 && r.files_skipped == 3, "files %llu skipped %llu", (unsigned long long)r.files,
          (unsigned long long)r.files_skipped);
    CHECK(r.bytes_read < (4u << 20), "bytes read %llu", (unsigned long long)r.bytes_read);
    int found = 0;
    for (size_t i = 0; i < r.files_skipped; i++) {
        char name[64] = "", reason[128] = "";
        size_t len;
        CHECK_STATUS(cllm_loader_skipped_file_name(loader, i, name, sizeof name, &len), CLLM_OK);
        CHECK_STATUS(cllm_loader_skipped_file_reason(loader, i, reason, sizeof reason, &len), CLLM_OK);
        if (strcmp(name, "sparse.bin") == 0) {
            found = 1;
            CHECK(strstr(reason, "NUL byte at offset 0") != NULL, "%s", reason);
        }
    }
    CHECK(found, "the sparse file is reported as skipped");
    cllm_loader_free(loader);
    unlink(path);
}

int main(void) {
    snprintf(root, sizeof root, "/tmp/cllm-loader-test-XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    test_defaults_and_layout();
    test_load_report_tokens_decode();
    test_batches_shards_prefetch();
    test_files_list_and_bytes();
    test_cache();
    test_cache_truncated_under_a_live_loader();
    test_mapped_cache_across_fork();
    test_huge_sparse_file();
    test_bad_input();
    remove_tree(root);
    return check_summary();
}
