/* An unmodified trainer: it includes only the drop-in header (and the host's
 * own headers) and calls threaded_training_create, as CLLM's train_model
 * does. Built twice: test_dropin_adapter links host_adapter.c and must train
 * in replica mode (the weights of the sequential replica reference, one
 * group per sphere count); test_dropin_noadapter links nothing more and must
 * train in serialised mode (the weights of the plain loop). */
#include "check.h"
#include "cllm_training_threaded.h"
#include "host/cllm_host.h"

enum { NUM_TOKENS = 1000, THREADS = 2 };

static uint32_t tokens[NUM_TOKENS];

int main(void) {
    cllm_host_config c = cllm_host_config_default();
    cllm_host_synthetic_tokens(tokens, NUM_TOKENS, c.vocab_size, 3);
    CLLMTraining *t = cllm_host_training_create(&c), *ref = cllm_host_training_create(&c);
    CLLMBatchIterator* it = cllm_host_iterator_create(tokens, NUM_TOKENS, c.batch_size, c.seq_len, 1);
    CLLMBatchIterator* iref = cllm_host_iterator_create(tokens, NUM_TOKENS, c.batch_size, c.seq_len, 1);
    for (int epoch = 0; epoch < 2; epoch++) { /* train_model creates a system every epoch */
        ThreadedTrainingSystem* sys = threaded_training_create(t, it, THREADS);
        CHECK(sys != NULL, "create: %s", cllm_last_error());
        if (!sys) break;
        float loss = threaded_train_epoch(sys);
        threaded_training_free(sys);
#ifdef WITH_ADAPTER
        float expected = cllm_host_train_epoch_replica_reference(ref, iref, THREADS);
        const char* mode = "replica";
#else
        float expected = cllm_host_train_epoch_plain(ref, iref);
        const char* mode = "serialised";
#endif
        CHECK(loss == expected, "epoch %d: loss %.9g, %s reference %.9g", epoch, loss, mode, expected);
        CHECK(cllm_host_weights_equal(t, ref), "epoch %d: weights differ from the %s reference", epoch, mode);
    }
    cllm_host_iterator_free(it);
    cllm_host_iterator_free(iref);
    cllm_host_training_free(t);
    cllm_host_training_free(ref);
    return check_summary();
}
