/*
 * main.c - runs the engine tests: engine_tests [NAME-SUBSTRING]
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

int harness_failures;
int harness_misses;

void
harness_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "    %s:%d: CHECK failed: %s\n", file, line, what);
    harness_failures++;
}

void
harness_late(const char *file, int line, const char *what)
{
    fprintf(stderr, "    %s:%d: late: %s\n", file, line, what);
    harness_misses++;
}

void
harness_fail_eq(const char *file, int line, const char *a, const char *b,
                long long va, long long vb)
{
    fprintf(stderr, "    %s:%d: CHECK failed: %s == %s (%lld != %lld)\n",
            file, line, a, b, va, vb);
    harness_failures++;
}

int
harness_quick(void)
{
    const char *q = getenv("FTPOOL_TEST_QUICK");

    return q != NULL && strcmp(q, "1") == 0;
}

int64_t
harness_slack_ns(void)
{
    return harness_quick() ? 300 * MS : 30 * MS;
}

void
harness_sleep_ns(int64_t ns)
{
    /* A timed wait on a condition nobody signals: portable through the
     * platform layer. */
    ftpool__mutex m;
    ftpool__cond c;
    int64_t deadline = ftpool__now_ns() + ns;

    ftpool__mutex_init(&m);
    ftpool__cond_init(&c);
    ftpool__mutex_lock(&m);
    while (ftpool__now_ns() < deadline) {
        ftpool__cond_timedwait(&c, &m, deadline);
    }
    ftpool__mutex_unlock(&m);
    ftpool__cond_destroy(&c);
    ftpool__mutex_destroy(&m);
}

void
gate_init(gate *g)
{
    ftpool__mutex_init(&g->lock);
    ftpool__cond_init(&g->cond);
    g->open = 0;
}

void
gate_destroy(gate *g)
{
    ftpool__cond_destroy(&g->cond);
    ftpool__mutex_destroy(&g->lock);
}

void
gate_open(gate *g)
{
    ftpool__mutex_lock(&g->lock);
    g->open = 1;
    ftpool__cond_broadcast(&g->cond);
    ftpool__mutex_unlock(&g->lock);
}

void
gate_wait(gate *g)
{
    ftpool__mutex_lock(&g->lock);
    while (!g->open) {
        ftpool__cond_wait(&g->cond, &g->lock);
    }
    ftpool__mutex_unlock(&g->lock);
}

int
wait_counter(atomic_int *counter, int value, int64_t timeout_ns)
{
    int64_t deadline = ftpool__now_ns() + timeout_ns;

    while (atomic_load(counter) < value) {
        if (ftpool__now_ns() > deadline) {
            return 0;
        }
        harness_sleep_ns(MS / 2);
    }
    return 1;
}

int
wait_busy(ftpool_t *pool, unsigned n)
{
    int64_t deadline = ftpool__now_ns() + 5000 * MS;

    while (ftpool_busy(pool) < n) {
        if (ftpool__now_ns() > deadline) {
            return 0;
        }
        harness_sleep_ns(MS / 2);
    }
    return 1;
}

void
thread_start(harness_thread *th, void (*fn)(void *), void *arg)
{
    th->t.fn = fn;
    th->t.arg = arg;
    if (ftpool__thread_start(&th->t) != 0) {
        fprintf(stderr, "cannot start a thread\n");
        exit(2);
    }
}

void
thread_join(harness_thread *th)
{
    ftpool__thread_join(&th->t);
}

void
job_count(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

/* A hung test ends the run with its name instead of blocking it: a thread
 * that waits for the running test's deadline.  Built on the platform layer,
 * it works wherever the engine does. */
static struct {
    ftpool__mutex lock;         /* protects the fields below */
    ftpool__cond cond;          /* signalled on a new deadline and on stop */
    const char *test;           /* the running test, NULL for none */
    int64_t deadline;           /* of the running test */
    int stop;
    harness_thread thread;
} watchdog;

static void
watchdog_main(void *arg)
{
    (void)arg;
    ftpool__mutex_lock(&watchdog.lock);
    while (!watchdog.stop) {
        if (watchdog.test == NULL) {
            /* Woken by watchdog_arm() or watchdog_stop(). */
            ftpool__cond_wait(&watchdog.cond, &watchdog.lock);
        }
        else if (ftpool__now_ns() >= watchdog.deadline) {
            fflush(stdout);
            fprintf(stderr, "%s: still running after its time limit, "
                    "stopping\n", watchdog.test);
            _Exit(2);
        }
        else {
            /* Woken by a new deadline, by stop or at the deadline. */
            ftpool__cond_timedwait(&watchdog.cond, &watchdog.lock,
                                   watchdog.deadline);
        }
    }
    ftpool__mutex_unlock(&watchdog.lock);
}

static void
watchdog_start(void)
{
    if (ftpool__mutex_init(&watchdog.lock) != 0
            || ftpool__cond_init(&watchdog.cond) != 0) {
        fprintf(stderr, "cannot create the watchdog\n");
        exit(2);
    }
    thread_start(&watchdog.thread, watchdog_main, NULL);
}

static void
watchdog_arm(const char *test, int64_t limit_ns)
{
    ftpool__mutex_lock(&watchdog.lock);
    watchdog.test = test;
    watchdog.deadline = ftpool__now_ns() + limit_ns;
    ftpool__cond_signal(&watchdog.cond);
    ftpool__mutex_unlock(&watchdog.lock);
}

static void
watchdog_stop(void)
{
    ftpool__mutex_lock(&watchdog.lock);
    watchdog.stop = 1;
    ftpool__cond_signal(&watchdog.cond);
    ftpool__mutex_unlock(&watchdog.lock);
    thread_join(&watchdog.thread);
    ftpool__cond_destroy(&watchdog.cond);
    ftpool__mutex_destroy(&watchdog.lock);
}

static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
#define FTPOOL_LIST_TEST(name) {#name, test_##name},
    FTPOOL_TESTS(FTPOOL_LIST_TEST)
};

int
main(int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0;
    size_t i;

    /* Each line out as soon as written, in order with the failures on
     * stderr.  Unbuffered rather than line-buffered: Windows has no line
     * buffering (it buffers fully) and rejects the size 0. */
    setvbuf(stdout, NULL, _IONBF, 0);
    watchdog_start();
    for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        int64_t t0;
        int attempt;

        if (filter != NULL && strstr(tests[i].name, filter) == NULL) {
            continue;
        }
        watchdog_arm(tests[i].name,
                     (harness_quick() ? 600 : 120) * 1000 * MS);
        harness_failures = 0;
        t0 = ftpool__now_ns();
        for (attempt = 1; attempt <= 3; attempt++) {
            harness_misses = 0;
            tests[i].fn();
            if (harness_failures > 0 || harness_misses == 0) {
                break;
            }
            fprintf(stderr, "    (attempt %d of %s was late; the machine "
                    "may be loaded)\n", attempt, tests[i].name);
        }
        if (harness_misses > 0) {
            harness_failures += harness_misses;
        }
        if (harness_failures == 0) {
            passed++;
            printf("ok   %-28s %7.1f ms\n", tests[i].name,
                   (double)(ftpool__now_ns() - t0) / 1e6);
        }
        else {
            failed++;
            printf("FAIL %-28s (%d checks failed)\n", tests[i].name,
                   harness_failures);
        }
    }
    watchdog_stop();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
