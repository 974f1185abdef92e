/*
 * test_timers.c - one-shot and periodic timers, cancellation, drop.
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

/* What a timer saw: run times and drop calls. */
typedef struct tstate {
    ftpool_t *pool;
    uint64_t id;
    atomic_int runs;
    atomic_int drops;
    atomic_int running;         /* fn is running now */
    atomic_int drop_while_running;
    atomic_int runs_at_drop;
    int64_t times[64];
    int cancel_at;              /* run number that cancels the timer */
    int64_t hold_ns;            /* how long each run takes */
} tstate;

static void
tstate_init(tstate *s, ftpool_t *pool)
{
    memset(s, 0, sizeof(*s));
    s->pool = pool;
}

static void
t_run(void *arg)
{
    tstate *s = arg;
    int n;

    atomic_store(&s->running, 1);
    n = atomic_load(&s->runs);
    if (n < 64) {
        s->times[n] = ftpool_now_ns();
    }
    if (s->hold_ns > 0) {
        harness_sleep_ns(s->hold_ns);
    }
    if (s->cancel_at > 0 && n + 1 == s->cancel_at) {
        if (ftpool_timer_cancel(s->pool, s->id) != FTPOOL_OK) {
            atomic_fetch_add(&s->drop_while_running, 100);
        }
    }
    atomic_store(&s->running, 0);
    atomic_fetch_add(&s->runs, 1);
}

static void
t_drop(void *arg)
{
    tstate *s = arg;

    if (atomic_load(&s->running)) {
        atomic_fetch_add(&s->drop_while_running, 1);
    }
    atomic_store(&s->runs_at_drop, atomic_load(&s->runs));
    atomic_fetch_add(&s->drops, 1);
}

void
test_timer_once(void)
{
    ftpool_t *pool = make_pool(2);
    tstate s;
    int64_t t0, delay = 30 * MS;
    ftpool_stats st;

    REQUIRE(pool != NULL);
    tstate_init(&s, pool);
    t0 = ftpool_now_ns();
    CHECK_EQ(ftpool_timer_after(pool, delay, 0, t_run, t_drop, &s, &s.id),
             FTPOOL_OK);
    ftpool_get_stats(pool, &st);
    CHECK_EQ(st.timers, 1);
    CHECK(wait_counter(&s.runs, 1, 5000 * MS));
    CHECK(s.times[0] - t0 >= delay);
    CHECK_TIMELY(s.times[0] - t0 < delay + harness_slack_ns());
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    harness_sleep_ns(20 * MS);
    CHECK_EQ(atomic_load(&s.runs), 1);
    CHECK_EQ(atomic_load(&s.drops), 0);     /* fn owned arg */
    CHECK_EQ(ftpool_timer_cancel(pool, s.id), FTPOOL_ENOTFOUND);
    ftpool_get_stats(pool, &st);
    CHECK_EQ(st.timers, 0);
    CHECK_EQ(st.submitted, 1);
    CHECK_EQ(st.completed, 1);

    /* A due time in the past fires at once. */
    tstate_init(&s, pool);
    t0 = ftpool_now_ns();
    CHECK_EQ(ftpool_timer_at(pool, t0 - 1000 * MS, 0, t_run, t_drop, &s,
                             NULL), FTPOOL_OK);
    CHECK(wait_counter(&s.runs, 1, 5000 * MS));
    CHECK_TIMELY(s.times[0] - t0 < harness_slack_ns());
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    CHECK_EQ(atomic_load(&s.drops), 0);
}

void
test_timer_periodic(void)
{
    ftpool_t *pool = make_pool(1);
    int64_t start, t_arm, interval = 10 * MS;
    tstate s;
    int i, n;

    REQUIRE(pool != NULL);
    tstate_init(&s, pool);
    /* Each run is slow (3 ms): if the next due time were computed from the
     * run, the schedule would drift by that much every time. */
    s.hold_ns = 3 * MS;
    start = ftpool_now_ns() + interval;
    CHECK_EQ(ftpool_timer_at(pool, start, interval, t_run, t_drop, &s,
                             &s.id), FTPOOL_OK);
    CHECK(wait_counter(&s.runs, 20, 5000 * MS));
    CHECK_EQ(ftpool_timer_cancel(pool, s.id), FTPOOL_OK);
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    n = atomic_load(&s.runs);
    CHECK(n >= 20);
    for (i = 0; i < n && i < 20; i++) {
        /* Never early, and each run at its own slot: no drift. */
        CHECK(s.times[i] >= start + i * interval);
        CHECK_TIMELY(s.times[i] < start + i * interval
                                  + harness_slack_ns());
    }
    CHECK_EQ(atomic_load(&s.drops), 1);
    CHECK_EQ(atomic_load(&s.drop_while_running), 0);
    harness_sleep_ns(3 * interval);
    CHECK_EQ(atomic_load(&s.runs), n);      /* no run after cancel */

    /* Due 10.5 intervals ago: one run at once, the missed ones coalesced,
     * and the next runs stay on the original grid (start + k * interval),
     * not one interval after the late run. */
    interval = 100 * MS;
    tstate_init(&s, pool);
    t_arm = ftpool_now_ns();
    start = t_arm - 10 * interval - interval / 2;
    CHECK_EQ(ftpool_timer_at(pool, start, interval, t_run, t_drop, &s,
                             &s.id), FTPOOL_OK);
    CHECK(wait_counter(&s.runs, 3, 5000 * MS));
    CHECK_EQ(ftpool_timer_cancel(pool, s.id), FTPOOL_OK);
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    CHECK_TIMELY(s.times[0] - t_arm < harness_slack_ns());
    for (i = 1; i < 3; i++) {
        int64_t slot = start + (10 + i) * interval;

        CHECK(s.times[i] >= slot);
        CHECK_TIMELY(s.times[i]
                     < slot + interval / 4 + harness_slack_ns() / 10);
    }
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    CHECK_EQ(atomic_load(&s.drops), 1);
}

void
test_timer_cancel_before_run(void)
{
    ftpool_t *pool = make_pool(2);
    tstate once, periodic;
    ftpool_stats st;

    REQUIRE(pool != NULL);
    tstate_init(&once, pool);
    tstate_init(&periodic, pool);
    CHECK_EQ(ftpool_timer_after(pool, 30 * MS, 0, t_run, t_drop, &once,
                                &once.id), FTPOOL_OK);
    CHECK_EQ(ftpool_timer_after(pool, 30 * MS, 5 * MS, t_run, t_drop,
                                &periodic, &periodic.id), FTPOOL_OK);
    CHECK_EQ(ftpool_timer_cancel(pool, once.id), FTPOOL_OK);
    CHECK_EQ(atomic_load(&once.drops), 1);      /* at once: none in flight */
    CHECK_EQ(ftpool_timer_cancel(pool, once.id), FTPOOL_ENOTFOUND);
    CHECK_EQ(ftpool_timer_cancel_all(pool), 1);
    CHECK_EQ(atomic_load(&periodic.drops), 1);
    CHECK_EQ(ftpool_timer_cancel_all(pool), 0);
    ftpool_get_stats(pool, &st);
    CHECK_EQ(st.timers, 0);
    harness_sleep_ns(60 * MS);
    CHECK_EQ(atomic_load(&once.runs), 0);
    CHECK_EQ(atomic_load(&periodic.runs), 0);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    CHECK_EQ(atomic_load(&once.drops), 1);
    CHECK_EQ(atomic_load(&periodic.drops), 1);
}

typedef struct order {
    ftpool__mutex lock;
    int seen[32];
    int n;
} order;

typedef struct order_job {
    order *o;
    int value;
} order_job;

static void
record(void *arg)
{
    order_job *j = arg;

    ftpool__mutex_lock(&j->o->lock);
    j->o->seen[j->o->n++] = j->value;
    ftpool__mutex_unlock(&j->o->lock);
}

static void
gate_job(void *arg)
{
    gate_wait(arg);
}

void
test_timer_equal_deadlines(void)
{
    ftpool_t *pool = make_pool(1);
    order o;
    order_job jobs[8];
    int64_t due;
    gate g;
    int i;

    REQUIRE(pool != NULL);
    memset(&o, 0, sizeof(o));
    ftpool__mutex_init(&o.lock);
    gate_init(&g);
    /* Hold the only worker, queue a plain job (value 100), then arm timers
     * with one deadline: they fire together, go to the front in arming
     * order, ahead of the plain job. */
    CHECK_EQ(ftpool_submit(pool, gate_job, &g, NULL), FTPOOL_OK);
    /* Running before any timer fires, or a timer run would go first. */
    REQUIRE(wait_busy(pool, 1));
    jobs[7].o = &o;
    jobs[7].value = 100;
    CHECK_EQ(ftpool_submit(pool, record, &jobs[7], NULL), FTPOOL_OK);
    due = ftpool_now_ns() + 20 * MS;
    for (i = 0; i < 6; i++) {
        jobs[i].o = &o;
        jobs[i].value = i;
        CHECK_EQ(ftpool_timer_at(pool, due, 0, record, NULL, &jobs[i], NULL),
                 FTPOOL_OK);
    }
    while (ftpool_pending(pool) < 7) {
        harness_sleep_ns(MS);
    }
    gate_open(&g);
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    CHECK_EQ(o.n, 7);
    for (i = 0; i < 6 && i < o.n; i++) {
        CHECK_EQ(o.seen[i], i);
    }
    CHECK_EQ(o.seen[6], 100);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    gate_destroy(&g);
    ftpool__mutex_destroy(&o.lock);
}

/* Timers that fall due one after another while the only worker is busy
 * run in deadline order, ahead of the plain jobs: each run is queued
 * behind the runs of earlier timers, not in front of them.  Cancelling
 * the last queued run keeps the order of the others. */
void
test_timer_runs_in_deadline_order(void)
{
    ftpool_t *pool = make_pool(1);
    order o;
    order_job jobs[8];
    uint64_t ids[6];
    int64_t start;
    gate g;
    int i;

    REQUIRE(pool != NULL);
    memset(&o, 0, sizeof(o));
    ftpool__mutex_init(&o.lock);
    gate_init(&g);
    CHECK_EQ(ftpool_submit(pool, gate_job, &g, NULL), FTPOOL_OK);
    REQUIRE(wait_busy(pool, 1));
    jobs[7].o = &o;
    jobs[7].value = 100;
    CHECK_EQ(ftpool_submit(pool, record, &jobs[7], NULL), FTPOOL_OK);
    start = ftpool_now_ns();
    for (i = 0; i < 6; i++) {
        jobs[i].o = &o;
        jobs[i].value = i;
        CHECK_EQ(ftpool_timer_at(pool, start + (i + 1) * 10 * MS, 0, record,
                                 NULL, &jobs[i], &ids[i]), FTPOOL_OK);
    }
    /* Runs 0..4 queued one by one (plus the plain job), then the newest
     * of them cancelled while run 5 is still to come. */
    while (ftpool_pending(pool) < 6) {
        harness_sleep_ns(MS);
    }
    if (ftpool_now_ns() < start + 55 * MS) {
        CHECK_EQ(ftpool_cancel(pool, ids[4]), FTPOOL_OK);
        jobs[4].value = -1;
    }
    /* Every run still to come queued (the plain job waits too). */
    while (ftpool_pending(pool) < (jobs[4].value < 0 ? 6u : 7u)) {
        harness_sleep_ns(MS);
    }
    gate_open(&g);
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    {
        int expect[7], n = 0;
        for (i = 0; i < 6; i++) {
            if (jobs[i].value >= 0) {
                expect[n++] = i;
            }
        }
        expect[n++] = 100;
        CHECK_EQ(o.n, n);
        for (i = 0; i < n && i < o.n; i++) {
            CHECK_EQ(o.seen[i], expect[i]);
        }
    }
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    gate_destroy(&g);
    ftpool__mutex_destroy(&o.lock);
}

void
test_timer_cancel_between_runs(void)
{
    ftpool_t *pool = make_pool(1);
    tstate s;

    REQUIRE(pool != NULL);
    tstate_init(&s, pool);
    /* The third run cancels its own timer: drop must wait for it to end. */
    s.cancel_at = 3;
    s.hold_ns = 2 * MS;
    CHECK_EQ(ftpool_timer_after(pool, 5 * MS, 5 * MS, t_run, t_drop, &s,
                                &s.id), FTPOOL_OK);
    CHECK(wait_counter(&s.drops, 1, 5000 * MS));
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    harness_sleep_ns(30 * MS);
    /* Normally 3; a 4th run may have been queued before the cancel on a
     * slow machine, and then completes before drop. */
    CHECK(atomic_load(&s.runs) >= 3);
    CHECK_EQ(atomic_load(&s.runs), atomic_load(&s.runs_at_drop));
    CHECK_EQ(atomic_load(&s.drops), 1);
    CHECK_EQ(atomic_load(&s.drop_while_running), 0);

    /* Cancelled from outside between runs. */
    tstate_init(&s, pool);
    CHECK_EQ(ftpool_timer_after(pool, 5 * MS, 5 * MS, t_run, t_drop, &s,
                                &s.id), FTPOOL_OK);
    CHECK(wait_counter(&s.runs, 2, 5000 * MS));
    CHECK_EQ(ftpool_timer_cancel(pool, s.id), FTPOOL_OK);
    CHECK(wait_counter(&s.drops, 1, 5000 * MS));
    harness_sleep_ns(30 * MS);
    CHECK_EQ(atomic_load(&s.runs), atomic_load(&s.runs_at_drop));
    CHECK_EQ(atomic_load(&s.drops), 1);
    CHECK_EQ(atomic_load(&s.drop_while_running), 0);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    CHECK_EQ(atomic_load(&s.drops), 1);
}

void
test_timer_not_queued_twice(void)
{
    ftpool_t *pool = make_pool(1);
    tstate s;
    gate g;
    int n;

    REQUIRE(pool != NULL);
    tstate_init(&s, pool);
    gate_init(&g);
    /* The only worker is held for ~12 intervals: one run is queued, the
     * other due times find it still queued. */
    CHECK_EQ(ftpool_submit(pool, gate_job, &g, NULL), FTPOOL_OK);
    /* Running before any timer fires, or a timer run would go first. */
    REQUIRE(wait_busy(pool, 1));
    CHECK_EQ(ftpool_timer_after(pool, 5 * MS, 5 * MS, t_run, t_drop, &s,
                                &s.id), FTPOOL_OK);
    harness_sleep_ns(60 * MS);
    CHECK_EQ(ftpool_pending(pool), 1);
    CHECK_EQ(atomic_load(&s.runs), 0);
    CHECK_EQ(ftpool_timer_cancel(pool, s.id), FTPOOL_OK);
    CHECK_EQ(atomic_load(&s.drops), 0);     /* a run is still in flight */
    gate_open(&g);
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    n = atomic_load(&s.runs);
    CHECK_EQ(n, 1);
    CHECK_EQ(atomic_load(&s.drops), 1);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    gate_destroy(&g);
}

void
test_timer_cancel_queued_run(void)
{
    ftpool_t *pool = make_pool(1);
    tstate once, periodic;
    ftpool_stats st;
    gate g;

    REQUIRE(pool != NULL);
    tstate_init(&once, pool);
    tstate_init(&periodic, pool);
    gate_init(&g);
    CHECK_EQ(ftpool_submit(pool, gate_job, &g, NULL), FTPOOL_OK);
    /* Running before any timer fires, or a timer run would go first. */
    REQUIRE(wait_busy(pool, 1));
    CHECK_EQ(ftpool_timer_after(pool, 0, 0, t_run, t_drop, &once, &once.id),
             FTPOOL_OK);
    CHECK_EQ(ftpool_timer_after(pool, 0, 1000 * MS, t_run, t_drop, &periodic,
                                &periodic.id), FTPOOL_OK);
    while (ftpool_pending(pool) < 2) {
        harness_sleep_ns(MS);
    }
    /* The queued run of a one-shot timer is a job with the timer's id:
     * cancelling it drops the timer (fn never ran). */
    CHECK_EQ(ftpool_timer_cancel(pool, once.id), FTPOOL_ENOTFOUND);
    CHECK_EQ(ftpool_cancel(pool, once.id), FTPOOL_OK);
    CHECK_EQ(atomic_load(&once.drops), 1);
    /* A periodic timer stays armed when one run is cancelled. */
    CHECK_EQ(ftpool_cancel(pool, periodic.id), FTPOOL_OK);
    CHECK_EQ(atomic_load(&periodic.drops), 0);
    ftpool_get_stats(pool, &st);
    CHECK_EQ(st.timers, 1);
    CHECK_EQ(st.dropped, 2);
    CHECK_EQ(ftpool_timer_cancel(pool, periodic.id), FTPOOL_OK);
    CHECK_EQ(atomic_load(&periodic.drops), 1);
    gate_open(&g);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    CHECK_EQ(atomic_load(&once.runs), 0);
    CHECK_EQ(atomic_load(&periodic.runs), 0);
    CHECK_EQ(atomic_load(&once.drops), 1);
    CHECK_EQ(atomic_load(&periodic.drops), 1);
    gate_destroy(&g);
}

static void
nothing(void *arg)
{
    (void)arg;
}

void
test_timer_shutdown_flag(void)
{
    ftpool_t *pool = make_pool(2);
    tstate a, b, c;
    ftpool_stats st;
    int n;

    REQUIRE(pool != NULL);
    tstate_init(&a, pool);
    tstate_init(&b, pool);
    tstate_init(&c, pool);
    CHECK_EQ(ftpool_timer_after(pool, 1000 * MS, 0, t_run, t_drop, &a, NULL),
             FTPOOL_OK);
    CHECK_EQ(ftpool_timer_after(pool, 2 * MS, 2 * MS, t_run, t_drop, &b,
                                NULL), FTPOOL_OK);
    CHECK(wait_counter(&b.runs, 2, 5000 * MS));
    /* Without the flag, timers survive a shutdown ... */
    CHECK_EQ(ftpool_shutdown(pool, FTPOOL_SHUTDOWN_FINISH), FTPOOL_OK);
    CHECK_EQ(ftpool_join(pool, -1), FTPOOL_OK);
    ftpool_get_stats(pool, &st);
    CHECK_EQ(st.timers, 2);
    CHECK_EQ(atomic_load(&a.drops) + atomic_load(&b.drops), 0);
    /* ... and queue their runs, but start no worker by themselves ... */
    n = atomic_load(&b.runs);
    harness_sleep_ns(20 * MS);
    CHECK_EQ(atomic_load(&b.runs), n);
    CHECK_EQ(ftpool_pending(pool), 1);      /* one run, not queued twice */
    CHECK_EQ(ftpool_workers(pool), 0);
    /* ... until a submission starts the pool again. */
    CHECK_EQ(ftpool_submit(pool, nothing, NULL, NULL), FTPOOL_OK);
    CHECK(wait_counter(&b.runs, n + 3, 5000 * MS));
    CHECK_EQ(ftpool_shutdown(pool, FTPOOL_SHUTDOWN_FINISH
                                   | FTPOOL_SHUTDOWN_TIMERS), FTPOOL_OK);
    CHECK_EQ(ftpool_join(pool, -1), FTPOOL_OK);
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    CHECK_EQ(atomic_load(&a.drops), 1);
    CHECK_EQ(atomic_load(&b.drops), 1);
    CHECK_EQ(atomic_load(&a.runs), 0);
    ftpool_get_stats(pool, &st);
    CHECK_EQ(st.timers, 0);
    CHECK_EQ(st.pending, 0);
    /* The pool still takes timers afterwards. */
    CHECK_EQ(ftpool_timer_after(pool, 0, 0, t_run, t_drop, &c, NULL),
             FTPOOL_OK);
    CHECK_EQ(ftpool_submit(pool, nothing, NULL, NULL), FTPOOL_OK);
    CHECK(wait_counter(&c.runs, 1, 5000 * MS));
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    CHECK_EQ(atomic_load(&a.drops), 1);
    CHECK_EQ(atomic_load(&b.drops), 1);
    CHECK_EQ(atomic_load(&c.drops), 0);
}

void
test_timer_closed(void)
{
    ftpool_t *pool = make_pool(2);
    tstate once, periodic;
    ftpool_stats st;
    int n;

    REQUIRE(pool != NULL);
    tstate_init(&once, pool);
    tstate_init(&periodic, pool);
    CHECK_EQ(ftpool_timer_after(pool, 10 * MS, 0, t_run, t_drop, &once,
                                NULL), FTPOOL_OK);
    CHECK_EQ(ftpool_timer_after(pool, 10 * MS, 10 * MS, t_run, t_drop,
                                &periodic, &periodic.id), FTPOOL_OK);
    ftpool_close(pool);
    harness_sleep_ns(50 * MS);
    /* While closed, due runs are skipped: the one-shot timer ended. */
    CHECK_EQ(atomic_load(&once.runs), 0);
    CHECK_EQ(atomic_load(&once.drops), 1);
    CHECK_EQ(atomic_load(&periodic.runs), 0);
    ftpool_get_stats(pool, &st);
    CHECK_EQ(st.timers, 1);
    ftpool_open(pool);
    CHECK(wait_counter(&periodic.runs, 1, 5000 * MS));
    CHECK_EQ(ftpool_timer_cancel(pool, periodic.id), FTPOOL_OK);
    CHECK(wait_counter(&periodic.drops, 1, 5000 * MS));
    n = atomic_load(&periodic.runs);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    CHECK_EQ(atomic_load(&periodic.runs), n);
    CHECK_EQ(atomic_load(&periodic.drops), 1);
}
