/*
 * test_submitters.c - several threads submitting at once: every job runs
 * exactly once, one submitter's jobs run in its order, no wake-up is lost
 * when workers park, cancelling and walking the queue while others submit,
 * and timer runs and front submissions among them.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

enum { MAX_SUBMITTERS = 8 };

/* A job's argument: which submitter, which of its jobs. */
typedef struct tag {
    unsigned thread;
    unsigned seq;
} tag;

/* What happened to every job of one test. */
static struct {
    tag *tags;                  /* [thread * per + seq] */
    atomic_uchar *ran;          /* times run */
    atomic_uchar *dropped;      /* times dropped */
    unsigned per;               /* jobs per submitter */
    /* With one worker (check_order): the last seq run of each submitter,
     * and how often a job ran after a later one of the same submitter. */
    int check_order;
    atomic_long last[MAX_SUBMITTERS];
    atomic_int disorder;
} lg;

static void
tagged_job(void *arg)
{
    tag *t = arg;

    atomic_fetch_add_explicit(&lg.ran[t - lg.tags], 1,
                              memory_order_relaxed);
    if (lg.check_order
            && atomic_exchange_explicit(&lg.last[t->thread], (long)t->seq,
                                        memory_order_relaxed)
               >= (long)t->seq) {
        atomic_fetch_add(&lg.disorder, 1);
    }
}

static void
tagged_drop(void *arg)
{
    tag *t = arg;

    atomic_fetch_add_explicit(&lg.dropped[t - lg.tags], 1,
                              memory_order_relaxed);
}

static int
log_init(unsigned threads, unsigned per, int check_order)
{
    size_t n = (size_t)threads * per, i;
    unsigned k;

    lg.per = per;
    lg.tags = calloc(n, sizeof(*lg.tags));
    lg.ran = calloc(n, sizeof(*lg.ran));
    lg.dropped = calloc(n, sizeof(*lg.dropped));
    if (lg.tags == NULL || lg.ran == NULL || lg.dropped == NULL) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        lg.tags[i].thread = (unsigned)(i / per);
        lg.tags[i].seq = (unsigned)(i % per);
    }
    lg.check_order = check_order;
    for (k = 0; k < MAX_SUBMITTERS; k++) {
        atomic_init(&lg.last[k], -1);
    }
    atomic_init(&lg.disorder, 0);
    return 1;
}

static void
log_free(void)
{
    free(lg.tags);
    free(lg.ran);
    free(lg.dropped);
    lg.tags = NULL;
    lg.ran = lg.dropped = NULL;
}

/* Every job ran `runs` times and was dropped `drops` times; returns how
 * many did not. */
static size_t
log_count_bad(size_t n, unsigned runs, unsigned drops)
{
    size_t i, bad = 0;

    for (i = 0; i < n; i++) {
        bad += atomic_load(&lg.ran[i]) != runs
               || atomic_load(&lg.dropped[i]) != drops;
    }
    return bad;
}

/* One submitting thread.  Every `pause_every` jobs it sleeps a little, so
 * that the workers run dry and park, and its next job must wake one. */
typedef struct submitter {
    ftpool_t *pool;
    unsigned thread, pause_every;
    _Atomic uint64_t *ids;      /* ids of all jobs, 0 until submitted */
    _Atomic uint64_t *latest;   /* its latest id */
    atomic_int errors;
} submitter;

static void
submitter_main(void *arg)
{
    submitter *s = arg;
    unsigned i;

    for (i = 0; i < lg.per; i++) {
        size_t k = (size_t)s->thread * lg.per + i;
        uint64_t id = 0;

        if (ftpool_submit_ex(s->pool, tagged_job, tagged_drop, &lg.tags[k],
                             0, &id) != FTPOOL_OK) {
            atomic_fetch_add(&s->errors, 1);
        }
        if (s->ids != NULL) {
            atomic_store(&s->ids[k], id);
            atomic_store(s->latest, id);
        }
        if (s->pause_every != 0 && i % s->pause_every == s->pause_every - 1) {
            harness_sleep_ns(MS / 20);
        }
    }
}

/* Runs `threads` submitters of lg.per jobs each on pool, all at once. */
static void
run_submitters(ftpool_t *pool, unsigned threads, unsigned pause_every,
               _Atomic uint64_t *ids, _Atomic uint64_t *latest)
{
    harness_thread th[MAX_SUBMITTERS];
    submitter s[MAX_SUBMITTERS];
    unsigned k;

    for (k = 0; k < threads; k++) {
        s[k].pool = pool;
        s[k].thread = k;
        s[k].pause_every = pause_every;
        s[k].ids = ids;
        s[k].latest = latest != NULL ? &latest[k] : NULL;
        atomic_init(&s[k].errors, 0);
        thread_start(&th[k], submitter_main, &s[k]);
    }
    for (k = 0; k < threads; k++) {
        thread_join(&th[k]);
        CHECK_EQ(atomic_load(&s[k].errors), 0);
    }
}

/* Waits (10 s at most) until the pool is idle; if it is not, its queue is
 * dropped so that nothing refers to the log afterwards. */
static void
wait_idle_or_drop(ftpool_t *pool)
{
    int rc = ftpool_wait_idle(pool, 10000 * MS);

    CHECK_EQ(rc, FTPOOL_OK);
    if (rc != FTPOOL_OK) {
        ftpool_cancel_all(pool);
        ftpool_wait_idle(pool, -1);
    }
}

/* Many submitters times many workers, with pauses that make the workers
 * park between bursts: every job runs exactly once, and no job is left
 * queued while the workers sleep (the wait for idle would time out). */
void
test_submitters_exactly_once(void)
{
    static const unsigned workers[] = {1, 2, 4};
    static const unsigned threads[] = {2, 8};
    unsigned per = harness_quick() ? 2000 : 20000;
    unsigned wi, ti;

    for (wi = 0; wi < 3; wi++) {
        for (ti = 0; ti < 2; ti++) {
            unsigned t = threads[ti];
            size_t n = (size_t)t * per;
            ftpool_options o = {0};
            ftpool_t *pool = NULL;
            ftpool_stats st;

            REQUIRE(log_init(t, per, 0));
            o.max_workers = workers[wi];
            REQUIRE(ftpool_create(&o, &pool) == FTPOOL_OK);
            run_submitters(pool, t, 64, NULL, NULL);
            wait_idle_or_drop(pool);
            CHECK_EQ(log_count_bad(n, 1, 0), 0);
            ftpool_get_stats(pool, &st);
            CHECK_EQ(st.submitted, n);
            CHECK_EQ(st.completed, n);
            CHECK_EQ(st.pending, 0);
            CHECK_EQ(st.dropped, 0);
            CHECK(st.workers <= workers[wi]);
            CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
            log_free();
        }
    }
}

/* With one worker, each submitter's jobs run in the order it submitted
 * them, however the submissions of several threads interleave. */
void
test_submitters_fifo(void)
{
    unsigned t = 4, per = harness_quick() ? 5000 : 50000;
    ftpool_options o = {0};
    ftpool_t *pool = NULL;

    REQUIRE(log_init(t, per, 1));
    o.max_workers = 1;
    REQUIRE(ftpool_create(&o, &pool) == FTPOOL_OK);
    run_submitters(pool, t, 1024, NULL, NULL);
    wait_idle_or_drop(pool);
    CHECK_EQ(atomic_load(&lg.disorder), 0);
    CHECK_EQ(log_count_bad((size_t)t * per, 1, 0), 0);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    log_free();
}

/* Threads that each submit one job at a time and wait for it, after a
 * pause long enough for the workers to park: every submission meets a
 * parking or parked worker.  A wake-up lost between a submitter and a
 * parking worker leaves the job queued with every worker asleep. */
typedef struct ping {
    ftpool_t *pool;
    unsigned rounds, seed;
    atomic_int done;
    int late;
} ping;

static void
ping_job(void *arg)
{
    atomic_fetch_add(&((ping *)arg)->done, 1);
}

static void
ping_main(void *arg)
{
    ping *p = arg;
    unsigned i;

    for (i = 0; i < p->rounds; i++) {
        p->seed = p->seed * 1103515245u + 12345u;
        /* 0 to 100 us: around the workers' spin before they park. */
        harness_sleep_ns((int64_t)((p->seed >> 8) % 100) * 1000);
        if (ftpool_submit(p->pool, ping_job, p, NULL) != FTPOOL_OK
                || !wait_counter(&p->done, (int)i + 1, 5000 * MS)) {
            p->late++;
            return;
        }
    }
}

void
test_wakeup_handshake(void)
{
    enum { THREADS = 3 };
    unsigned rounds = harness_quick() ? 200 : 1000, workers, k;

    for (workers = 1; workers <= 2; workers++) {
        harness_thread th[THREADS];
        ping p[THREADS];
        ftpool_options o = {0};
        ftpool_t *pool = NULL;

        o.max_workers = workers;
        REQUIRE(ftpool_create(&o, &pool) == FTPOOL_OK);
        for (k = 0; k < THREADS; k++) {
            p[k].pool = pool;
            p[k].rounds = rounds;
            p[k].seed = 7 + k;
            p[k].late = 0;
            atomic_init(&p[k].done, 0);
            thread_start(&th[k], ping_main, &p[k]);
        }
        for (k = 0; k < THREADS; k++) {
            thread_join(&th[k]);
            CHECK_EQ(p[k].late, 0);
            CHECK_EQ(atomic_load(&p[k].done), rounds);
        }
        CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    }
}

/* Cancels and walks the queue while three threads submit behind a blocked
 * worker: each job is run or dropped exactly once, each successful cancel
 * dropped exactly its job, and every walk sees each submitter's jobs in
 * order. */
typedef struct canceller {
    ftpool_t *pool;
    _Atomic uint64_t *ids, *latest;
    size_t n;
    unsigned threads;
    atomic_int stop;
    long cancelled, walks, walk_disorder;
} canceller;

/* ctx: the last seq seen of each submitter in this walk, then a count of
 * jobs seen out of order. */
static void
visit_tag(void *arg, uint64_t id, void *ctx)
{
    tag *t = arg;
    long *last = ctx;

    (void)id;
    if ((long)t->seq <= last[t->thread]) {
        last[MAX_SUBMITTERS]++;
    }
    last[t->thread] = t->seq;
}

static void
canceller_main(void *arg)
{
    canceller *c = arg;
    unsigned seed = 12345, i, k;

    while (!atomic_load(&c->stop)) {
        long last[MAX_SUBMITTERS + 1];

        for (i = 0; i < 16; i++) {
            uint64_t id;

            seed = seed * 1103515245u + 12345u;
            /* Any job so far, or one just queued (likely the last). */
            id = i % 2 ? atomic_load(&c->ids[(seed >> 8) % c->n])
                       : atomic_load(&c->latest[(seed >> 8) % c->threads]);
            if (id != 0 && ftpool_cancel(c->pool, id) == FTPOOL_OK) {
                c->cancelled++;
            }
        }
        for (k = 0; k < MAX_SUBMITTERS; k++) {
            last[k] = -1;
        }
        last[MAX_SUBMITTERS] = 0;
        ftpool_foreach_queued(c->pool, visit_tag, last);
        c->walk_disorder += last[MAX_SUBMITTERS];
        c->walks++;
    }
}

static void
gate_job(void *arg)
{
    gate_wait(arg);
}

void
test_cancel_while_submitting(void)
{
    enum { THREADS = 3 };
    unsigned per = harness_quick() ? 2000 : 10000;
    size_t i, n = (size_t)THREADS * per, dropped = 0, bad = 0;
    _Atomic uint64_t latest[THREADS];
    ftpool_options o = {0};
    ftpool_t *pool = NULL;
    harness_thread cth;
    ftpool_stats st;
    canceller c;
    gate g;

    c.ids = calloc(n, sizeof(*c.ids));
    REQUIRE(c.ids != NULL);
    REQUIRE(log_init(THREADS, per, 0));
    o.max_workers = 1;
    REQUIRE(ftpool_create(&o, &pool) == FTPOOL_OK);
    gate_init(&g);
    CHECK_EQ(ftpool_submit(pool, gate_job, &g, NULL), FTPOOL_OK);
    REQUIRE(wait_busy(pool, 1));
    for (i = 0; i < THREADS; i++) {
        atomic_init(&latest[i], 0);
    }
    c.pool = pool;
    c.latest = latest;
    c.n = n;
    c.threads = THREADS;
    c.cancelled = c.walks = c.walk_disorder = 0;
    atomic_init(&c.stop, 0);
    thread_start(&cth, canceller_main, &c);
    run_submitters(pool, THREADS, 128, c.ids, latest);
    atomic_store(&c.stop, 1);
    thread_join(&cth);
    gate_open(&g);
    wait_idle_or_drop(pool);
    for (i = 0; i < n; i++) {
        dropped += atomic_load(&lg.dropped[i]);
        bad += atomic_load(&lg.ran[i]) + atomic_load(&lg.dropped[i]) != 1;
    }
    CHECK_EQ(bad, 0);
    CHECK_EQ(dropped, c.cancelled);
    CHECK_EQ(c.walk_disorder, 0);
    CHECK(c.walks > 0);
    ftpool_get_stats(pool, &st);
    CHECK_EQ(st.submitted, n + 1);
    CHECK_EQ(st.dropped, dropped);
    CHECK_EQ(st.completed, n + 1 - dropped);
    CHECK_EQ(st.pending, 0);
    printf("     %zu jobs, %ld cancelled while submitting, %ld walks\n", n,
           c.cancelled, c.walks);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    gate_destroy(&g);
    log_free();
    free(c.ids);
}

/* Timer runs (queued at the front, taken off under tail_lock when they are
 * the last job) and front submissions, among jobs that two threads queue
 * at the back, on one worker that often takes the last job while a
 * submitter links the next: every job runs once, the back jobs in each
 * submitter's order, and the periodic timer keeps running. */
typedef struct fronter {
    ftpool_t *pool;
    unsigned n;
    atomic_int ran;
    atomic_int errors;
} fronter;

static void
front_job(void *arg)
{
    atomic_fetch_add(&((fronter *)arg)->ran, 1);
}

static void
fronter_main(void *arg)
{
    fronter *f = arg;
    unsigned i;

    for (i = 0; i < f->n; i++) {
        if (ftpool_submit_ex(f->pool, front_job, NULL, f, FTPOOL_FRONT,
                             NULL) != FTPOOL_OK) {
            atomic_fetch_add(&f->errors, 1);
        }
        if (i % 16 == 15) {
            harness_sleep_ns(MS / 20);
        }
    }
}

void
test_timers_among_submitters(void)
{
    unsigned t = 2, per = harness_quick() ? 3000 : 30000;
    ftpool_options o = {0};
    ftpool_t *pool = NULL;
    harness_thread fth;
    atomic_int ticks;
    uint64_t tid;
    fronter f;
    int before;

    REQUIRE(log_init(t, per, 1));
    o.max_workers = 1;
    REQUIRE(ftpool_create(&o, &pool) == FTPOOL_OK);
    atomic_init(&ticks, 0);
    CHECK_EQ(ftpool_timer_after(pool, 0, MS / 10, job_count, NULL, &ticks,
                                &tid), FTPOOL_OK);
    f.pool = pool;
    f.n = harness_quick() ? 200 : 2000;
    atomic_init(&f.ran, 0);
    atomic_init(&f.errors, 0);
    thread_start(&fth, fronter_main, &f);
    run_submitters(pool, t, 32, NULL, NULL);
    thread_join(&fth);
    CHECK_EQ(atomic_load(&f.errors), 0);
    /* The timer still runs after the storm. */
    before = atomic_load(&ticks);
    CHECK(wait_counter(&ticks, before + 3, 5000 * MS));
    CHECK_EQ(ftpool_timer_cancel(pool, tid), FTPOOL_OK);
    wait_idle_or_drop(pool);
    CHECK(before > 0);
    CHECK_EQ(atomic_load(&f.ran), f.n);
    CHECK_EQ(atomic_load(&lg.disorder), 0);
    CHECK_EQ(log_count_bad((size_t)t * per, 1, 0), 0);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    log_free();
}
