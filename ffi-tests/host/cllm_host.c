/* cllm_host: see cllm_host.h. */
#include "cllm_host.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Counters and misuse detection ------------------------------------- */

static atomic_ullong counter_forward;
static atomic_ullong counter_loss;
static atomic_ullong counter_backward;
static atomic_ullong counter_step;
static atomic_ullong counter_misuse;

cllm_host_counters cllm_host_counters_get(void) {
    cllm_host_counters c;
    c.forward = atomic_load(&counter_forward);
    c.loss = atomic_load(&counter_loss);
    c.backward = atomic_load(&counter_backward);
    c.step = atomic_load(&counter_step);
    c.misuse = atomic_load(&counter_misuse);
    return c;
}

void cllm_host_counters_reset(void) {
    atomic_store(&counter_forward, 0);
    atomic_store(&counter_loss, 0);
    atomic_store(&counter_backward, 0);
    atomic_store(&counter_step, 0);
    atomic_store(&counter_misuse, 0);
}

static void misuse(const char* what) {
    atomic_fetch_add(&counter_misuse, 1);
    fprintf(stderr, "cllm_host: MISUSE: %s\n", what);
}

/* Marks `t` in use for one host call; a second concurrent call is misuse. */
static void enter(CLLMTraining* t, const char* fn) {
    if (atomic_exchange(&t->in_use, 1) != 0) misuse(fn);
}

static void leave(CLLMTraining* t) { atomic_store(&t->in_use, 0); }

/* A forward or backward reads the shared weights. */
static void begin_read(cllm_host_model* m, const char* fn) {
    atomic_fetch_add(&m->readers, 1);
    if (atomic_load(&m->writing) != 0) misuse(fn);
}

static void end_read(cllm_host_model* m) { atomic_fetch_sub(&m->readers, 1); }

/* ---- Configuration ------------------------------------------------------ */

cllm_host_config cllm_host_config_default(void) {
    cllm_host_config c;
    c.vocab_size = 64;
    c.embed_dim = 16;
    c.hidden_dim = 32;
    c.context = 2;
    c.batch_size = 4;
    c.seq_len = 16;
    c.learning_rate = 0.01f;
    c.beta1 = 0.9f;
    c.beta2 = 0.999f;
    c.epsilon = 1e-8f;
    c.seed = 42;
    return c;
}

cllm_host_config cllm_host_config_demo(void) {
    cllm_host_config c = cllm_host_config_default();
    c.vocab_size = 128;
    c.embed_dim = 32;
    c.hidden_dim = 96;
    c.context = 4;
    c.batch_size = 8;
    c.seq_len = 32;
    c.learning_rate = 0.003f;
    return c;
}

static int config_ok(const cllm_host_config* c) {
    return c->vocab_size > CLLM_HOST_FIRST_TOKEN && c->embed_dim > 0 && c->hidden_dim > 0 &&
           c->context > 0 && c->batch_size > 0 && c->seq_len > 0 &&
           c->vocab_size <= (1u << 20) && c->embed_dim <= 4096 && c->hidden_dim <= 4096 &&
           c->context <= 64 && (uint64_t)c->batch_size * c->seq_len <= (1u << 24) &&
           c->learning_rate > 0.0f && c->beta1 >= 0.0f && c->beta1 < 1.0f &&
           c->beta2 >= 0.0f && c->beta2 < 1.0f && c->epsilon > 0.0f;
}

/* ---- Deterministic randomness (splitmix64) ------------------------------ */

static uint64_t splitmix64(uint64_t* state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static float uniform_pm1(uint64_t* state) {
    return (float)((double)(splitmix64(state) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

/* ---- Model -------------------------------------------------------------- */

static size_t input_dim(const cllm_host_config* c) { return (size_t)c->context * c->embed_dim; }
static size_t positions(const cllm_host_config* c) { return (size_t)c->batch_size * c->seq_len; }

/* Sizes of the five parameter arrays, in block order. */
static void param_sizes(const cllm_host_config* c, size_t sizes[5]) {
    sizes[0] = (size_t)c->vocab_size * c->embed_dim;
    sizes[1] = (size_t)c->hidden_dim * input_dim(c);
    sizes[2] = c->hidden_dim;
    sizes[3] = (size_t)c->vocab_size * c->hidden_dim;
    sizes[4] = c->vocab_size;
}

static cllm_host_model* model_create(const cllm_host_config* c) {
    cllm_host_model* m = calloc(1, sizeof *m);
    if (!m) return NULL;
    size_t sizes[5];
    param_sizes(c, sizes);
    m->config = *c;
    m->num_params = sizes[0] + sizes[1] + sizes[2] + sizes[3] + sizes[4];
    m->params = calloc(m->num_params, sizeof(float));
    if (!m->params) {
        free(m);
        return NULL;
    }
    m->embed = m->params;
    m->w1 = m->embed + sizes[0];
    m->b1 = m->w1 + sizes[1];
    m->w2 = m->b1 + sizes[2];
    m->b2 = m->w2 + sizes[3];
    uint64_t rng = c->seed;
    const float w1_scale = sqrtf(3.0f / (float)input_dim(c));
    const float w2_scale = sqrtf(3.0f / (float)c->hidden_dim);
    for (size_t i = 0; i < sizes[0]; i++) m->embed[i] = 0.5f * uniform_pm1(&rng);
    for (size_t i = 0; i < sizes[1]; i++) m->w1[i] = w1_scale * uniform_pm1(&rng);
    for (size_t i = 0; i < sizes[3]; i++) m->w2[i] = w2_scale * uniform_pm1(&rng);
    /* Biases start at zero (calloc). */
    atomic_init(&m->refs, 1);
    atomic_init(&m->readers, 0);
    atomic_init(&m->writing, 0);
    return m;
}

static void model_release(cllm_host_model* m) {
    if (m && atomic_fetch_sub(&m->refs, 1) == 1) {
        free(m->params);
        free(m);
    }
}

/* ---- Training objects --------------------------------------------------- */

/* A training object over `model` (whose reference it takes over). */
static CLLMTraining* training_create(cllm_host_model* model, int is_replica) {
    CLLMTraining* t = calloc(1, sizeof *t);
    if (!t) {
        model_release(model);
        return NULL;
    }
    const cllm_host_config* c = &model->config;
    const size_t n = positions(c);
    t->config = *c;
    t->model = model;
    t->is_replica = is_replica;
    atomic_init(&t->in_use, 0);
    t->grads = calloc(model->num_params, sizeof(float));
    t->inputs = calloc(n, sizeof(uint32_t));
    t->hidden = calloc(n * c->hidden_dim, sizeof(float));
    t->logits = calloc(n * c->vocab_size, sizeof(float));
    t->x = calloc(input_dim(c), sizeof(float));
    t->dx = calloc(input_dim(c), sizeof(float));
    t->dlogits = calloc(c->vocab_size, sizeof(float));
    t->dhidden = calloc(c->hidden_dim, sizeof(float));
    int ok = t->grads && t->inputs && t->hidden && t->logits && t->x && t->dx && t->dlogits &&
             t->dhidden;
    if (!is_replica) {
        t->adam_m = calloc(model->num_params, sizeof(float));
        t->adam_v = calloc(model->num_params, sizeof(float));
        ok = ok && t->adam_m && t->adam_v;
    }
    if (!ok) {
        cllm_host_training_free(t);
        return NULL;
    }
    return t;
}

CLLMTraining* cllm_host_training_create(const cllm_host_config* config) {
    cllm_host_config c = config ? *config : cllm_host_config_default();
    if (!config_ok(&c)) return NULL;
    cllm_host_model* m = model_create(&c);
    return m ? training_create(m, 0) : NULL;
}

void cllm_host_training_free(CLLMTraining* t) {
    if (!t) return;
    if (atomic_load(&t->in_use) != 0) misuse("training object freed while in use");
    free(t->grads);
    free(t->adam_m);
    free(t->adam_v);
    free(t->inputs);
    free(t->hidden);
    free(t->logits);
    free(t->x);
    free(t->dx);
    free(t->dlogits);
    free(t->dhidden);
    model_release(t->model);
    free(t);
}

CLLMTraining* cllm_host_replica_create(CLLMTraining* master) {
    if (!master) return NULL;
    atomic_fetch_add(&master->model->refs, 1);
    return training_create(master->model, 1);
}

void cllm_host_replica_free(CLLMTraining* replica) { cllm_host_training_free(replica); }

size_t cllm_host_gradient_buffers(CLLMTraining* t, cllm_float_span* out, size_t capacity) {
    if (!t) return 0;
    size_t sizes[5];
    param_sizes(&t->config, sizes);
    float* p = t->grads;
    for (size_t i = 0; i < 5; i++) {
        if (out && i < capacity) {
            out[i].data = p;
            out[i].len = sizes[i];
        }
        p += sizes[i];
    }
    return 5;
}

static CLLMTraining* ops_create_replica(void* user, CLLMTraining* master) {
    (void)user;
    return cllm_host_replica_create(master);
}

static void ops_free_replica(void* user, CLLMTraining* replica) {
    (void)user;
    cllm_host_replica_free(replica);
}

static size_t ops_gradient_buffers(void* user, CLLMTraining* t, cllm_float_span* out,
                                   size_t capacity) {
    (void)user;
    return cllm_host_gradient_buffers(t, out, capacity);
}

cllm_replica_ops cllm_host_replica_ops(void) {
    cllm_replica_ops ops;
    ops.user = NULL;
    ops.create_replica = ops_create_replica;
    ops.free_replica = ops_free_replica;
    ops.gradient_buffers = ops_gradient_buffers;
    ops.optimizer_step = NULL; /* the drop-in calls cllm_optimizer_step_adam */
    return ops;
}

/* ---- Forward, loss, backward, Adam -------------------------------------- */

static float dot(const float* a, const float* b, size_t n) {
    /* Four accumulators for speed; a fixed order, so deterministic. */
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

static void axpy(float* y, float a, const float* x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

/* Gathers the input vector of position `pos` (sequence-local window). */
static void gather_input(const CLLMTraining* t, size_t pos, float* x) {
    const cllm_host_config* c = &t->config;
    const size_t d = c->embed_dim;
    const size_t in_seq = pos % c->seq_len;
    for (size_t k = 0; k < c->context; k++) {
        if (k <= in_seq) {
            memcpy(x + k * d, t->model->embed + (size_t)t->inputs[pos - k] * d, d * sizeof(float));
        } else {
            memset(x + k * d, 0, d * sizeof(float));
        }
    }
}

float cllm_forward_training(CLLMTraining* t, uint32_t* input_tokens) {
    if (!t || !input_tokens) return 0.0f;
    enter(t, "cllm_forward_training called concurrently on one training object");
    cllm_host_model* m = t->model;
    begin_read(m, "cllm_forward_training while the weights are being updated");
    atomic_fetch_add(&counter_forward, 1);
    const cllm_host_config* c = &t->config;
    const size_t n = positions(c), h = c->hidden_dim, v = c->vocab_size, in = input_dim(c);
    for (size_t p = 0; p < n; p++) {
        uint32_t tok = input_tokens[p];
        t->inputs[p] = tok < c->vocab_size ? tok : CLLM_HOST_UNK;
    }
    for (size_t p = 0; p < n; p++) {
        gather_input(t, p, t->x);
        float* hid = t->hidden + p * h;
        for (size_t j = 0; j < h; j++) hid[j] = tanhf(m->b1[j] + dot(m->w1 + j * in, t->x, in));
        float* logit = t->logits + p * v;
        for (size_t o = 0; o < v; o++) logit[o] = m->b2[o] + dot(m->w2 + o * h, hid, h);
    }
    t->has_forward = 1;
    end_read(m);
    leave(t);
    return 0.0f;
}

/* log(sum(exp(logit))) computed stably. */
static float log_sum_exp(const float* logit, size_t v) {
    float max = logit[0];
    for (size_t o = 1; o < v; o++) max = logit[o] > max ? logit[o] : max;
    double sum = 0.0;
    for (size_t o = 0; o < v; o++) sum += exp((double)(logit[o] - max));
    return max + (float)log(sum);
}

static size_t count_targets(const CLLMTraining* t, const uint32_t* targets) {
    size_t count = 0;
    for (size_t p = 0; p < positions(&t->config); p++) count += targets[p] != CLLM_HOST_PAD;
    return count;
}

static uint32_t clamp_token(const CLLMTraining* t, uint32_t tok) {
    return tok < t->config.vocab_size ? tok : CLLM_HOST_UNK;
}

float cllm_compute_loss_training(CLLMTraining* t, uint32_t* target_tokens) {
    if (!t || !target_tokens) return 0.0f;
    enter(t, "cllm_compute_loss_training called concurrently on one training object");
    atomic_fetch_add(&counter_loss, 1);
    const size_t n = positions(&t->config), v = t->config.vocab_size;
    const size_t count = count_targets(t, target_tokens);
    double total = 0.0;
    if (t->has_forward) {
        for (size_t p = 0; p < n; p++) {
            if (target_tokens[p] == CLLM_HOST_PAD) continue;
            const float* logit = t->logits + p * v;
            total += (double)(log_sum_exp(logit, v) - logit[clamp_token(t, target_tokens[p])]);
        }
    }
    t->last_loss = count ? (float)(total / (double)count) : 0.0f;
    leave(t);
    return t->last_loss;
}

void cllm_backward_training(CLLMTraining* t, uint32_t* target_tokens) {
    if (!t || !target_tokens) return;
    enter(t, "cllm_backward_training called concurrently on one training object");
    cllm_host_model* m = t->model;
    begin_read(m, "cllm_backward_training while the weights are being updated");
    atomic_fetch_add(&counter_backward, 1);
    const cllm_host_config* c = &t->config;
    const size_t n = positions(c), h = c->hidden_dim, v = c->vocab_size, d = c->embed_dim;
    const size_t in = input_dim(c);
    memset(t->grads, 0, m->num_params * sizeof(float));
    const size_t count = count_targets(t, target_tokens);
    if (t->has_forward && count > 0) {
        size_t sizes[5];
        param_sizes(c, sizes);
        float* g_embed = t->grads;
        float* g_w1 = g_embed + sizes[0];
        float* g_b1 = g_w1 + sizes[1];
        float* g_w2 = g_b1 + sizes[2];
        float* g_b2 = g_w2 + sizes[3];
        const float inv_count = 1.0f / (float)count;
        for (size_t p = 0; p < n; p++) {
            if (target_tokens[p] == CLLM_HOST_PAD) continue;
            const float* logit = t->logits + p * v;
            const float* hid = t->hidden + p * h;
            /* dL/dlogits = (softmax - onehot) / count */
            const float lse = log_sum_exp(logit, v);
            for (size_t o = 0; o < v; o++) t->dlogits[o] = expf(logit[o] - lse) * inv_count;
            t->dlogits[clamp_token(t, target_tokens[p])] -= inv_count;
            memset(t->dhidden, 0, h * sizeof(float));
            for (size_t o = 0; o < v; o++) {
                const float g = t->dlogits[o];
                g_b2[o] += g;
                axpy(g_w2 + o * h, g, hid, h);
                axpy(t->dhidden, g, m->w2 + o * h, h);
            }
            /* Through tanh, into W1, b1 and the input vector. */
            gather_input(t, p, t->x);
            memset(t->dx, 0, in * sizeof(float));
            for (size_t j = 0; j < h; j++) {
                const float g = t->dhidden[j] * (1.0f - hid[j] * hid[j]);
                g_b1[j] += g;
                axpy(g_w1 + j * in, g, t->x, in);
                axpy(t->dx, g, m->w1 + j * in, in);
            }
            /* Scatter into the embedding rows of the window. */
            const size_t in_seq = p % c->seq_len;
            for (size_t k = 0; k < c->context && k <= in_seq; k++) {
                axpy(g_embed + (size_t)t->inputs[p - k] * d, 1.0f, t->dx + k * d, d);
            }
        }
    }
    end_read(m);
    leave(t);
}

void cllm_optimizer_step_adam(CLLMTraining* t) {
    if (!t) return;
    enter(t, "cllm_optimizer_step_adam called concurrently on one training object");
    atomic_fetch_add(&counter_step, 1);
    if (t->is_replica) {
        misuse("cllm_optimizer_step_adam called on a replica");
        leave(t);
        return;
    }
    cllm_host_model* m = t->model;
    atomic_store(&m->writing, 1);
    if (atomic_load(&m->readers) != 0) {
        misuse("cllm_optimizer_step_adam while another object reads the weights");
    }
    const cllm_host_config* c = &t->config;
    t->adam_steps++;
    const float b1 = c->beta1, b2 = c->beta2;
    const float correct1 = (float)(1.0 - pow((double)b1, (double)t->adam_steps));
    const float correct2 = (float)(1.0 - pow((double)b2, (double)t->adam_steps));
    const float step = c->learning_rate / correct1;
    const float inv_sqrt_correct2 = 1.0f / sqrtf(correct2);
    for (size_t i = 0; i < m->num_params; i++) {
        const float g = t->grads[i];
        t->adam_m[i] = b1 * t->adam_m[i] + (1.0f - b1) * g;
        t->adam_v[i] = b2 * t->adam_v[i] + (1.0f - b2) * g * g;
        m->params[i] -= step * t->adam_m[i] / (sqrtf(t->adam_v[i]) * inv_sqrt_correct2 + c->epsilon);
    }
    memset(t->grads, 0, m->num_params * sizeof(float));
    atomic_store(&m->writing, 0);
    leave(t);
}

/* ---- Batch iterator ------------------------------------------------------ */

CLLMBatchIterator* cllm_host_iterator_create(const uint32_t* tokens, size_t num_tokens,
                                             uint32_t batch_size, uint32_t seq_len,
                                             int drop_last) {
    if (!tokens || num_tokens == 0 || batch_size == 0 || seq_len == 0) return NULL;
    if ((uint64_t)batch_size * seq_len > (1u << 24)) return NULL;
    for (size_t i = 0; i < num_tokens; i++) {
        if (tokens[i] == CLLM_HOST_PAD) return NULL;
    }
    CLLMBatchIterator* it = calloc(1, sizeof *it);
    if (!it) return NULL;
    it->tokens = malloc(num_tokens * sizeof(uint32_t));
    if (!it->tokens) {
        free(it);
        return NULL;
    }
    memcpy(it->tokens, tokens, num_tokens * sizeof(uint32_t));
    it->num_tokens = num_tokens;
    it->batch_size = batch_size;
    it->seq_len = seq_len;
    it->drop_last = drop_last != 0;
    return it;
}

void cllm_host_iterator_free(CLLMBatchIterator* it) {
    if (!it) return;
    free(it->tokens);
    free(it);
}

void cllm_batch_iterator_reset(CLLMBatchIterator* it) {
    if (!it) return;
    it->next_pair = 0;
    it->batches_returned = 0;
}

static size_t num_pairs(const CLLMBatchIterator* it) { return it->num_tokens - 1; }

size_t cllm_batch_iterator_num_batches(CLLMBatchIterator* it) {
    if (!it) return 0;
    const size_t per_batch = (size_t)it->batch_size * it->seq_len;
    return it->drop_last ? num_pairs(it) / per_batch : (num_pairs(it) + per_batch - 1) / per_batch;
}

CLLMBatch* cllm_batch_iterator_next(CLLMBatchIterator* it) {
    if (!it) return NULL;
    const size_t per_batch = (size_t)it->batch_size * it->seq_len;
    const size_t pairs = num_pairs(it);
    const size_t remaining = it->next_pair < pairs ? pairs - it->next_pair : 0;
    if (it->drop_last && remaining < per_batch) return NULL;
    CLLMBatch* b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->input_ids = calloc(per_batch, sizeof(uint32_t));
    b->target_ids = calloc(per_batch, sizeof(uint32_t));
    b->attention_mask = calloc(per_batch, sizeof(float));
    if (!b->input_ids || !b->target_ids || !b->attention_mask) {
        cllm_batch_free(b);
        return NULL;
    }
    b->batch_size = it->batch_size;
    b->seq_len = it->seq_len;
    /* Pairs beyond the data stay PAD with mask 0 (calloc). Past the end of
     * the data (drop_last = 0) this yields padding-only batches forever. */
    const size_t valid = remaining < per_batch ? remaining : per_batch;
    for (size_t i = 0; i < valid; i++) {
        const size_t pair = it->next_pair + i;
        b->input_ids[i] = it->tokens[pair];
        b->target_ids[i] = it->tokens[pair + 1];
        b->attention_mask[i] = 1.0f;
    }
    b->num_valid_tokens = (uint32_t)valid;
    it->next_pair += per_batch;
    it->batches_returned++;
    return b;
}

void cllm_batch_free(CLLMBatch* b) {
    if (!b) return;
    free(b->input_ids);
    free(b->target_ids);
    free(b->attention_mask);
    free(b);
}

/* ---- Helpers ------------------------------------------------------------ */

size_t cllm_host_num_params(const CLLMTraining* t) { return t ? t->model->num_params : 0; }

size_t cllm_host_copy_weights(const CLLMTraining* t, float* out, size_t capacity) {
    if (!t) return 0;
    const size_t n = t->model->num_params;
    if (out) memcpy(out, t->model->params, (n < capacity ? n : capacity) * sizeof(float));
    return n;
}

int cllm_host_set_weights(CLLMTraining* dst, const CLLMTraining* src) {
    if (!dst || !src || dst->model->num_params != src->model->num_params) return -1;
    memcpy(dst->model->params, src->model->params, dst->model->num_params * sizeof(float));
    return 0;
}

int cllm_host_weights_equal(const CLLMTraining* a, const CLLMTraining* b) {
    if (!a || !b || a->model->num_params != b->model->num_params) return 0;
    return memcmp(a->model->params, b->model->params, a->model->num_params * sizeof(float)) == 0;
}

uint64_t cllm_host_weights_checksum(const CLLMTraining* t) {
    if (!t) return 0;
    const unsigned char* bytes = (const unsigned char*)t->model->params;
    uint64_t hash = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < t->model->num_params * sizeof(float); i++) {
        hash = (hash ^ bytes[i]) * 0x100000001b3ull;
    }
    return hash;
}

double cllm_host_gradient_sumsq(const CLLMTraining* t) {
    if (!t) return 0.0;
    double sum = 0.0;
    for (size_t i = 0; i < t->model->num_params; i++) sum += (double)t->grads[i] * t->grads[i];
    return sum;
}

float cllm_host_train_epoch_plain(CLLMTraining* t, CLLMBatchIterator* it) {
    if (!t || !it || it->batch_size != t->config.batch_size || it->seq_len != t->config.seq_len) {
        return NAN;
    }
    cllm_batch_iterator_reset(it);
    const size_t batches = cllm_batch_iterator_num_batches(it);
    double loss_sum = 0.0;
    double tokens = 0.0;
    for (size_t k = 0; k < batches; k++) {
        CLLMBatch* b = cllm_batch_iterator_next(it);
        if (!b) return NAN;
        cllm_forward_training(t, b->input_ids);
        const float loss = cllm_compute_loss_training(t, b->target_ids);
        cllm_backward_training(t, b->target_ids);
        cllm_optimizer_step_adam(t);
        loss_sum += (double)loss * b->num_valid_tokens;
        tokens += b->num_valid_tokens;
        cllm_batch_free(b);
    }
    return tokens > 0.0 ? (float)(loss_sum / tokens) : 0.0f;
}

float cllm_host_train_epoch_replica_reference(CLLMTraining* master, CLLMBatchIterator* it,
                                              int group) {
    if (!master || master->is_replica || !it || group <= 0 || group > 4096 ||
        it->batch_size != master->config.batch_size || it->seq_len != master->config.seq_len) {
        return NAN;
    }
    const size_t g = (size_t)group;
    CLLMTraining** replicas = calloc(g, sizeof *replicas);
    float* weights = calloc(g, sizeof *weights);
    uint32_t* counts = calloc(g, sizeof *counts);
    int ok = replicas && weights && counts;
    for (size_t i = 0; ok && i < g; i++) ok = (replicas[i] = cllm_host_replica_create(master)) != NULL;
    cllm_batch_iterator_reset(it);
    const size_t batches = cllm_batch_iterator_num_batches(it);
    const size_t np = master->model->num_params;
    double loss_sum = 0.0, tokens = 0.0;
    for (size_t first = 0; ok && first < batches; first += g) {
        const size_t members = batches - first < g ? batches - first : g;
        uint64_t total = 0;
        for (size_t i = 0; ok && i < members; i++) {
            CLLMBatch* b = cllm_batch_iterator_next(it);
            if (!b) {
                ok = 0;
                break;
            }
            cllm_forward_training(replicas[i], b->input_ids);
            const float loss = cllm_compute_loss_training(replicas[i], b->target_ids);
            cllm_backward_training(replicas[i], b->target_ids);
            counts[i] = b->num_valid_tokens;
            total += b->num_valid_tokens;
            loss_sum += (double)loss * b->num_valid_tokens;
            tokens += b->num_valid_tokens;
            cllm_batch_free(b);
        }
        if (!ok) break;
        for (size_t i = 0; i < members; i++) {
            weights[i] = total ? (float)((double)counts[i] / (double)total) : 0.0f;
        }
        for (size_t k = 0; k < np; k++) {
            float acc = weights[0] * replicas[0]->grads[k];
            for (size_t i = 1; i < members; i++) acc += weights[i] * replicas[i]->grads[k];
            master->grads[k] = acc;
        }
        cllm_optimizer_step_adam(master);
    }
    for (size_t i = 0; replicas && i < g; i++) cllm_host_replica_free(replicas[i]);
    free(replicas);
    free(weights);
    free(counts);
    if (!ok) return NAN;
    return tokens > 0.0 ? (float)(loss_sum / tokens) : 0.0f;
}

size_t cllm_host_synthetic_tokens(uint32_t* out, size_t n, uint32_t vocab_size, uint64_t seed) {
    if (!out || vocab_size < CLLM_HOST_FIRST_TOKEN + 2) return 0;
    const uint32_t words = vocab_size - CLLM_HOST_FIRST_TOKEN;
    uint64_t rng = seed;
    uint32_t cur = CLLM_HOST_BOS;
    size_t sentence = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t next;
        const uint64_t r = splitmix64(&rng);
        if (cur == CLLM_HOST_EOS) {
            next = CLLM_HOST_BOS;
            sentence = 0;
        } else if (sentence >= 12 && r % 4 == 0) {
            next = CLLM_HOST_EOS;
        } else if (cur == CLLM_HOST_BOS || (r >> 8) % 8 == 0) {
            next = CLLM_HOST_FIRST_TOKEN + (uint32_t)((r >> 16) % words);  /* random word */
        } else {
            /* The usual successor: a fixed permutation-like step. */
            next = CLLM_HOST_FIRST_TOKEN + (uint32_t)(((cur - CLLM_HOST_FIRST_TOKEN) * 7u + 3u) % words);
        }
        out[i] = next;
        cur = next;
        sentence++;
    }
    return n;
}

size_t cllm_host_tokenize_text(const char* text, size_t len, uint32_t* out) {
    if (!text || !out) return 0;
    for (size_t i = 0; i < len; i++) {
        const unsigned char ch = (unsigned char)text[i];
        if (ch == '\n') {
            out[i] = 4;
        } else if (ch >= ' ' && ch <= '~') {
            out[i] = 5u + (uint32_t)(ch - ' ');
        } else {
            out[i] = CLLM_HOST_UNK;
        }
    }
    return len;
}
