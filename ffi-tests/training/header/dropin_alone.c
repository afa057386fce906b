/* Compile-only check: the drop-in header alone, as a CLLM source file that
 * uses threaded training includes it (CLLM's original compiles this way).
 * Taking each function's address checks the seven declarations against the
 * original's signatures. */
#include "cllm_training_threaded.h"

typedef ThreadedTrainingSystem* (*create_fn)(CLLMTraining*, CLLMBatchIterator*, int);
typedef void (*free_fn)(ThreadedTrainingSystem*);
typedef float (*epoch_fn)(ThreadedTrainingSystem*);
typedef void (*print_fn)(ThreadedTrainingSystem*);
typedef int (*sphere_fn)(ThreadedTrainingSystem*, int, int*, float*);
typedef float (*norm_fn)(ThreadedTrainingSystem*);
typedef int (*workers_fn)(ThreadedTrainingSystem*);

create_fn dropin_create = threaded_training_create;
free_fn dropin_free = threaded_training_free;
epoch_fn dropin_epoch = threaded_train_epoch;
print_fn dropin_print = threaded_training_print_stats;
sphere_fn dropin_sphere = threaded_training_get_sphere_stats;
norm_fn dropin_norm = threaded_training_get_gradient_norm;
workers_fn dropin_workers = threaded_training_get_num_workers;
