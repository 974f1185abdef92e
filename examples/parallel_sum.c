/*
 * parallel_sum.c - the engine from plain C: split a sum into jobs, add a
 * periodic timer that signals a semaphore, wait for the pool to go idle,
 * shut it down.
 *
 *     make examples && build/examples/parallel_sum
 */
#include <stdatomic.h>
#include <stdio.h>

#include "ftpool.h"

#define N_JOBS 1000
#define PER_JOB 10000

static atomic_ullong total;
static ftpool_sem_t *tick_sem;

static void
sum_range(void *arg)
{
    unsigned long long first = (unsigned long long)(uintptr_t)arg * PER_JOB;
    unsigned long long s = 0;

    for (unsigned long long i = first; i < first + PER_JOB; i++) {
        s += i;
    }
    atomic_fetch_add(&total, s);
}

static void
tick(void *arg)
{
    (void)arg;
    ftpool_sem_release(tick_sem, 1);
}

int
main(void)
{
    ftpool_options opts = {0};
    ftpool_t *pool;
    uint64_t timer_id;
    int err;

    opts.max_workers = 2;
    if (ftpool_sem_create(0, &tick_sem) != FTPOOL_OK) {
        return 1;
    }
    if ((err = ftpool_create(&opts, &pool)) != FTPOOL_OK) {
        fprintf(stderr, "ftpool_create: %s\n", ftpool_strerror(err));
        return 1;
    }
    /* Every millisecond, without drift, until cancelled. */
    err = ftpool_timer_after(pool, 1000000, 1000000, tick, NULL, NULL,
                             &timer_id);
    if (err != FTPOOL_OK) {
        fprintf(stderr, "ftpool_timer_after: %s\n", ftpool_strerror(err));
        return 1;
    }
    for (uintptr_t i = 0; i < N_JOBS; i++) {
        err = ftpool_submit(pool, sum_range, (void *)i, NULL);
        if (err != FTPOOL_OK) {
            fprintf(stderr, "ftpool_submit: %s\n", ftpool_strerror(err));
            return 1;
        }
    }
    ftpool_wait_idle(pool, -1);
    /* Five ticks of the timer, each run as a job on the pool. */
    for (int i = 0; i < 5; i++) {
        ftpool_sem_acquire(tick_sem, -1);
    }
    ftpool_timer_cancel(pool, timer_id);
    ftpool_shutdown(pool, FTPOOL_SHUTDOWN_FINISH);
    ftpool_join(pool, -1);
    ftpool_destroy(pool);

    unsigned long long n = (unsigned long long)N_JOBS * PER_JOB;
    unsigned long long expected = n * (n - 1) / 2;
    printf("sum %llu (%s), 5 timer ticks\n", (unsigned long long)total,
           total == expected ? "correct" : "WRONG");
    ftpool_sem_destroy(tick_sem);
    return total == expected ? 0 : 1;
}
