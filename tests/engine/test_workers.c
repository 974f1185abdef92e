/*
 * test_workers.c - workers on demand, the starvation shape, and workers
 * hosted in threads created by a spawn hook.
 */
#include <string.h>

#include "harness.h"

/* A barrier for n jobs that gives up after a timeout. */
typedef struct meet {
    ftpool__mutex lock;
    ftpool__cond cond;
    int arrived, n;
    atomic_int met, missed;
} meet;

static void
meet_init(meet *m, int n)
{
    ftpool__mutex_init(&m->lock);
    ftpool__cond_init(&m->cond);
    m->arrived = 0;
    m->n = n;
    atomic_init(&m->met, 0);
    atomic_init(&m->missed, 0);
}

static void
meet_destroy(meet *m)
{
    ftpool__cond_destroy(&m->cond);
    ftpool__mutex_destroy(&m->lock);
}

/* Each job waits until all n are running at the same time. */
static void
meet_job(void *arg)
{
    meet *m = arg;
    int64_t deadline = ftpool_now_ns() + 3000 * MS;
    int ok = 1;

    ftpool__mutex_lock(&m->lock);
    if (++m->arrived == m->n) {
        ftpool__cond_broadcast(&m->cond);
    }
    while (m->arrived < m->n) {
        if (ftpool__cond_timedwait(&m->cond, &m->lock, deadline) != 0
                && m->arrived < m->n) {
            ok = 0;
            break;
        }
    }
    ftpool__mutex_unlock(&m->lock);
    atomic_fetch_add(ok ? &m->met : &m->missed, 1);
}

static void
run_meet(ftpool_t *pool, int n)
{
    meet m;
    int i;

    meet_init(&m, n);
    for (i = 0; i < n; i++) {
        CHECK_EQ(ftpool_submit(pool, meet_job, &m, NULL), FTPOOL_OK);
    }
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    CHECK_EQ(atomic_load(&m.met), n);
    CHECK_EQ(atomic_load(&m.missed), 0);
    meet_destroy(&m);
}

void
test_starvation(void)
{
    ftpool_options o = {0};
    ftpool_t *pool = NULL;
    int round;

    o.max_workers = 5;
    REQUIRE(ftpool_create(&o, &pool) == FTPOOL_OK);
    /* 5 simultaneous long jobs on a pool of 5: the 5th must get a worker. */
    for (round = 0; round < 5; round++) {
        run_meet(pool, 5);
        CHECK(ftpool_workers(pool) <= 5);
        /* Fresh pool each other round: workers started from zero. */
        if (round % 2 == 0) {
            CHECK_EQ(ftpool_shutdown(pool, FTPOOL_SHUTDOWN_FINISH),
                     FTPOOL_OK);
            CHECK_EQ(ftpool_join(pool, -1), FTPOOL_OK);
        }
    }
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
}

static void
nothing(void *arg)
{
    (void)arg;
}

void
test_starvation_after_idle(void)
{
    ftpool_options o = {0};
    ftpool_t *pool = NULL;
    int i;

    o.max_workers = 5;
    REQUIRE(ftpool_create(&o, &pool) == FTPOOL_OK);
    /* Two workers exist and sleep; three more must be started. */
    run_meet(pool, 2);
    CHECK_EQ(ftpool_workers(pool), 2);
    run_meet(pool, 5);
    CHECK_EQ(ftpool_workers(pool), 5);
    /* Many short jobs in between never leave a later long batch short. */
    for (i = 0; i < 1000; i++) {
        CHECK_EQ(ftpool_submit(pool, nothing, NULL, NULL), FTPOOL_OK);
    }
    run_meet(pool, 5);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
}

/* ------------------------------------------------------------------------ */
/* Workers hosted by a spawn hook                                           */
/* ------------------------------------------------------------------------ */

#define MAX_HOSTS 16

/* Each hosted thread logs its hook calls: S start, B before_wait, A
 * after_wait, J job, E end. */
typedef struct host {
    harness_thread th;
    struct hosting *h;
    char log[4096];
    int n;
    int rc;
} host;

typedef struct hosting {
    ftpool__mutex lock;
    ftpool_t *pool;
    host hosts[MAX_HOSTS];
    int nhosts;
    int fail;               /* the hook refuses when set */
    atomic_int spawned;
    atomic_int ended;
    atomic_int jobs;
    atomic_int wrong_pool;
} hosting;

static _Thread_local host *current_host;

static void
host_log(char c)
{
    if (current_host != NULL && current_host->n < 4095) {
        current_host->log[current_host->n++] = c;
    }
}

static void
host_main(void *arg)
{
    host *ho = arg;

    current_host = ho;
    ho->rc = ftpool_worker_run(ho->h->pool);
    current_host = NULL;
}

static int
spawn_hook(ftpool_t *pool, void *arg)
{
    hosting *h = arg;
    host *ho;

    if (h->fail || pool != h->pool) {
        return -1;
    }
    ftpool__mutex_lock(&h->lock);
    if (h->nhosts == MAX_HOSTS) {
        ftpool__mutex_unlock(&h->lock);
        return -1;
    }
    ho = &h->hosts[h->nhosts++];
    ftpool__mutex_unlock(&h->lock);
    ho->h = h;
    ho->n = 0;
    ho->rc = 99;
    atomic_fetch_add(&h->spawned, 1);
    thread_start(&ho->th, host_main, ho);
    return 0;
}

static void
hook_start(void *arg)
{
    (void)arg;
    host_log('S');
}

static void
hook_end(void *arg)
{
    host_log('E');
    atomic_fetch_add(&((hosting *)arg)->ended, 1);
}

static void
hook_before(void *arg)
{
    (void)arg;
    host_log('B');
}

static void
hook_after(void *arg)
{
    (void)arg;
    host_log('A');
}

static void
hosted_job(void *arg)
{
    hosting *h = arg;

    host_log('J');
    if (ftpool_current_pool() != h->pool || current_host == NULL) {
        atomic_fetch_add(&h->wrong_pool, 1);
    }
    atomic_fetch_add(&h->jobs, 1);
}

/* The log of one hosted worker must read S (J | BA)* E: hooks bracket its
 * life, and before/after_wait come in pairs around each sleep. */
static int
log_is_valid(const host *ho)
{
    int i;

    if (ho->n < 2 || ho->log[0] != 'S' || ho->log[ho->n - 1] != 'E') {
        return 0;
    }
    for (i = 1; i < ho->n - 1; i++) {
        char c = ho->log[i];

        if (c == 'B') {
            if (ho->log[i + 1] != 'A') {
                return 0;
            }
            i++;
        }
        else if (c != 'J') {
            return 0;
        }
    }
    return 1;
}

static void
hosting_options(hosting *h, ftpool_options *o, unsigned max_workers)
{
    memset(o, 0, sizeof(*o));
    o->max_workers = max_workers;
    o->spawn = spawn_hook;
    o->spawn_arg = h;
    o->before_wait = hook_before;
    o->after_wait = hook_after;
    o->worker_start = hook_start;
    o->worker_end = hook_end;
    o->hook_arg = h;
}

void
test_spawn_hook(void)
{
    hosting h;
    ftpool_options o;
    int i, round, sleeps = 0;

    memset(&h, 0, sizeof(h));
    ftpool__mutex_init(&h.lock);
    hosting_options(&h, &o, 3);
    REQUIRE(ftpool_create(&o, &h.pool) == FTPOOL_OK);
    /* The first worker is asked for by the timer thread. */
    CHECK_EQ(ftpool_timer_after(h.pool, 5 * MS, 0, hosted_job, NULL, &h,
                                NULL), FTPOOL_OK);
    CHECK(wait_counter(&h.jobs, 1, 5000 * MS));
    for (round = 0; round < 3; round++) {
        for (i = 0; i < 50; i++) {
            CHECK_EQ(ftpool_submit(h.pool, hosted_job, &h, NULL), FTPOOL_OK);
        }
        CHECK_EQ(ftpool_wait_idle(h.pool, -1), FTPOOL_OK);
        /* Let the workers fall asleep between rounds. */
        harness_sleep_ns(10 * MS);
    }
    CHECK_EQ(ftpool_shutdown(h.pool, FTPOOL_SHUTDOWN_FINISH), FTPOOL_OK);
    CHECK_EQ(ftpool_join(h.pool, -1), FTPOOL_OK);
    /* worker_end ran in every worker before join returned. */
    CHECK_EQ(atomic_load(&h.ended), atomic_load(&h.spawned));
    CHECK_EQ(atomic_load(&h.jobs), 151);
    CHECK_EQ(atomic_load(&h.wrong_pool), 0);
    CHECK(atomic_load(&h.spawned) >= 1);
    CHECK(atomic_load(&h.spawned) <= 3);
    for (i = 0; i < h.nhosts; i++) {
        host *ho = &h.hosts[i];

        thread_join(&ho->th);
        CHECK_EQ(ho->rc, FTPOOL_OK);
        CHECK(log_is_valid(ho));
        if (!log_is_valid(ho)) {
            fprintf(stderr, "    hook log: %.*s\n", ho->n, ho->log);
        }
        sleeps += memchr(ho->log, 'B', (size_t)ho->n) != NULL;
    }
    CHECK(sleeps >= 1);     /* workers slept between rounds */
    CHECK_EQ(ftpool_destroy(h.pool), FTPOOL_OK);
    ftpool__mutex_destroy(&h.lock);
}

void
test_spawn_failure(void)
{
    hosting h;
    ftpool_options o;
    uint64_t id = 0;
    int i;

    memset(&h, 0, sizeof(h));
    ftpool__mutex_init(&h.lock);
    hosting_options(&h, &o, 2);
    REQUIRE(ftpool_create(&o, &h.pool) == FTPOOL_OK);
    h.fail = 1;
    /* Queued (the id is stored) although no worker could be started. */
    CHECK_EQ(ftpool_submit(h.pool, hosted_job, &h, &id), FTPOOL_ESPAWN);
    CHECK(id != 0);
    CHECK_EQ(ftpool_pending(h.pool), 1);
    CHECK_EQ(ftpool_workers(h.pool), 0);
    CHECK_EQ(ftpool_join(h.pool, 0), FTPOOL_OK);
    /* A refused request is not a request: nobody may claim it. */
    CHECK_EQ(ftpool_worker_run(h.pool), FTPOOL_EINVAL);
    h.fail = 0;
    CHECK_EQ(ftpool_submit(h.pool, hosted_job, &h, NULL), FTPOOL_OK);
    CHECK_EQ(ftpool_wait_idle(h.pool, -1), FTPOOL_OK);
    CHECK_EQ(atomic_load(&h.jobs), 2);
    CHECK_EQ(ftpool_destroy(h.pool), FTPOOL_OK);
    for (i = 0; i < h.nhosts; i++) {
        thread_join(&h.hosts[i].th);
        CHECK_EQ(h.hosts[i].rc, FTPOOL_OK);
        CHECK(log_is_valid(&h.hosts[i]));
    }
    ftpool__mutex_destroy(&h.lock);
}

void
test_worker_run_unrequested(void)
{
    ftpool_options o = {0};
    ftpool_t *pool = NULL;
    hosting h;

    o.max_workers = 1;
    REQUIRE(ftpool_create(&o, &pool) == FTPOOL_OK);
    CHECK_EQ(ftpool_worker_run(NULL), FTPOOL_EINVAL);
    CHECK_EQ(ftpool_worker_run(pool), FTPOOL_EINVAL);  /* native pool */
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);

    memset(&h, 0, sizeof(h));
    ftpool__mutex_init(&h.lock);
    hosting_options(&h, &o, 1);
    REQUIRE(ftpool_create(&o, &h.pool) == FTPOOL_OK);
    CHECK_EQ(ftpool_worker_run(h.pool), FTPOOL_EINVAL); /* none requested */
    CHECK_EQ(ftpool_workers(h.pool), 0);
    CHECK_EQ(ftpool_destroy(h.pool), FTPOOL_OK);
    ftpool__mutex_destroy(&h.lock);
}

static void
gate_job(void *arg)
{
    gate_wait(arg);
}

void
test_retire_hands_over(void)
{
    ftpool_options o = {0};
    ftpool_t *pool = NULL;
    atomic_int ran = 0;
    int round;
    gate g;

    o.max_workers = 3;
    REQUIRE(ftpool_create(&o, &pool) == FTPOOL_OK);
    for (round = 0; round < 20; round++) {
        CHECK_EQ(ftpool_set_max_workers(pool, 3), FTPOOL_OK);
        run_meet(pool, 3);              /* three workers, then asleep */
        gate_init(&g);
        CHECK_EQ(ftpool_submit(pool, gate_job, &g, NULL), FTPOOL_OK);
        /* One sleeper is woken to retire; the job queued right after it
         * must reach the other sleeper, not wait for the gate. */
        CHECK_EQ(ftpool_set_max_workers(pool, 2), FTPOOL_OK);
        CHECK_EQ(ftpool_submit(pool, job_count, &ran, NULL), FTPOOL_OK);
        CHECK(wait_counter(&ran, round + 1, 3000 * MS));
        gate_open(&g);
        CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
        gate_destroy(&g);
        if (harness_failures > 0) {
            break;
        }
    }
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
}
