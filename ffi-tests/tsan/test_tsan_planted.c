/* A race TSan must report: two threads write one int with nothing between
 * them. `make tsan` runs this first and fails unless TSan reports it, so
 * that a run with TSan not live cannot pass. */
#include <pthread.h>
#include <stdio.h>

static int shared_count;

static void *writer(void *arg) {
    (void)arg;
    shared_count++;
    return NULL;
}

int main(void) {
    pthread_t t;
    if (pthread_create(&t, NULL, writer, NULL) != 0)
        return 1;
    shared_count++;
    pthread_join(t, NULL);
    printf("shared_count=%d\n", shared_count);
    return 0;
}
