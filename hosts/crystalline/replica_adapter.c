/* Replica adapter for the CLLM trainer (justmebob123/crystalline at 6de8f88),
 * written against its headers. Linking this one object into a CLLM program
 * gives data-parallel replica mode to an unmodified train_model: a
 * constructor registers the operations below with the drop-in
 * (threaded_training_register_replica_ops), and threaded_training_create
 * uses them. Works with the drop-in linked statically or as a shared
 * library. See README.md beside this file for the compile and link lines.
 *
 * What was checked in CLLM's sources (6de8f88):
 * - A replica is a second training object over the same model, made by
 *   cllm_training_init(master->model, &master->config), as CLLM's own
 *   cllm_training_mt.c does. It has its own activations, caches and
 *   gradients; the model (weights) is shared and only read by forward and
 *   backward.
 * - cllm_forward_training writes only the training object's buffers
 *   (input_embeddings, layer_inputs, attention_outputs, ff_hidden,
 *   ff_outputs, layer_outputs, final_hidden, logits; attention_cache only
 *   when store_attention_weights, which init sets to 0);
 *   cllm_attention_forward and the prime_* math use locals and malloc'd
 *   scratch. cllm_backward_training zeroes (cllm_zero_all_gradients), then
 *   writes only the gradient buffers below and calloc'd scratch. So two
 *   training objects may run forward and backward at the same time while
 *   nothing updates the weights, which the drop-in guarantees.
 * - Gradient buffers and their sizes, taken from cllm_zero_all_gradients
 *   (the same sizes cllm_training_init allocates), per layer i:
 *     gradients                         vocab_size * embedding_dim
 *     attention_grads[i].query/key/value_lattice   dim * dim,
 *                                       dim = num_heads * head_dim of layer i
 *     ff_grads[i].w1_lattice            input_dim * hidden_dim
 *     ff_grads[i].w2_lattice            hidden_dim * output_dim
 *     ff_grads[i].bias1 / bias2         hidden_dim / output_dim
 *     ln_grads[i].gamma / beta          layer_norms[i].dim
 *   Backward writes gradients[v*embed + d], query/key/value[d1*embed + d2],
 *   w1[i*hidden + h], w2[h*embed + o], bias1[h], bias2[o], gamma[d], beta[d]:
 *   all inside these sizes (input_dim = output_dim = embedding_dim =
 *   num_heads * head_dim). cllm_optimizer_step_adam reads these buffers of
 *   the master only. (cllm_training_mt.c sums only embed*embed floats of w1
 *   and w2 and embed floats of bias1: a quarter of them when hidden_dim is 4x
 *   the embedding, as train_model sets it. We list the whole buffers.)
 * - The optimizer step is what cllm_train_epoch does around it:
 *   cllm_update_learning_rate (warmup and schedule, from current_step),
 *   cllm_optimizer_step_adam (Adam's bias correction uses current_step),
 *   then current_step++, current_loss and best_loss.
 */
#include "cllm_training.h"
#include "cllm_training_ext.h"

#include <stdio.h>

static CLLMTraining* adapter_create_replica(void* user, CLLMTraining* master) {
    (void)user;
    if (!master || !master->model) return NULL;
    return cllm_training_init(master->model, &master->config);
}

static void adapter_free_replica(void* user, CLLMTraining* replica) {
    (void)user;
    if (replica) cllm_training_free(replica);
}

static void put(cllm_float_span* out, size_t capacity, size_t* n, float* data, size_t len) {
    if (*n < capacity) {
        out[*n].data = data;
        out[*n].len = data ? len : 0; /* a buffer CLLM did not allocate is skipped, as its zeroing does */
    }
    (*n)++;
}

/* 1 + 9 per layer: embeddings; query, key, value, w1, w2, bias1, bias2,
 * gamma, beta. */
static size_t adapter_gradient_buffers(void* user, CLLMTraining* t, cllm_float_span* out,
                                       size_t capacity) {
    (void)user;
    if (!t || !t->model) return 0;
    const CLLMModel* m = t->model;
    size_t n = 0;
    put(out, capacity, &n, t->gradients, (size_t)m->vocab_size * m->embedding_dim);
    for (uint32_t i = 0; i < m->num_layers; i++) {
        const AttentionLayer* a = &m->attention_layers[i];
        size_t dim = (size_t)a->num_heads * a->head_dim;
        int has_attn = t->attention_grads != NULL;
        put(out, capacity, &n, has_attn ? t->attention_grads[i].query_lattice : NULL, dim * dim);
        put(out, capacity, &n, has_attn ? t->attention_grads[i].key_lattice : NULL, dim * dim);
        put(out, capacity, &n, has_attn ? t->attention_grads[i].value_lattice : NULL, dim * dim);
        const FeedForwardLayer* f = &m->ff_layers[i];
        int has_ff = t->ff_grads != NULL;
        put(out, capacity, &n, has_ff ? t->ff_grads[i].w1_lattice : NULL, (size_t)f->input_dim * f->hidden_dim);
        put(out, capacity, &n, has_ff ? t->ff_grads[i].w2_lattice : NULL, (size_t)f->hidden_dim * f->output_dim);
        put(out, capacity, &n, has_ff ? t->ff_grads[i].bias1 : NULL, f->hidden_dim);
        put(out, capacity, &n, has_ff ? t->ff_grads[i].bias2 : NULL, f->output_dim);
        const CLLMLayerNorm* ln = &m->layer_norms[i];
        int has_ln = t->ln_grads != NULL;
        put(out, capacity, &n, has_ln ? t->ln_grads[i].gamma : NULL, ln->dim);
        put(out, capacity, &n, has_ln ? t->ln_grads[i].beta : NULL, ln->dim);
    }
    return n;
}

/* One step as cllm_train_epoch takes it, so that the trainer's learning-rate
 * schedule, Adam's bias correction and the figures it prints (current_step,
 * current_loss, best_loss) are what CLLM's own loop gives. */
static void adapter_optimizer_step(void* user, CLLMTraining* t, float loss) {
    (void)user;
    cllm_update_learning_rate(t);
    cllm_optimizer_step_adam(t);
    t->current_step++;
    t->current_loss = loss;
    if (loss < t->best_loss) t->best_loss = loss;
}

__attribute__((constructor)) static void cllm_replica_adapter_register(void) {
    cllm_replica_ops ops = {
        .user = NULL,
        .create_replica = adapter_create_replica,
        .free_replica = adapter_free_replica,
        .gradient_buffers = adapter_gradient_buffers,
        .optimizer_step = adapter_optimizer_step,
    };
    if (threaded_training_register_replica_ops(&ops) != CLLM_OK)
        fprintf(stderr, "crystalline replica adapter: registration failed: %s\n", cllm_last_error());
}
