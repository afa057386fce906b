/* A host adapter for the stand-in host, built the way
 * hosts/crystalline/replica_adapter.c is for CLLM: one object whose
 * constructor registers the host's replica operations with the drop-in, so
 * that a program calling only threaded_training_create trains in replica
 * mode. Linked into test_dropin_adapter (not into test_dropin_noadapter). */
#include "cllm_host.h"

#include <stdio.h>

__attribute__((constructor)) static void host_adapter_register(void) {
    cllm_replica_ops ops = cllm_host_replica_ops();
    if (threaded_training_register_replica_ops(&ops) != CLLM_OK)
        fprintf(stderr, "host adapter: registration failed: %s\n", cllm_last_error());
}
