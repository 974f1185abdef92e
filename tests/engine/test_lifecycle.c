/*
 * test_lifecycle.c - shutdown modes, join/wait_idle timeouts, counters.
 */
#include <string.h>

#include "harness.h"

static ftpool_t *
make_pool(unsigned max_workers)
{
    ftpool_options o = {0};
    ftpool_t *pool = NULL;

    o.max_workers = max_workers;
    if (ftpool_create(&o, &pool) != FTPOOL_OK) {
        return NULL;
    }
    return pool;
}

typedef struct counts {
    atomic_int ran;
    atomic_int dropped;
} counts;

static void
c_run(void *arg)
{
    atomic_fetch_add(&((counts *)arg)->ran, 1);
}

static void
c_drop(void *arg)
{
    atomic_fetch_add(&((counts *)arg)->dropped, 1);
}

static void
gate_job(void *arg)
{
    gate_wait(arg);
}

/* A job that, while the pool shuts down, submits more jobs. */
typedef struct spawner {
    ftpool_t *pool;
    gate *g;
    counts *c;
} spawner;

static void
spawner_job(void *arg)
{
    spawner *s = arg;
    int i;

    gate_wait(s->g);
    for (i = 0; i < 5; i++) {
        ftpool_submit_ex(s->pool, c_run, c_drop, s->c, 0, NULL);
    }
}

void
test_shutdown_finish(void)
{
    ftpool_t *pool = make_pool(2);
    counts c = {0};
    spawner sp;
    gate g;
    int i;

    REQUIRE(pool != NULL);
    gate_init(&g);
    sp.pool = pool;
    sp.g = &g;
    sp.c = &c;
    CHECK_EQ(ftpool_submit(pool, spawner_job, &sp, NULL), FTPOOL_OK);
    CHECK_EQ(ftpool_submit(pool, gate_job, &g, NULL), FTPOOL_OK);
    CHECK(wait_busy(pool, 2));
    for (i = 0; i < 10; i++) {
        CHECK_EQ(ftpool_submit_ex(pool, c_run, c_drop, &c, 0, NULL),
                 FTPOOL_OK);
    }
    CHECK_EQ(ftpool_shutdown(pool, FTPOOL_SHUTDOWN_FINISH), FTPOOL_OK);
    gate_open(&g);
    CHECK_EQ(ftpool_join(pool, -1), FTPOOL_OK);
    /* The queue ran empty, including what a running job added. */
    CHECK_EQ(atomic_load(&c.ran), 15);
    CHECK_EQ(atomic_load(&c.dropped), 0);
    CHECK_EQ(ftpool_workers(pool), 0);
    CHECK_EQ(ftpool_pending(pool), 0);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    gate_destroy(&g);
}

void
test_shutdown_soon(void)
{
    ftpool_t *pool = make_pool(1);
    counts c = {0};
    gate g;
    int i;

    REQUIRE(pool != NULL);
    gate_init(&g);
    CHECK_EQ(ftpool_submit(pool, gate_job, &g, NULL), FTPOOL_OK);
    CHECK(wait_busy(pool, 1));
    for (i = 0; i < 5; i++) {
        CHECK_EQ(ftpool_submit_ex(pool, c_run, c_drop, &c, 0, NULL),
                 FTPOOL_OK);
    }
    CHECK_EQ(ftpool_shutdown(pool, FTPOOL_SHUTDOWN_SOON), FTPOOL_OK);
    gate_open(&g);
    CHECK_EQ(ftpool_join(pool, -1), FTPOOL_OK);
    /* Queued jobs stay queued ... */
    CHECK_EQ(atomic_load(&c.ran), 0);
    CHECK_EQ(atomic_load(&c.dropped), 0);
    CHECK_EQ(ftpool_pending(pool), 5);
    CHECK_EQ(ftpool_workers(pool), 0);
    /* ... until a new submission starts workers again, ... */
    CHECK_EQ(ftpool_submit_ex(pool, c_run, c_drop, &c, 0, NULL), FTPOOL_OK);
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    CHECK_EQ(atomic_load(&c.ran), 6);
    /* ... or a FINISH shutdown starts workers to run them. */
    gate_destroy(&g);
    gate_init(&g);
    CHECK_EQ(ftpool_submit(pool, gate_job, &g, NULL), FTPOOL_OK);
    CHECK(wait_busy(pool, 1));
    for (i = 0; i < 5; i++) {
        CHECK_EQ(ftpool_submit_ex(pool, c_run, c_drop, &c, 0, NULL),
                 FTPOOL_OK);
    }
    CHECK_EQ(ftpool_shutdown(pool, FTPOOL_SHUTDOWN_SOON), FTPOOL_OK);
    gate_open(&g);
    CHECK_EQ(ftpool_join(pool, -1), FTPOOL_OK);
    CHECK_EQ(ftpool_pending(pool), 5);
    CHECK_EQ(ftpool_workers(pool), 0);
    CHECK_EQ(ftpool_shutdown(pool, FTPOOL_SHUTDOWN_FINISH), FTPOOL_OK);
    CHECK_EQ(ftpool_join(pool, -1), FTPOOL_OK);
    CHECK_EQ(atomic_load(&c.ran), 11);
    CHECK_EQ(ftpool_pending(pool), 0);
    CHECK_EQ(ftpool_workers(pool), 0);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    CHECK_EQ(atomic_load(&c.dropped), 0);
    gate_destroy(&g);
}

void
test_shutdown_drop(void)
{
    ftpool_t *pool = make_pool(1);
    counts c = {0};
    ftpool_stats st;
    gate g;
    int i;

    REQUIRE(pool != NULL);
    gate_init(&g);
    CHECK_EQ(ftpool_submit(pool, gate_job, &g, NULL), FTPOOL_OK);
    CHECK(wait_busy(pool, 1));
    for (i = 0; i < 5; i++) {
        CHECK_EQ(ftpool_submit_ex(pool, c_run, c_drop, &c, 0, NULL),
                 FTPOOL_OK);
    }
    CHECK_EQ(ftpool_shutdown(pool, FTPOOL_SHUTDOWN_DROP), FTPOOL_OK);
    CHECK_EQ(atomic_load(&c.dropped), 5);
    CHECK_EQ(ftpool_pending(pool), 0);
    CHECK_EQ(ftpool_join(pool, 0), FTPOOL_ETIMEDOUT);  /* still running */
    gate_open(&g);
    CHECK_EQ(ftpool_join(pool, -1), FTPOOL_OK);
    CHECK_EQ(atomic_load(&c.ran), 0);
    ftpool_get_stats(pool, &st);
    CHECK_EQ(st.submitted, 6);
    CHECK_EQ(st.completed, 1);
    CHECK_EQ(st.dropped, 5);
    CHECK_EQ(st.workers, 0);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    CHECK_EQ(atomic_load(&c.dropped), 5);
    gate_destroy(&g);
}

void
test_restart_after_shutdown(void)
{
    ftpool_t *pool = make_pool(3);
    counts c = {0};
    int round, i;

    REQUIRE(pool != NULL);
    /* Shutdown with no worker is a no-op; join returns at once. */
    CHECK_EQ(ftpool_shutdown(pool, FTPOOL_SHUTDOWN_SOON), FTPOOL_OK);
    CHECK_EQ(ftpool_join(pool, 0), FTPOOL_OK);
    for (round = 0; round < 20; round++) {
        for (i = 0; i < 10; i++) {
            CHECK_EQ(ftpool_submit_ex(pool, c_run, c_drop, &c, 0, NULL),
                     FTPOOL_OK);
        }
        CHECK_EQ(ftpool_shutdown(pool, (unsigned)(round % 2)
                                       ? FTPOOL_SHUTDOWN_FINISH
                                       : FTPOOL_SHUTDOWN_FINISH
                                         | FTPOOL_SHUTDOWN_TIMERS),
                 FTPOOL_OK);
        CHECK_EQ(ftpool_join(pool, -1), FTPOOL_OK);
        CHECK_EQ(ftpool_workers(pool), 0);
        CHECK_EQ(atomic_load(&c.ran), (round + 1) * 10);
    }
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    CHECK_EQ(atomic_load(&c.dropped), 0);
}

/* Checks that a wait returning ETIMEDOUT took timeout, within the slack. */
static void
check_timeout(int (*wait)(ftpool_t *, int64_t), ftpool_t *pool,
              int64_t timeout)
{
    int64_t t0 = ftpool_now_ns(), dt;

    CHECK_EQ(wait(pool, timeout), FTPOOL_ETIMEDOUT);
    dt = ftpool_now_ns() - t0;
    CHECK(dt >= timeout);
    CHECK_TIMELY(dt < timeout + harness_slack_ns());
    if (dt < timeout || dt >= timeout + harness_slack_ns()) {
        fprintf(stderr, "    waited %.3f ms for a %.3f ms timeout\n",
                (double)dt / 1e6, (double)timeout / 1e6);
    }
}

void
test_join_timeout(void)
{
    ftpool_t *pool = make_pool(1);
    int64_t t0;
    gate g;

    REQUIRE(pool != NULL);
    gate_init(&g);
    CHECK_EQ(ftpool_submit(pool, gate_job, &g, NULL), FTPOOL_OK);
    CHECK(wait_busy(pool, 1));
    CHECK_EQ(ftpool_shutdown(pool, FTPOOL_SHUTDOWN_FINISH), FTPOOL_OK);
    t0 = ftpool_now_ns();
    CHECK_EQ(ftpool_join(pool, 0), FTPOOL_ETIMEDOUT);
    CHECK_TIMELY(ftpool_now_ns() - t0 < harness_slack_ns());
    check_timeout(ftpool_join, pool, 20 * MS);
    check_timeout(ftpool_join, pool, 50 * MS);
    check_timeout(ftpool_join, pool, 1);
    gate_open(&g);
    CHECK_EQ(ftpool_join(pool, 5000 * MS), FTPOOL_OK);
    CHECK_EQ(ftpool_workers(pool), 0);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    gate_destroy(&g);
}

void
test_wait_idle_timeout(void)
{
    ftpool_t *pool = make_pool(2);
    counts c = {0};
    gate g;

    REQUIRE(pool != NULL);
    gate_init(&g);
    CHECK_EQ(ftpool_wait_idle(pool, 0), FTPOOL_OK);
    CHECK_EQ(ftpool_submit(pool, gate_job, &g, NULL), FTPOOL_OK);
    check_timeout(ftpool_wait_idle, pool, 30 * MS);
    CHECK_EQ(ftpool_wait_idle(pool, 0), FTPOOL_ETIMEDOUT);
    gate_open(&g);
    CHECK_EQ(ftpool_wait_idle(pool, 5000 * MS), FTPOOL_OK);
    /* Idle means no job running or queued; workers may stay alive. */
    CHECK_EQ(ftpool_busy(pool), 0);
    CHECK_EQ(ftpool_submit_ex(pool, c_run, c_drop, &c, 0, NULL), FTPOOL_OK);
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    CHECK_EQ(atomic_load(&c.ran), 1);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    gate_destroy(&g);
}

typedef struct from_worker {
    ftpool_t *pool;
    int join, idle, destroy;
    ftpool_t *current;
    atomic_int done;
} from_worker;

static void
from_worker_job(void *arg)
{
    from_worker *f = arg;

    f->current = ftpool_current_pool();
    f->join = ftpool_join(f->pool, -1);
    f->idle = ftpool_wait_idle(f->pool, -1);
    f->destroy = ftpool_destroy(f->pool);
    atomic_store(&f->done, 1);
}

void
test_busy_from_worker(void)
{
    from_worker f;

    memset(&f, 0, sizeof(f));
    f.pool = make_pool(1);
    REQUIRE(f.pool != NULL);
    CHECK_EQ(ftpool_submit(f.pool, from_worker_job, &f, NULL), FTPOOL_OK);
    CHECK(wait_counter(&f.done, 1, 5000 * MS));
    CHECK_EQ(ftpool_wait_idle(f.pool, -1), FTPOOL_OK);
    CHECK(f.current == f.pool);
    CHECK_EQ(f.join, FTPOOL_EBUSY);
    CHECK_EQ(f.idle, FTPOOL_EBUSY);
    CHECK_EQ(f.destroy, FTPOOL_EBUSY);
    CHECK(ftpool_current_pool() == NULL);
    CHECK_EQ(ftpool_destroy(f.pool), FTPOOL_OK);
}

void
test_destroy_drops(void)
{
    ftpool_t *pool = make_pool(1);
    counts c = {0}, running = {0};
    gate g;
    int i;

    REQUIRE(pool != NULL);
    gate_init(&g);
    CHECK_EQ(ftpool_submit(pool, gate_job, &g, NULL), FTPOOL_OK);
    CHECK(wait_busy(pool, 1));
    for (i = 0; i < 100; i++) {
        CHECK_EQ(ftpool_submit_ex(pool, c_run, c_drop, &c, 0, NULL),
                 FTPOOL_OK);
    }
    CHECK_EQ(ftpool_timer_after(pool, 1000 * MS, 0, c_run, c_drop, &running,
                                NULL), FTPOOL_OK);
    gate_open(&g);
    /* destroy drops what is queued and waits for the running job. */
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    CHECK_EQ(atomic_load(&c.ran) + atomic_load(&c.dropped), 100);
    CHECK_EQ(atomic_load(&running.ran), 0);
    CHECK_EQ(atomic_load(&running.dropped), 1);
    gate_destroy(&g);
}

void
test_counters(void)
{
    ftpool_t *pool = make_pool(4);
    ftpool_stats st;
    counts c = {0};
    gate g;
    int i;

    REQUIRE(pool != NULL);
    gate_init(&g);
    for (i = 0; i < 4; i++) {
        CHECK_EQ(ftpool_submit(pool, gate_job, &g, NULL), FTPOOL_OK);
    }
    for (i = 0; i < 3; i++) {
        CHECK_EQ(ftpool_submit_ex(pool, c_run, c_drop, &c, 0, NULL),
                 FTPOOL_OK);
    }
    CHECK(wait_busy(pool, 4));
    CHECK_EQ(ftpool_workers(pool), 4);
    CHECK_EQ(ftpool_busy(pool), 4);
    CHECK_EQ(ftpool_pending(pool), 3);
    ftpool_get_stats(pool, &st);
    CHECK_EQ(st.workers, 4);
    CHECK_EQ(st.busy, 4);
    CHECK_EQ(st.pending, 3);
    CHECK_EQ(st.submitted, 7);
    CHECK_EQ(st.completed, 0);
    CHECK_EQ(st.dropped, 0);
    CHECK_EQ(st.timers, 0);
    gate_open(&g);
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    ftpool_get_stats(pool, &st);
    CHECK_EQ(st.busy, 0);
    CHECK_EQ(st.pending, 0);
    CHECK_EQ(st.completed, 7);
    CHECK_EQ(st.workers, 4);        /* idle workers stay */
    CHECK_EQ(ftpool_shutdown(pool, FTPOOL_SHUTDOWN_FINISH), FTPOOL_OK);
    CHECK_EQ(ftpool_join(pool, -1), FTPOOL_OK);
    CHECK_EQ(ftpool_workers(pool), 0);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    gate_destroy(&g);
}

typedef struct submitter {
    ftpool_t *pool;
    counts *c;
    int n;
} submitter;

static void
submit_many(void *arg)
{
    submitter *s = arg;
    int i;

    for (i = 0; i < s->n; i++) {
        if (ftpool_submit_ex(s->pool, c_run, c_drop, s->c, 0, NULL)
                != FTPOOL_OK) {
            atomic_fetch_add(&s->c->dropped, 1000000);
        }
    }
}

void
test_counters_concurrent(void)
{
    ftpool_t *pool = make_pool(3);
    harness_thread th[2];
    submitter sub;
    counts c = {0};
    ftpool_stats st;
    int i, n = harness_quick() ? 2000 : 50000, samples = 0;

    REQUIRE(pool != NULL);
    sub.pool = pool;
    sub.c = &c;
    sub.n = n;
    thread_start(&th[0], submit_many, &sub);
    thread_start(&th[1], submit_many, &sub);
    /* Every snapshot adds up: each accepted job is queued, running, done or
     * dropped, never two of these and never none. */
    do {
        unsigned w = ftpool_workers(pool), b = ftpool_busy(pool);

        CHECK(w <= 3);
        CHECK(b <= 3);
        ftpool_get_stats(pool, &st);
        CHECK(st.busy <= st.workers);
        CHECK(st.workers <= 3);
        CHECK_EQ(st.submitted, st.completed + st.dropped + st.pending
                               + st.busy);
        samples++;
        if (harness_failures > 0) {
            break;
        }
    } while (atomic_load(&c.ran) < 2 * n);
    for (i = 0; i < 2; i++) {
        thread_join(&th[i]);
    }
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    ftpool_get_stats(pool, &st);
    CHECK_EQ(st.submitted, 2 * n);
    CHECK_EQ(st.completed, 2 * n);
    CHECK_EQ(st.pending, 0);
    CHECK_EQ(st.busy, 0);
    CHECK_EQ(atomic_load(&c.ran), 2 * n);
    CHECK_EQ(atomic_load(&c.dropped), 0);
    CHECK(samples > 0);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
}

void
test_max_workers(void)
{
    ftpool_t *pool = make_pool(1);
    counts c = {0};
    gate g;
    int i;

    REQUIRE(pool != NULL);
    gate_init(&g);
    for (i = 0; i < 4; i++) {
        CHECK_EQ(ftpool_submit(pool, gate_job, &g, NULL), FTPOOL_OK);
    }
    CHECK(wait_busy(pool, 1));
    CHECK_EQ(ftpool_workers(pool), 1);
    CHECK_EQ(ftpool_pending(pool), 3);
    /* A larger maximum starts workers for the queued jobs at once. */
    CHECK_EQ(ftpool_set_max_workers(pool, 4), FTPOOL_OK);
    CHECK_EQ(ftpool_max_workers(pool), 4);
    CHECK(wait_busy(pool, 4));
    CHECK_EQ(ftpool_workers(pool), 4);
    /* A smaller one: extra workers retire after their job. */
    CHECK_EQ(ftpool_set_max_workers(pool, 2), FTPOOL_OK);
    gate_open(&g);
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    {
        int64_t deadline = ftpool_now_ns() + 5000 * MS;

        while (ftpool_workers(pool) > 2 && ftpool_now_ns() < deadline) {
            harness_sleep_ns(MS);
        }
    }
    CHECK_EQ(ftpool_workers(pool), 2);
    /* Idle workers retire too when the maximum drops below them. */
    CHECK_EQ(ftpool_set_max_workers(pool, 1), FTPOOL_OK);
    {
        int64_t deadline = ftpool_now_ns() + 5000 * MS;

        while (ftpool_workers(pool) > 1 && ftpool_now_ns() < deadline) {
            harness_sleep_ns(MS);
        }
    }
    CHECK_EQ(ftpool_workers(pool), 1);
    for (i = 0; i < 100; i++) {
        CHECK_EQ(ftpool_submit_ex(pool, c_run, c_drop, &c, 0, NULL),
                 FTPOOL_OK);
        CHECK(ftpool_workers(pool) <= 1);
    }
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    CHECK_EQ(atomic_load(&c.ran), 100);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    gate_destroy(&g);
}

static void
quick_job(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

void
test_join_with_timer(void)
{
    ftpool_t *pool = make_pool(1);
    atomic_int runs = 0, other = 0;
    uint64_t id = 0;
    int i, rounds = harness_quick() ? 30 : 200;

    REQUIRE(pool != NULL);
    /* A fast periodic timer keeps queueing runs while the pool shuts down:
     * join must neither wait for workers the timer starts nor miss the
     * instant when none is alive; wait_idle must see the short idle
     * moments between runs. */
    CHECK_EQ(ftpool_timer_after(pool, 0, MS / 2, quick_job, NULL, &runs,
                                &id), FTPOOL_OK);
    for (i = 0; i < rounds; i++) {
        /* Start the pool again; a timer run reaches a worker. */
        CHECK_EQ(ftpool_submit(pool, quick_job, &other, NULL), FTPOOL_OK);
        CHECK(wait_counter(&runs, i + 1, 5000 * MS));
        CHECK_EQ(ftpool_wait_idle(pool, 5000 * MS), FTPOOL_OK);
        CHECK_EQ(ftpool_shutdown(pool, FTPOOL_SHUTDOWN_FINISH), FTPOOL_OK);
        CHECK_EQ(ftpool_join(pool, 5000 * MS), FTPOOL_OK);
        CHECK_EQ(ftpool_workers(pool), 0);      /* none started since */
        if (harness_failures > 0) {
            break;
        }
    }
    CHECK(atomic_load(&runs) >= rounds);
    CHECK_EQ(ftpool_timer_cancel(pool, id), FTPOOL_OK);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
}

/* A worker going through a queue of plain jobs takes each next one without
 * pool->lock; a shutdown must still stop it at once.  One job of the
 * stream shuts the pool down (SOON, then DROP): on one worker, not a
 * single job after it starts. */
typedef struct stopper {
    ftpool_t *pool;
    unsigned how;
    int at;                 /* the job that shuts down */
    atomic_int ran;
    atomic_int dropped;
} stopper;

static void
stopper_job(void *arg)
{
    stopper *s = arg;

    if (atomic_fetch_add(&s->ran, 1) + 1 == s->at) {
        ftpool_shutdown(s->pool, s->how);
    }
}

static void
stopper_drop(void *arg)
{
    atomic_fetch_add(&((stopper *)arg)->dropped, 1);
}

void
test_shutdown_from_stream(void)
{
    enum { N = 3000, AT = 1000 };
    static const unsigned modes[] = {FTPOOL_SHUTDOWN_SOON,
                                     FTPOOL_SHUTDOWN_DROP};
    unsigned m;

    for (m = 0; m < 2; m++) {
        ftpool_t *pool = make_pool(1);
        stopper s;
        gate g;
        int i;

        REQUIRE(pool != NULL);
        s.pool = pool;
        s.how = modes[m];
        s.at = AT;
        atomic_init(&s.ran, 0);
        atomic_init(&s.dropped, 0);
        gate_init(&g);
        CHECK_EQ(ftpool_submit(pool, gate_job, &g, NULL), FTPOOL_OK);
        CHECK(wait_busy(pool, 1));
        for (i = 0; i < N; i++) {
            CHECK_EQ(ftpool_submit_ex(pool, stopper_job, stopper_drop, &s,
                                      0, NULL), FTPOOL_OK);
        }
        gate_open(&g);
        CHECK_EQ(ftpool_join(pool, -1), FTPOOL_OK);
        CHECK_EQ(atomic_load(&s.ran), AT);
        if (modes[m] == FTPOOL_SHUTDOWN_SOON) {
            CHECK_EQ(ftpool_pending(pool), N - AT);
            CHECK_EQ(atomic_load(&s.dropped), 0);
        }
        else {
            CHECK_EQ(ftpool_pending(pool), 0);
            CHECK_EQ(atomic_load(&s.dropped), N - AT);
        }
        CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
        CHECK_EQ(atomic_load(&s.ran) + atomic_load(&s.dropped), N);
        gate_destroy(&g);
    }
}

/* After a SOON shutdown the queued jobs stay queued with no worker; resume
 * starts workers for them. */
void
test_resume_after_soon(void)
{
    ftpool_t *pool = make_pool(2);
    counts c = {0};
    gate g;
    int i;

    REQUIRE(pool != NULL);
    gate_init(&g);
    CHECK_EQ(ftpool_submit(pool, gate_job, &g, NULL), FTPOOL_OK);
    CHECK_EQ(ftpool_submit(pool, gate_job, &g, NULL), FTPOOL_OK);
    REQUIRE(wait_busy(pool, 2));
    for (i = 0; i < 6; i++) {
        CHECK_EQ(ftpool_submit_ex(pool, c_run, c_drop, &c, 0, NULL),
                 FTPOOL_OK);
    }
    CHECK_EQ(ftpool_shutdown(pool, FTPOOL_SHUTDOWN_SOON), FTPOOL_OK);
    gate_open(&g);
    CHECK_EQ(ftpool_join(pool, -1), FTPOOL_OK);
    CHECK_EQ(ftpool_pending(pool), 6);
    CHECK_EQ(atomic_load(&c.ran), 0);
    CHECK_EQ(ftpool_resume(pool), FTPOOL_OK);
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    CHECK_EQ(atomic_load(&c.ran), 6);
    /* On a running pool it changes nothing. */
    CHECK_EQ(ftpool_resume(pool), FTPOOL_OK);
    CHECK_EQ(ftpool_submit_ex(pool, c_run, c_drop, &c, 0, NULL), FTPOOL_OK);
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    CHECK_EQ(atomic_load(&c.ran), 7);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    CHECK_EQ(atomic_load(&c.dropped), 0);
    gate_destroy(&g);
}

/* A job queued while the last worker leaves after a SOON shutdown finds a
 * worker alive, so it does not restart the pool by itself; resume does,
 * whatever the timing. */
void
test_resume_while_workers_leave(void)
{
    ftpool_t *pool = make_pool(1);
    counts c = {0};
    int round;

    REQUIRE(pool != NULL);
    for (round = 0; round < 200; round++) {
        CHECK_EQ(ftpool_submit_ex(pool, c_run, c_drop, &c, 0, NULL),
                 FTPOOL_OK);
        CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
        CHECK_EQ(ftpool_shutdown(pool, FTPOOL_SHUTDOWN_SOON), FTPOOL_OK);
        CHECK_EQ(ftpool_submit_ex(pool, c_run, c_drop, &c, 0, NULL),
                 FTPOOL_OK);
        CHECK_EQ(ftpool_resume(pool), FTPOOL_OK);
        if (ftpool_wait_idle(pool, 5 * 1000000000LL) != FTPOOL_OK) {
            CHECK(!"a job stayed queued after resume");
            break;
        }
    }
    CHECK_EQ(atomic_load(&c.ran), 2 * round);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
}

/* A job that will return to the queue (ftpool_job_returning) covers one
 * job queued meanwhile: no second worker starts for it. */
typedef struct returner {
    int announce;
    ftpool_sem_t *inside, *go_on;
} returner;

static void
returner_job(void *arg)
{
    returner *r = arg;

    if (r->announce) {
        ftpool_job_returning();
        ftpool_job_returning();     /* counted once per job */
    }
    ftpool_sem_release(r->inside, 1);
    ftpool_sem_acquire(r->go_on, -1);
}

static unsigned
workers_after_submit_during_job(int announce)
{
    ftpool_t *pool = make_pool(4);
    counts c = {0};
    returner r;
    unsigned workers;

    if (pool == NULL) {
        return 0;
    }
    r.announce = announce;
    ftpool_sem_create(0, &r.inside);
    ftpool_sem_create(0, &r.go_on);
    CHECK_EQ(ftpool_submit(pool, returner_job, &r, NULL), FTPOOL_OK);
    CHECK_EQ(ftpool_sem_acquire(r.inside, -1), FTPOOL_OK);
    CHECK_EQ(ftpool_submit_ex(pool, c_run, c_drop, &c, 0, NULL), FTPOOL_OK);
    workers = ftpool_workers(pool);
    ftpool_sem_release(r.go_on, 1);
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    CHECK_EQ(atomic_load(&c.ran), 1);
    /* Once the job has returned, a new job during a long one gets its own
     * worker again. */
    if (announce) {
        r.announce = 0;
        CHECK_EQ(ftpool_submit(pool, returner_job, &r, NULL), FTPOOL_OK);
        CHECK_EQ(ftpool_sem_acquire(r.inside, -1), FTPOOL_OK);
        CHECK_EQ(ftpool_submit(pool, returner_job, &r, NULL), FTPOOL_OK);
        CHECK_EQ(ftpool_sem_acquire(r.inside, -1), FTPOOL_OK);
        ftpool_sem_release(r.go_on, 2);
        CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    }
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    ftpool_sem_destroy(r.inside);
    ftpool_sem_destroy(r.go_on);
    return workers;
}

void
test_job_returning(void)
{
    ftpool_job_returning();     /* not in a worker: nothing */
    CHECK_EQ(workers_after_submit_during_job(1), 1);
    CHECK_EQ(workers_after_submit_during_job(0), 2);
}

/* A wait made of several calls (as the Python binding waits, in slices)
 * does not miss a state that lasted only between two of them. */
void
test_wait_since_mark(void)
{
    ftpool_t *pool = make_pool(1);
    counts c = {0};
    ftpool_mark mark;
    gate g;

    REQUIRE(pool != NULL);
    gate_init(&g);
    CHECK_EQ(ftpool_submit_ex(pool, c_run, c_drop, &c, 0, NULL), FTPOOL_OK);
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    ftpool_mark_now(pool, &mark);
    /* The worker leaves, then a submission starts the pool again and the
     * new worker is busy: no worker alive only for an instant, idle only
     * for an instant, both after the mark. */
    CHECK_EQ(ftpool_shutdown(pool, FTPOOL_SHUTDOWN_FINISH), FTPOOL_OK);
    while (ftpool_workers(pool) != 0) {
        harness_sleep_ns(MS);
    }
    CHECK_EQ(ftpool_submit(pool, gate_job, &g, NULL), FTPOOL_OK);
    REQUIRE(wait_busy(pool, 1));
    CHECK_EQ(ftpool_join(pool, 0), FTPOOL_ETIMEDOUT);
    CHECK_EQ(ftpool_join_since(pool, &mark, 0), FTPOOL_OK);
    CHECK_EQ(ftpool_wait_idle(pool, 0), FTPOOL_ETIMEDOUT);
    CHECK_EQ(ftpool_wait_idle_since(pool, &mark, 0), FTPOOL_OK);
    ftpool_mark_now(pool, &mark);
    CHECK_EQ(ftpool_join_since(pool, &mark, 0), FTPOOL_ETIMEDOUT);
    CHECK_EQ(ftpool_wait_idle_since(pool, &mark, 0), FTPOOL_ETIMEDOUT);
    gate_open(&g);
    CHECK_EQ(ftpool_wait_idle_since(pool, &mark, -1), FTPOOL_OK);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    gate_destroy(&g);
}
