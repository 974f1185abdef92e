/*
 * test_jobs.c - submission order, ids, cancellation, close/open.
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

/* Records the order in which jobs run. */
typedef struct order {
    ftpool__mutex lock;
    int seen[256];
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
test_strerror(void)
{
    int codes[] = {FTPOOL_OK, FTPOOL_ENOMEM, FTPOOL_EINVAL, FTPOOL_ESTOPPED,
                   FTPOOL_ETIMEDOUT, FTPOOL_ENOTFOUND, FTPOOL_ESPAWN,
                   FTPOOL_EBUSY};
    size_t i, j;

    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        CHECK(ftpool_strerror(codes[i]) != NULL);
        for (j = 0; j < i; j++) {
            CHECK(strcmp(ftpool_strerror(codes[i]),
                         ftpool_strerror(codes[j])) != 0);
        }
    }
    CHECK(ftpool_strerror(-1000) != NULL);
}

void
test_create_args(void)
{
    ftpool_options o = {0};
    ftpool_t *pool = NULL;
    ftpool_allocator bad = {NULL, NULL, NULL};

    CHECK_EQ(ftpool_create(&o, &pool), FTPOOL_EINVAL);      /* 0 workers */
    o.max_workers = 1;
    CHECK_EQ(ftpool_create(NULL, &pool), FTPOOL_EINVAL);
    CHECK_EQ(ftpool_create(&o, NULL), FTPOOL_EINVAL);
    o.allocator = &bad;
    CHECK_EQ(ftpool_create(&o, &pool), FTPOOL_EINVAL);
    o.allocator = NULL;
    REQUIRE(ftpool_create(&o, &pool) == FTPOOL_OK);
    /* No worker exists before the first job. */
    CHECK_EQ(ftpool_workers(pool), 0);
    CHECK_EQ(ftpool_max_workers(pool), 1);
    CHECK_EQ(ftpool_submit(pool, NULL, NULL, NULL), FTPOOL_EINVAL);
    CHECK_EQ(ftpool_submit_ex(pool, job_count, NULL, NULL, 0x100, NULL),
             FTPOOL_EINVAL);
    CHECK_EQ(ftpool_shutdown(pool, 3), FTPOOL_EINVAL);
    CHECK_EQ(ftpool_set_max_workers(pool, 0), FTPOOL_EINVAL);
    CHECK_EQ(ftpool_timer_after(pool, 0, -1, job_count, NULL, NULL, NULL),
             FTPOOL_EINVAL);
    CHECK(ftpool_current_pool() == NULL);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
}

/* With one worker held by a gate, queued jobs run in queue order. */
static void
run_order(int front_mask, int n, const int *expect)
{
    ftpool_t *pool = make_pool(1);
    order o;
    order_job jobs[64];
    gate g;
    int i;

    REQUIRE(pool != NULL);
    memset(&o, 0, sizeof(o));
    ftpool__mutex_init(&o.lock);
    gate_init(&g);
    CHECK_EQ(ftpool_submit(pool, gate_job, &g, NULL), FTPOOL_OK);
    CHECK(wait_busy(pool, 1));
    for (i = 0; i < n; i++) {
        jobs[i].o = &o;
        jobs[i].value = i;
        CHECK_EQ(ftpool_submit_ex(pool, record, NULL, &jobs[i],
                                  i < 31 && ((front_mask >> i) & 1)
                                      ? FTPOOL_FRONT : 0,
                                  NULL), FTPOOL_OK);
    }
    gate_open(&g);
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    CHECK_EQ(o.n, n);
    for (i = 0; i < n && i < o.n; i++) {
        CHECK_EQ(o.seen[i], expect[i]);
    }
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    gate_destroy(&g);
    ftpool__mutex_destroy(&o.lock);
}

void
test_fifo(void)
{
    int expect[64];
    int i;

    for (i = 0; i < 64; i++) {
        expect[i] = i;
    }
    run_order(0, 64, expect);
}

void
test_front(void)
{
    /* 0,1,2 to the back, 3 and 4 to the front, 5 to the back. */
    int expect[] = {4, 3, 0, 1, 2, 5};

    run_order((1 << 3) | (1 << 4), 6, expect);
    /* Only front jobs: a stack. */
    {
        int rev[] = {3, 2, 1, 0};

        run_order(0xf, 4, rev);
    }
}

void
test_ids(void)
{
    ftpool_t *pool = make_pool(2);
    atomic_int count = 0;
    uint64_t prev = 0, id = 0, tid = 0;
    int i;

    REQUIRE(pool != NULL);
    for (i = 0; i < 1000; i++) {
        CHECK_EQ(ftpool_submit(pool, job_count, &count, &id), FTPOOL_OK);
        CHECK(id > prev);
        if (i == 0) {
            CHECK_EQ(id, 1);
        }
        prev = id;
    }
    /* Timers draw from the same sequence. */
    CHECK_EQ(ftpool_timer_after(pool, 1000 * MS, 0, job_count, NULL,
                                &count, &tid), FTPOOL_OK);
    CHECK(tid > prev);
    CHECK_EQ(ftpool_submit(pool, job_count, &count, &id), FTPOOL_OK);
    CHECK(id > tid);
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    CHECK_EQ(atomic_load(&count), 1001);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
}

typedef struct drop_counts {
    atomic_int ran;
    atomic_int dropped;
} drop_counts;

static void
dc_run(void *arg)
{
    atomic_fetch_add(&((drop_counts *)arg)->ran, 1);
}

static void
dc_drop(void *arg)
{
    atomic_fetch_add(&((drop_counts *)arg)->dropped, 1);
}

void
test_cancel(void)
{
    ftpool_t *pool = make_pool(1);
    drop_counts dc[5];
    uint64_t ids[5], gate_id = 0;
    ftpool_stats st;
    gate g;
    int i;

    REQUIRE(pool != NULL);
    memset(dc, 0, sizeof(dc));
    gate_init(&g);
    CHECK_EQ(ftpool_submit(pool, gate_job, &g, &gate_id), FTPOOL_OK);
    for (i = 0; i < 5; i++) {
        CHECK_EQ(ftpool_submit_ex(pool, dc_run, dc_drop, &dc[i], 0, &ids[i]),
                 FTPOOL_OK);
    }
    /* Wait until the gate job runs: it can no longer be cancelled. */
    CHECK(wait_busy(pool, 1));
    CHECK_EQ(ftpool_cancel(pool, gate_id), FTPOOL_ENOTFOUND);
    CHECK_EQ(ftpool_cancel(pool, ids[2]), FTPOOL_OK);
    CHECK_EQ(ftpool_cancel(pool, ids[2]), FTPOOL_ENOTFOUND);
    CHECK_EQ(ftpool_cancel(pool, ids[4]), FTPOOL_OK);       /* the tail */
    CHECK_EQ(ftpool_cancel(pool, ids[0]), FTPOOL_OK);       /* the head */
    CHECK_EQ(ftpool_cancel(pool, 999999), FTPOOL_ENOTFOUND);
    CHECK_EQ(ftpool_pending(pool), 2);
    /* The queue stays usable after removing head and tail. */
    CHECK_EQ(ftpool_submit_ex(pool, dc_run, dc_drop, &dc[4], 0, NULL),
             FTPOOL_OK);
    gate_open(&g);
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    CHECK_EQ(atomic_load(&dc[0].ran), 0);
    CHECK_EQ(atomic_load(&dc[0].dropped), 1);
    CHECK_EQ(atomic_load(&dc[1].ran), 1);
    CHECK_EQ(atomic_load(&dc[1].dropped), 0);
    CHECK_EQ(atomic_load(&dc[2].ran), 0);
    CHECK_EQ(atomic_load(&dc[2].dropped), 1);
    CHECK_EQ(atomic_load(&dc[3].ran), 1);
    CHECK_EQ(atomic_load(&dc[4].ran), 1);
    CHECK_EQ(atomic_load(&dc[4].dropped), 1);
    ftpool_get_stats(pool, &st);
    CHECK_EQ(st.submitted, 7);
    CHECK_EQ(st.completed, 4);
    CHECK_EQ(st.dropped, 3);
    /* A finished job cannot be cancelled. */
    CHECK_EQ(ftpool_cancel(pool, ids[1]), FTPOOL_ENOTFOUND);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    gate_destroy(&g);
}

/* Drop callbacks record their order. */
static order drop_order;

static void
order_drop(void *arg)
{
    record(arg);
}

void
test_cancel_all(void)
{
    ftpool_t *pool = make_pool(1);
    order_job jobs[10];
    atomic_int ran = 0;
    gate g;
    int i;

    REQUIRE(pool != NULL);
    memset(&drop_order, 0, sizeof(drop_order));
    ftpool__mutex_init(&drop_order.lock);
    gate_init(&g);
    CHECK_EQ(ftpool_cancel_all(pool), 0);
    CHECK_EQ(ftpool_submit(pool, gate_job, &g, NULL), FTPOOL_OK);
    CHECK(wait_busy(pool, 1));
    for (i = 0; i < 10; i++) {
        jobs[i].o = &drop_order;
        jobs[i].value = i;
        CHECK_EQ(ftpool_submit_ex(pool, record, order_drop, &jobs[i], 0,
                                  NULL), FTPOOL_OK);
    }
    CHECK_EQ(ftpool_cancel_all(pool), 10);
    CHECK_EQ(ftpool_pending(pool), 0);
    CHECK_EQ(drop_order.n, 10);
    for (i = 0; i < 10 && i < drop_order.n; i++) {
        CHECK_EQ(drop_order.seen[i], i);     /* in queue order */
    }
    CHECK_EQ(ftpool_submit(pool, job_count, &ran, NULL), FTPOOL_OK);
    gate_open(&g);
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    CHECK_EQ(atomic_load(&ran), 1);
    CHECK_EQ(drop_order.n, 10);              /* dropped jobs never ran */
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    gate_destroy(&g);
    ftpool__mutex_destroy(&drop_order.lock);
}

static void
visit(void *arg, uint64_t id, void *ctx)
{
    order *o = ctx;

    o->seen[o->n++] = (int)(intptr_t)arg * 1000 + (int)id;
}

void
test_foreach_queued(void)
{
    ftpool_t *pool = make_pool(1);
    order o;
    uint64_t ids[3];
    atomic_int dummy = 0;
    gate g;

    REQUIRE(pool != NULL);
    memset(&o, 0, sizeof(o));
    gate_init(&g);
    CHECK_EQ(ftpool_submit(pool, gate_job, &g, NULL), FTPOOL_OK);
    CHECK(wait_busy(pool, 1));
    (void)dummy;
    CHECK_EQ(ftpool_submit_ex(pool, job_count, NULL, (void *)(intptr_t)1, 0,
                              &ids[0]), FTPOOL_OK);
    CHECK_EQ(ftpool_submit_ex(pool, job_count, NULL, (void *)(intptr_t)2, 0,
                              &ids[1]), FTPOOL_OK);
    CHECK_EQ(ftpool_submit_ex(pool, job_count, NULL, (void *)(intptr_t)3,
                              FTPOOL_FRONT, &ids[2]), FTPOOL_OK);
    CHECK_EQ(ftpool_foreach_queued(pool, visit, &o), 3);
    CHECK_EQ(o.n, 3);
    CHECK_EQ(o.seen[0], 3000 + (int)ids[2]);
    CHECK_EQ(o.seen[1], 1000 + (int)ids[0]);
    CHECK_EQ(o.seen[2], 2000 + (int)ids[1]);
    /* The jobs are not real counters: drop them. */
    CHECK_EQ(ftpool_cancel_all(pool), 3);
    gate_open(&g);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
    gate_destroy(&g);
}

void
test_close_open(void)
{
    ftpool_t *pool = make_pool(2);
    atomic_int count = 0;
    uint64_t id = 77;

    REQUIRE(pool != NULL);
    CHECK(!ftpool_is_closed(pool));
    ftpool_close(pool);
    CHECK(ftpool_is_closed(pool));
    CHECK_EQ(ftpool_submit(pool, job_count, &count, &id), FTPOOL_ESTOPPED);
    CHECK_EQ(id, 77);                   /* untouched on failure */
    CHECK_EQ(ftpool_timer_after(pool, 0, 0, job_count, NULL, &count, NULL),
             FTPOOL_ESTOPPED);
    ftpool_open(pool);
    CHECK(!ftpool_is_closed(pool));
    CHECK_EQ(ftpool_submit(pool, job_count, &count, &id), FTPOOL_OK);
    CHECK_EQ(ftpool_wait_idle(pool, -1), FTPOOL_OK);
    CHECK_EQ(atomic_load(&count), 1);
    CHECK_EQ(ftpool_destroy(pool), FTPOOL_OK);
}

/* A job that submits the next one, ten levels deep. */
typedef struct chain {
    ftpool_t *pool;
    atomic_int depth;
} chain;

static void
chain_job(void *arg)
{
    chain *c = arg;

    if (ftpool_current_pool() != c->pool) {
        return;         /* detected by the depth check */
    }
    if (atomic_fetch_add(&c->depth, 1) + 1 < 10) {
        ftpool_submit(c->pool, chain_job, c, NULL);
    }
}

void
test_submit_from_job(void)
{
    chain c;

    c.pool = make_pool(2);
    atomic_init(&c.depth, 0);
    REQUIRE(c.pool != NULL);
    CHECK_EQ(ftpool_submit(c.pool, chain_job, &c, NULL), FTPOOL_OK);
    CHECK(wait_counter(&c.depth, 10, 5000 * MS));
    CHECK_EQ(ftpool_wait_idle(c.pool, -1), FTPOOL_OK);
    CHECK_EQ(atomic_load(&c.depth), 10);
    CHECK_EQ(ftpool_destroy(c.pool), FTPOOL_OK);
}
