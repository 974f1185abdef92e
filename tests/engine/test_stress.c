/*
 * test_stress.c - many jobs from several threads; allocation failures.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* ------------------------------------------------------------------------ */
/* Every job runs exactly once                                              */
/* ------------------------------------------------------------------------ */

static atomic_uchar *stress_flags;

static void
stress_job(void *arg)
{
    atomic_fetch_add_explicit(&stress_flags[(uintptr_t)arg], 1,
                              memory_order_relaxed);
}

typedef struct stress_part {
    ftpool_t *pool;
    size_t begin, end;
    atomic_int errors;
} stress_part;

static void
stress_submitter(void *arg)
{
    stress_part *p = arg;
    size_t i;

    for (i = p->begin; i < p->end; i++) {
        if (ftpool_submit(p->pool, stress_job, (void *)(uintptr_t)i, NULL)
                != FTPOOL_OK) {
            atomic_fetch_add(&p->errors, 1);
        }
    }
}

void
test_stress(void)
{
    enum { SUBMITTERS = 4 };
    size_t n = harness_quick() ? 100000 : 1000000;
    harness_thread th[SUBMITTERS];
    stress_part parts[SUBMITTERS];
    ftpool_options o = {0};
    ftpool_t *pool = NULL;
    ftpool_stats st;
    size_t i, bad = 0;
    int64_t t0;

    if (getenv("FTPOOL_STRESS") != NULL) {
        n *= 10;
    }
    stress_flags = calloc(n, sizeof(*stress_flags));
    REQUIRE(stress_flags != NULL);
    o.max_workers = 2;
    REQUIRE(ftpool_create(&o, &pool) == FTPOOL_OK);
    t0 = ftpool_now_ns();
    for (i = 0; i < SUBMITTERS; i++) {
        parts[i].pool = pool;
        parts[i].begin = n * i / SUBMITTERS;
        parts[i].end = n * (i + 1) / SUBMITTERS;
        atomic_init(&parts[i].errors, 0);
        thread_start(&th[i], stress_submitter, &parts[i]);
    }
    for (i = 0; i < SUBMITTERS; i++) {
        thread_join(&th[i]);
        CHECK_EQ(atomic_load(&parts[i].errors), 0);
    }
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    printf("     %zu jobs from %d threads on 2 workers: %.0f jobs/s\n", n,
           SUBMITTERS, (double)n * 1e9 / (double)(ftpool_now_ns() - t0));
    for (i = 0; i < n; i++) {
        bad += atomic_load_explicit(&stress_flags[i],
                                    memory_order_relaxed) != 1;
    }
    CHECK_EQ(bad, 0);
    ftpool_get_stats(pool, &st);
    CHECK_EQ(st.submitted, n);
    CHECK_EQ(st.completed, n);
    CHECK_EQ(st.dropped, 0);
    CHECK(st.workers <= 2);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    free(stress_flags);
    stress_flags = NULL;
}

/* ------------------------------------------------------------------------ */
/* Allocation failure                                                       */
/* ------------------------------------------------------------------------ */

/* An allocator that fails its fail_at-th allocation (counting from 1). */
typedef struct failing {
    atomic_long count;
    atomic_long live;
    long fail_at;
    atomic_int failed;
} failing;

static void *
failing_alloc(size_t size, void *ctx)
{
    failing *f = ctx;
    void *p;

    if (atomic_fetch_add(&f->count, 1) + 1 == f->fail_at) {
        atomic_store(&f->failed, 1);
        return NULL;
    }
    p = malloc(size);
    if (p != NULL) {
        atomic_fetch_add(&f->live, 1);
    }
    return p;
}

static void
failing_free(void *ptr, void *ctx)
{
    failing *f = ctx;

    atomic_fetch_sub(&f->live, 1);
    free(ptr);
}

typedef struct fate {
    atomic_int ran;
    atomic_int dropped;
} fate;

static void
fate_run(void *arg)
{
    atomic_fetch_add(&((fate *)arg)->ran, 1);
}

static void
fate_drop(void *arg)
{
    atomic_fetch_add(&((fate *)arg)->dropped, 1);
}

/* One create/submit/timer/semaphore/destroy sequence; returns 1 if the
 * injected failure happened. */
static int
alloc_sequence(long fail_at)
{
    enum { JOBS = 24 };
    ftpool_allocator a;
    failing f;
    ftpool_options o = {0};
    ftpool_t *pool = NULL;
    ftpool_sem_t *sem = NULL;
    fate jobs[JOBS], once, periodic;
    int accepted[JOBS], once_ok, periodic_ok, rc, i;

    memset(jobs, 0, sizeof(jobs));
    memset(&once, 0, sizeof(once));
    memset(&periodic, 0, sizeof(periodic));
    atomic_init(&f.count, 0);
    atomic_init(&f.live, 0);
    atomic_init(&f.failed, 0);
    f.fail_at = fail_at;
    a.alloc = failing_alloc;
    a.free = failing_free;
    a.ctx = &f;
    o.max_workers = 2;
    o.allocator = &a;

    rc = ftpool_create(&o, &pool);
    CHECK(rc == FTPOOL_OK || rc == FTPOOL_ENOMEM);
    if (rc != FTPOOL_OK) {
        CHECK_EQ(atomic_load(&f.live), 0);
        return atomic_load(&f.failed);
    }
    for (i = 0; i < JOBS; i++) {
        rc = ftpool_submit_ex(pool, fate_run, fate_drop, &jobs[i],
                              i % 5 == 4 ? FTPOOL_FRONT : 0, NULL);
        CHECK(rc == FTPOOL_OK || rc == FTPOOL_ENOMEM || rc == FTPOOL_ESPAWN);
        accepted[i] = rc != FTPOOL_ENOMEM;
    }
    rc = ftpool_timer_after(pool, 0, 0, fate_run, fate_drop, &once, NULL);
    CHECK(rc == FTPOOL_OK || rc == FTPOOL_ENOMEM);
    once_ok = rc == FTPOOL_OK;
    rc = ftpool_timer_after(pool, MS, MS, fate_run, fate_drop, &periodic,
                            NULL);
    CHECK(rc == FTPOOL_OK || rc == FTPOOL_ENOMEM);
    periodic_ok = rc == FTPOOL_OK;

    ftpool_set_allocator(&a);
    rc = ftpool_sem_create(1, &sem);
    ftpool_set_allocator(NULL);
    CHECK(rc == FTPOOL_OK || rc == FTPOOL_ENOMEM);
    if (rc == FTPOOL_OK) {
        CHECK_EQ(ftpool_sem_acquire(sem, 0), FTPOOL_OK);
        ftpool_sem_destroy(sem);
    }

    /* Let some jobs and timer runs happen (if a worker could start). */
    ftpool_wait_idle(pool, 5 * MS);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);

    /* Each accepted job ran or was dropped, exactly once; a rejected job
     * had neither callback. */
    for (i = 0; i < JOBS; i++) {
        int ran = atomic_load(&jobs[i].ran);
        int dropped = atomic_load(&jobs[i].dropped);

        CHECK_EQ(ran + dropped, accepted[i] ? 1 : 0);
    }
    CHECK_EQ(atomic_load(&once.ran) + atomic_load(&once.dropped), once_ok);
    CHECK_EQ(atomic_load(&periodic.dropped), periodic_ok);
    if (!periodic_ok) {
        CHECK_EQ(atomic_load(&periodic.ran), 0);
    }
    CHECK_EQ(atomic_load(&f.live), 0);
    return atomic_load(&f.failed);
}

void
test_alloc_failure(void)
{
    long n;

    /* Fail the 1st, 2nd, ... allocation until the sequence completes
     * without reaching the failing one. */
    for (n = 1; n < 1000; n++) {
        int before = harness_failures;

        if (!alloc_sequence(n)) {
            break;
        }
        if (harness_failures != before) {
            fprintf(stderr, "    (failing allocation #%ld)\n", n);
            break;
        }
    }
    printf("     %ld allocation points failed in turn\n", n - 1);
    CHECK(n > 5);
    CHECK(n < 1000);
}

static void
gate_job(void *arg)
{
    gate_wait(arg);
}

/* Blocks the only worker, queues `n` jobs of `fates` behind it, and lets
 * them run.  Stores in accepted[i] whether job i was accepted; returns how
 * many submissions failed with FTPOOL_ENOMEM. */
static int
queue_burst(ftpool_t *pool, fate *fates, int *accepted, int n)
{
    gate g;
    int i, nomem = 0, rc;

    gate_init(&g);
    rc = ftpool_submit(pool, gate_job, &g, NULL);
    CHECK_EQ(rc, FTPOOL_OK);
    for (i = 0; i < n; i++) {
        rc = ftpool_submit_ex(pool, fate_run, fate_drop, &fates[i], 0, NULL);
        CHECK(rc == FTPOOL_OK || rc == FTPOOL_ENOMEM);
        accepted[i] = rc == FTPOOL_OK;
        nomem += rc == FTPOOL_ENOMEM;
    }
    gate_open(&g);
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    gate_destroy(&g);
    return nomem;
}

/* Job nodes are recycled without limit: once the queue has been N deep,
 * queueing N jobs again allocates nothing.  A failed node allocation deep
 * in a burst is reported as FTPOOL_ENOMEM for that job only. */
void
test_node_reuse(void)
{
    enum { DEPTH = 5000 };
    static fate fates[3 * DEPTH];
    static int accepted[3 * DEPTH];
    ftpool_allocator a;
    failing f;
    ftpool_options o = {0};
    ftpool_t *pool = NULL;
    long after_first;
    int i, nomem;

    memset(fates, 0, sizeof(fates));
    atomic_init(&f.count, 0);
    atomic_init(&f.live, 0);
    atomic_init(&f.failed, 0);
    f.fail_at = 0;      /* never, for now */
    a.alloc = failing_alloc;
    a.free = failing_free;
    a.ctx = &f;
    o.max_workers = 1;
    o.allocator = &a;
    REQUIRE(ftpool_create(&o, &pool) == FTPOOL_OK);

    CHECK_EQ(queue_burst(pool, fates, accepted, DEPTH), 0);
    after_first = atomic_load(&f.count);
    /* The same depth again, twice: not one allocation. */
    CHECK_EQ(queue_burst(pool, fates, accepted, DEPTH), 0);
    CHECK_EQ(queue_burst(pool, fates, accepted, DEPTH), 0);
    CHECK_EQ(atomic_load(&f.count), after_first);

    /* Deeper than ever, with the next allocation failing: the nodes on
     * hand serve the first DEPTH jobs, then exactly one job is refused,
     * and the next allocation serves the rest. */
    f.fail_at = after_first + 1;
    nomem = queue_burst(pool, fates, accepted, 3 * DEPTH);
    CHECK_EQ(nomem, 1);
    CHECK_EQ(atomic_load(&f.failed), 1);
    for (i = 0; i < DEPTH; i++) {
        CHECK(accepted[i]);
    }
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);

    /* Three bursts ran every job; the refused one ran once less. */
    for (i = 0; i < 3 * DEPTH; i++) {
        int want = (i < DEPTH ? 3 : 0) + accepted[i];

        CHECK_EQ(atomic_load(&fates[i].ran), want);
        CHECK_EQ(atomic_load(&fates[i].dropped), 0);
    }
    CHECK_EQ(atomic_load(&f.live), 0);
}

/* One thread submits a stream of tiny jobs to 1 and to 2 workers, so that
 * the queue keeps running empty and filling again: the last job is taken
 * while the next is being linked behind it, workers spin and park, and
 * submissions must wake them.  Every job runs exactly once, and in order
 * with one worker. */
static atomic_uchar *stream_flags;
static atomic_long stream_last;     /* highest index run so far */
static atomic_int stream_disorder;

static void
stream_job(void *arg)
{
    long i = (long)(uintptr_t)arg;

    atomic_fetch_add_explicit(&stream_flags[i], 1, memory_order_relaxed);
    if (atomic_exchange(&stream_last, i) > i) {
        atomic_fetch_add(&stream_disorder, 1);
    }
}

void
test_stream(void)
{
    size_t n = harness_quick() ? 20000 : 300000;
    unsigned workers;

    stream_flags = calloc(n, sizeof(*stream_flags));
    REQUIRE(stream_flags != NULL);
    for (workers = 1; workers <= 2; workers++) {
        ftpool_options o = {0};
        ftpool_t *pool = NULL;
        ftpool_stats st;
        size_t i, bad = 0;

        memset(stream_flags, 0, n * sizeof(*stream_flags));
        atomic_store(&stream_last, -1);
        atomic_store(&stream_disorder, 0);
        o.max_workers = workers;
        REQUIRE(ftpool_create(&o, &pool) == FTPOOL_OK);
        for (i = 0; i < n; i++) {
            CHECK_EQ(ftpool_submit(pool, stream_job, (void *)(uintptr_t)i,
                                   NULL), FTPOOL_OK);
            /* Now and then a pause, so the workers run dry and park. */
            if (i % 4096 == 4095) {
                harness_sleep_ns(MS / 10);
            }
        }
        CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
        for (i = 0; i < n; i++) {
            bad += atomic_load_explicit(&stream_flags[i],
                                        memory_order_relaxed) != 1;
        }
        CHECK_EQ(bad, 0);
        if (workers == 1) {
            CHECK_EQ(atomic_load(&stream_disorder), 0);
        }
        ftpool_get_stats(pool, &st);
        CHECK_EQ(st.submitted, n);
        CHECK_EQ(st.completed, n);
        CHECK_EQ(st.pending, 0);
        CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    }
    free(stream_flags);
    stream_flags = NULL;
}

/* Jobs cancelled behind a worker that last looked at the queue when it was
 * shorter: the worker must not count on jobs that are gone, also while
 * another worker is busy.  Then the pool goes on as usual. */
void
test_cancel_behind_worker(void)
{
    enum { N = 10 };
    ftpool_options o = {0};
    ftpool_t *pool = NULL;
    atomic_int ran;
    int round, i;

    o.max_workers = 2;
    REQUIRE(ftpool_create(&o, &pool) == FTPOOL_OK);
    atomic_init(&ran, 0);
    for (round = 0; round < 3; round++) {
        gate g1, g2;

        gate_init(&g1);
        gate_init(&g2);
        CHECK_EQ(ftpool_submit(pool, gate_job, &g1, NULL), FTPOOL_OK);
        CHECK_EQ(ftpool_submit(pool, gate_job, &g2, NULL), FTPOOL_OK);
        REQUIRE(wait_busy(pool, 2));
        for (i = 0; i < N; i++) {
            CHECK_EQ(ftpool_submit(pool, job_count, &ran, NULL), FTPOOL_OK);
        }
        if (round == 2) {
            /* One more at the back, cancelled by id. */
            uint64_t id;

            CHECK_EQ(ftpool_submit(pool, job_count, &ran, &id), FTPOOL_OK);
            CHECK_EQ(ftpool_cancel(pool, id), FTPOOL_OK);
        }
        CHECK_EQ(ftpool_cancel_all(pool), N);
        CHECK_EQ(ftpool_pending(pool), 0);
        /* One worker comes back to the queue while the other is busy. */
        gate_open(&g1);
        {
            /* However slow the machine: wait until the first worker has
             * finished its job, then give it time to pop a ghost job. */
            int64_t deadline = ftpool__now_ns() + 5000 * MS;

            while (ftpool_busy(pool) > 1 && ftpool__now_ns() < deadline) {
                harness_sleep_ns(MS / 2);
            }
        }
        harness_sleep_ns(2 * MS);
        CHECK_EQ(ftpool_pending(pool), 0);
        CHECK_EQ(ftpool_busy(pool), 1);
        gate_open(&g2);
        CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
        gate_destroy(&g1);
        gate_destroy(&g2);
        /* The queue works as before. */
        for (i = 0; i < N; i++) {
            CHECK_EQ(ftpool_submit(pool, job_count, &ran, NULL), FTPOOL_OK);
        }
        CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
        CHECK_EQ(atomic_load(&ran), N * (round + 1));
    }
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
}

/* A worker that took a job from a deep queue trusts what it counted then
 * for the jobs behind it.  Jobs cancelled meanwhile - from the middle and
 * the tail - must not be run or counted, the rest run once and in order,
 * and the counters add up. */
static int deep_seen[32];
static atomic_int deep_n;

static void
deep_job(void *arg)
{
    int i = atomic_fetch_add(&deep_n, 1);

    if (i < 32) {
        deep_seen[i] = (int)(uintptr_t)arg;
    }
}

void
test_cancel_in_deep_queue(void)
{
    enum { N = 20 };
    ftpool_options o = {0};
    ftpool_t *pool = NULL;
    uint64_t ids[N];
    ftpool_stats st;
    gate g0, g1;
    int i, k, want;

    o.max_workers = 1;
    REQUIRE(ftpool_create(&o, &pool) == FTPOOL_OK);
    atomic_init(&deep_n, 0);
    gate_init(&g0);
    gate_init(&g1);
    CHECK_EQ(ftpool_submit(pool, gate_job, &g0, NULL), FTPOOL_OK);
    REQUIRE(wait_busy(pool, 1));
    /* The worker comes back to N + 1 queued jobs and blocks in the
     * first. */
    CHECK_EQ(ftpool_submit(pool, gate_job, &g1, NULL), FTPOOL_OK);
    for (i = 0; i < N; i++) {
        CHECK_EQ(ftpool_submit(pool, deep_job, (void *)(uintptr_t)i,
                               &ids[i]), FTPOOL_OK);
    }
    gate_open(&g0);
    {
        int64_t deadline = ftpool__now_ns() + 5000 * MS;

        while (ftpool_pending(pool) > N && ftpool__now_ns() < deadline) {
            harness_sleep_ns(MS / 2);
        }
    }
    REQUIRE(ftpool_pending(pool) == N);
    CHECK_EQ(ftpool_cancel(pool, ids[5]), FTPOOL_OK);
    CHECK_EQ(ftpool_cancel(pool, ids[10]), FTPOOL_OK);
    CHECK_EQ(ftpool_cancel(pool, ids[N - 1]), FTPOOL_OK);
    CHECK_EQ(ftpool_cancel(pool, ids[N - 2]), FTPOOL_OK);
    CHECK_EQ(ftpool_pending(pool), N - 4);
    gate_open(&g1);
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    CHECK_EQ(atomic_load(&deep_n), N - 4);
    for (i = 0, k = 0; i < N && k < N - 4; i++) {
        if (i == 5 || i == 10 || i >= N - 2) {
            continue;
        }
        CHECK_EQ(deep_seen[k], i);
        k++;
    }
    ftpool_get_stats(pool, &st);
    CHECK_EQ(st.pending, 0);
    CHECK_EQ(st.submitted, N + 2);
    CHECK_EQ(st.dropped, 4);
    CHECK_EQ(st.completed, N - 2);
    /* The queue goes on as usual, at the back of the cancelled tail. */
    want = atomic_load(&deep_n) + 3;
    for (i = 0; i < 3; i++) {
        CHECK_EQ(ftpool_submit(pool, deep_job, (void *)(uintptr_t)(100 + i),
                               NULL), FTPOOL_OK);
    }
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    CHECK_EQ(atomic_load(&deep_n), want);
    CHECK_EQ(deep_seen[N - 4], 100);
    CHECK_EQ(deep_seen[N - 2], 102);
    CHECK_EQ(ftpool_pending(pool), 0);
    gate_destroy(&g0);
    gate_destroy(&g1);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
}
