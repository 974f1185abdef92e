/*
 * main.c - runs the engine tests: engine_tests [NAME-SUBSTRING]
 */
#include <stdlib.h>
#include <string.h>
#if !defined(_WIN32)
#  include <unistd.h>
#endif

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

    setvbuf(stdout, NULL, _IOLBF, 0);
    for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        int64_t t0;
        int attempt;

        if (filter != NULL && strstr(tests[i].name, filter) == NULL) {
            continue;
        }
#if !defined(_WIN32)
        /* A hung test kills the run (SIGALRM) instead of blocking it. */
        alarm(harness_quick() ? 600 : 120);
#endif
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
#if !defined(_WIN32)
    alarm(0);
#endif
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
