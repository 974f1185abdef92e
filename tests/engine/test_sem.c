/*
 * test_sem.c - the counting semaphore.
 */
#include "harness.h"

void
test_sem_basic(void)
{
    ftpool_sem_t *sem = NULL;

    CHECK_EQ(ftpool_sem_create(-1, &sem), FTPOOL_EINVAL);
    CHECK_EQ(ftpool_sem_create((int64_t)INT32_MAX + 1, &sem), FTPOOL_EINVAL);
    CHECK_EQ(ftpool_sem_create(1, NULL), FTPOOL_EINVAL);
    REQUIRE(ftpool_sem_create(2, &sem) == FTPOOL_OK);
    CHECK_EQ(ftpool_sem_value(sem), 2);
    CHECK_EQ(ftpool_sem_acquire(sem, -1), FTPOOL_OK);
    CHECK_EQ(ftpool_sem_try_acquire(sem), FTPOOL_OK);
    CHECK_EQ(ftpool_sem_value(sem), 0);
    CHECK_EQ(ftpool_sem_try_acquire(sem), FTPOOL_ETIMEDOUT);
    CHECK_EQ(ftpool_sem_acquire(sem, 0), FTPOOL_ETIMEDOUT);
    CHECK_EQ(ftpool_sem_value(sem), 0);
    CHECK_EQ(ftpool_sem_release(sem, 0), FTPOOL_EINVAL);
    CHECK_EQ(ftpool_sem_release(sem, 3), FTPOOL_OK);
    CHECK_EQ(ftpool_sem_value(sem), 3);
    CHECK_EQ(ftpool_sem_release(sem, INT32_MAX - 3), FTPOOL_OK);
    CHECK_EQ(ftpool_sem_value(sem), INT32_MAX);
    CHECK_EQ(ftpool_sem_release(sem, 1), FTPOOL_EINVAL);
    CHECK_EQ(ftpool_sem_value(sem), INT32_MAX);     /* unchanged */
    ftpool_sem_destroy(sem);
    ftpool_sem_destroy(NULL);

    REQUIRE(ftpool_sem_create(0, &sem) == FTPOOL_OK);
    CHECK_EQ(ftpool_sem_value(sem), 0);
    CHECK_EQ(ftpool_sem_try_acquire(sem), FTPOOL_ETIMEDOUT);
    ftpool_sem_destroy(sem);
}

void
test_sem_timeout(void)
{
    ftpool_sem_t *sem = NULL;
    int64_t timeouts[] = {1, 10 * MS, 40 * MS};
    size_t i;

    REQUIRE(ftpool_sem_create(0, &sem) == FTPOOL_OK);
    for (i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++) {
        int64_t t0 = ftpool_now_ns(), dt;

        CHECK_EQ(ftpool_sem_acquire(sem, timeouts[i]), FTPOOL_ETIMEDOUT);
        dt = ftpool_now_ns() - t0;
        CHECK(dt >= timeouts[i]);
        CHECK_TIMELY(dt < timeouts[i] + harness_slack_ns());
    }
    CHECK_EQ(ftpool_sem_value(sem), 0);
    ftpool_sem_destroy(sem);
}

typedef struct waiter {
    ftpool_sem_t *sem;
    atomic_int got;
    atomic_int timed_out;
} waiter;

static void
wait_forever(void *arg)
{
    waiter *w = arg;

    if (ftpool_sem_acquire(w->sem, -1) == FTPOOL_OK) {
        atomic_fetch_add(&w->got, 1);
    }
}

static void
wait_long(void *arg)
{
    waiter *w = arg;

    if (ftpool_sem_acquire(w->sem, 5000 * MS) == FTPOOL_OK) {
        atomic_fetch_add(&w->got, 1);
    }
    else {
        atomic_fetch_add(&w->timed_out, 1);
    }
}

void
test_sem_release_wakes(void)
{
    harness_thread th[6];
    waiter w;
    int i;

    atomic_init(&w.got, 0);
    atomic_init(&w.timed_out, 0);
    REQUIRE(ftpool_sem_create(0, &w.sem) == FTPOOL_OK);
    for (i = 0; i < 6; i++) {
        thread_start(&th[i], i % 2 ? wait_long : wait_forever, &w);
    }
    harness_sleep_ns(20 * MS);      /* let them block */
    CHECK_EQ(atomic_load(&w.got), 0);
    /* release(n) wakes n waiters, no more. */
    CHECK_EQ(ftpool_sem_release(w.sem, 2), FTPOOL_OK);
    CHECK(wait_counter(&w.got, 2, 5000 * MS));
    harness_sleep_ns(20 * MS);
    CHECK_EQ(atomic_load(&w.got), 2);
    CHECK_EQ(ftpool_sem_value(w.sem), 0);
    CHECK_EQ(ftpool_sem_release(w.sem, 1), FTPOOL_OK);
    CHECK(wait_counter(&w.got, 3, 5000 * MS));
    CHECK_EQ(ftpool_sem_release(w.sem, 10), FTPOOL_OK);
    CHECK(wait_counter(&w.got, 6, 5000 * MS));
    for (i = 0; i < 6; i++) {
        thread_join(&th[i]);
    }
    CHECK_EQ(atomic_load(&w.got), 6);
    CHECK_EQ(atomic_load(&w.timed_out), 0);
    CHECK_EQ(ftpool_sem_value(w.sem), 7);
    ftpool_sem_destroy(w.sem);
}

/* Threads take a permit, check how many hold one, and give it back. */
typedef struct contention {
    ftpool_sem_t *sem;
    atomic_int holders;
    atomic_int max_seen;
    atomic_int acquired;
    int iterations;
    int limit;
} contention;

static void
contend(void *arg)
{
    contention *c = arg;
    int i;

    for (i = 0; i < c->iterations; i++) {
        int h, m;
        int rc = (i % 3 == 0) ? ftpool_sem_try_acquire(c->sem)
                 : (i % 3 == 1) ? ftpool_sem_acquire(c->sem, -1)
                 : ftpool_sem_acquire(c->sem, 100 * MS);

        if (rc != FTPOOL_OK) {
            continue;
        }
        h = atomic_fetch_add(&c->holders, 1) + 1;
        m = atomic_load(&c->max_seen);
        while (h > m && !atomic_compare_exchange_weak(&c->max_seen, &m, h)) {
        }
        atomic_fetch_add(&c->acquired, 1);
        atomic_fetch_sub(&c->holders, 1);
        ftpool_sem_release(c->sem, 1);
    }
}

void
test_sem_contention(void)
{
    harness_thread th[4];
    contention c;
    int i;

    c.iterations = harness_quick() ? 2000 : 100000;
    c.limit = 2;
    atomic_init(&c.holders, 0);
    atomic_init(&c.max_seen, 0);
    atomic_init(&c.acquired, 0);
    REQUIRE(ftpool_sem_create(c.limit, &c.sem) == FTPOOL_OK);
    for (i = 0; i < 4; i++) {
        thread_start(&th[i], contend, &c);
    }
    for (i = 0; i < 4; i++) {
        thread_join(&th[i]);
    }
    CHECK(atomic_load(&c.max_seen) <= c.limit);
    CHECK(atomic_load(&c.max_seen) >= 1);
    CHECK(atomic_load(&c.acquired) > 0);
    CHECK_EQ(atomic_load(&c.holders), 0);
    CHECK_EQ(ftpool_sem_value(c.sem), c.limit);     /* nothing lost */
    ftpool_sem_destroy(c.sem);
}
