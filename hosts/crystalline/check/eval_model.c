/*
 * eval_model: the mean loss of a saved CLLM model on a saved token dataset,
 * computed by CLLM's own forward and loss functions, with no code of ours
 * in the training path (this program does not link the drop-in).
 *
 *   eval_model MODEL.cllm DATASET.bin NUM_HEADS BATCH_SIZE SEQ_LEN
 *
 * prints "eval_loss=<x> batches=<n> tokens=<n>" (token-weighted mean of the
 * batches' mean cross-entropy over the whole batches of the dataset).
 *
 * cllm_write_model stores num_heads=8 and context_length=512 whatever the
 * run used, and cllm_read_model rebuilds the model from that header; so the
 * model is rebuilt here from the configuration train_model used
 * (ff_dim = 4 x embed, max_seq_len = 2 x seq_len) and the arrays are read
 * in the order cllm_write_model writes them; the file must end exactly
 * there. The file leaves out layer-norm gamma/beta: they keep their initial
 * values (1 and 0), for every model evaluated alike.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cllm.h"
#include "cllm_batch.h"
#include "cllm_data_loader.h"
#include "cllm_training.h"
#include "cllm_utils.h"

/* CLLM defines these in cllm_training.c without declaring them in a header. */
float cllm_forward_training(CLLMTraining* training, uint32_t* input_tokens);
float cllm_compute_loss_training(CLLMTraining* training, uint32_t* target_tokens);

static int read_floats(FILE* f, float* dst, size_t n, const char* what) {
    if (!dst) return 0;
    if (fread(dst, sizeof(float), n, f) != n) {
        fprintf(stderr, "eval_model: short read in %s\n", what);
        return -1;
    }
    return 0;
}

static CLLMModel* load_model(const char* path, uint32_t num_heads, uint32_t seq_len) {
    FILE* f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "eval_model: cannot open %s\n", path);
        return NULL;
    }
    CLLMHeader h;
    if (fread(&h, sizeof h, 1, f) != 1 || memcmp(h.magic, "CLLM", 4) != 0) {
        fprintf(stderr, "eval_model: %s is not a CLLM model\n", path);
        fclose(f);
        return NULL;
    }
    CLLMConfig config = {
        .vocab_size = (uint32_t)h.vocab_size,
        .embedding_dim = (uint32_t)h.embedding_dim,
        .num_layers = (uint32_t)h.num_layers,
        .num_heads = num_heads,
        .ff_dim = (uint32_t)h.embedding_dim * 4,
        .max_seq_len = seq_len * 2,
        .dropout = 0.1f,
    };
    CLLMModel* m = cllm_create_model(&config);
    int bad = m == NULL;
    if (!bad) {
        size_t d = m->embedding_dim;
        bad |= read_floats(f, m->embeddings.embeddings, m->vocab_size * d, "embeddings");
        bad |= read_floats(f, m->embeddings.lattice_transform, d * d, "lattice_transform");
        bad |= read_floats(f, m->embeddings.inverse_transform, d * d, "inverse_transform");
        for (uint32_t i = 0; i < m->num_layers && !bad; i++) {
            AttentionLayer* a = &m->attention_layers[i];
            size_t dm = (size_t)a->num_heads * a->head_dim;
            bad |= read_floats(f, a->query_lattice, dm * dm, "query");
            bad |= read_floats(f, a->key_lattice, dm * dm, "key");
            bad |= read_floats(f, a->value_lattice, dm * dm, "value");
        }
        for (uint32_t i = 0; i < m->num_layers && !bad; i++) {
            FeedForwardLayer* ff = &m->ff_layers[i];
            bad |= read_floats(f, ff->w1_lattice, (size_t)ff->input_dim * ff->hidden_dim, "w1");
            bad |= read_floats(f, ff->bias1, ff->hidden_dim, "bias1");
            bad |= read_floats(f, ff->w2_lattice, (size_t)ff->hidden_dim * ff->output_dim, "w2");
            bad |= read_floats(f, ff->bias2, ff->output_dim, "bias2");
        }
        if (!bad && fgetc(f) != EOF) {
            fprintf(stderr, "eval_model: %s is longer than its configuration\n", path);
            bad = 1;
        }
    }
    fclose(f);
    if (bad && m) {
        cllm_free_model(m);
        m = NULL;
    }
    return m;
}

int main(int argc, char** argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s MODEL.cllm DATASET.bin NUM_HEADS BATCH_SIZE SEQ_LEN\n", argv[0]);
        return 2;
    }
    int heads = atoi(argv[3]), batch_size = atoi(argv[4]), seq_len = atoi(argv[5]);
    if (heads <= 0 || batch_size <= 0 || seq_len <= 0) {
        fprintf(stderr, "eval_model: NUM_HEADS, BATCH_SIZE and SEQ_LEN must be positive\n");
        return 2;
    }
    CLLMModel* model = load_model(argv[1], (uint32_t)heads, (uint32_t)seq_len);
    TokenDataset* data = model ? cllm_token_dataset_load(argv[2]) : NULL;
    if (!data) {
        if (model) fprintf(stderr, "eval_model: cannot load %s\n", argv[2]);
        if (model) cllm_free_model(model);
        return 1;
    }
    CLLMTrainingConfig config = {.learning_rate = 0.0001f,
                                 .batch_size = batch_size,
                                 .sequence_length = seq_len,
                                 .num_epochs = 1,
                                 .optimizer = "adam"};
    CLLMTraining* training = cllm_training_init(model, &config);
    /* drop_last = 1: whole batches only (and the iterator then ends). */
    CLLMBatchIterator* it = training ? cllm_batch_iterator_create(data->tokens, data->num_tokens,
                                                                   (uint32_t)batch_size,
                                                                   (uint32_t)seq_len, 0, 1)
                                     : NULL;
    int rc = 1;
    if (it) {
        size_t limit = cllm_batch_iterator_num_batches(it), batches = 0;
        double weighted = 0.0;
        unsigned long long tokens = 0;
        CLLMBatch* b;
        while (batches < limit && (b = cllm_batch_iterator_next(it)) != NULL) {
            batches++;
            if (b->num_valid_tokens > 0) {
                cllm_forward_training(training, b->input_ids);
                float loss = cllm_compute_loss_training(training, b->target_ids);
                weighted += (double)loss * b->num_valid_tokens;
                tokens += b->num_valid_tokens;
            }
            cllm_batch_free(b);
        }
        if (tokens > 0) {
            printf("eval_loss=%.6f batches=%zu tokens=%llu\n", weighted / (double)tokens, batches,
                   tokens);
            rc = 0;
        } else {
            fprintf(stderr, "eval_model: the dataset holds no whole batch\n");
        }
        cllm_batch_iterator_free(it);
    } else {
        fprintf(stderr, "eval_model: cannot set up training or the batch iterator\n");
    }
    /* cllm_training_free does not own the tokens (training->tokens is NULL). */
    if (training) cllm_training_free(training);
    cllm_token_dataset_free(data);
    cllm_free_model(model);
    return rc;
}
