/*
 * harness.h - a tiny test harness for the engine tests.
 *
 * Every test is a `void test_NAME(void)` listed in FTPOOL_TESTS below;
 * main.c runs them in order (or those whose name contains argv[1]) and ends
 * with the line "N passed, N failed".  CHECK records a failure and goes on;
 * REQUIRE records it and returns from the test.
 *
 * The tests use the engine's platform layer for threads, so that they run
 * wherever the engine does.
 */
#ifndef FTPOOL_TEST_HARNESS_H
#define FTPOOL_TEST_HARNESS_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "ftpool.h"
#include "platform/platform.h"

#define FTPOOL_TESTS(X)             \
    X(strerror)                     \
    X(create_args)                  \
    X(fifo)                         \
    X(front)                        \
    X(ids)                          \
    X(cancel)                       \
    X(cancel_all)                   \
    X(foreach_queued)               \
    X(close_open)                   \
    X(submit_from_job)              \
    X(timer_once)                   \
    X(timer_periodic)               \
    X(timer_cancel_before_run)      \
    X(timer_equal_deadlines)        \
    X(timer_runs_in_deadline_order) \
    X(timer_cancel_between_runs)    \
    X(timer_not_queued_twice)       \
    X(timer_cancel_queued_run)      \
    X(timer_shutdown_flag)          \
    X(timer_closed)                 \
    X(shutdown_finish)              \
    X(shutdown_soon)                \
    X(shutdown_drop)                \
    X(shutdown_from_stream)         \
    X(restart_after_shutdown)       \
    X(resume_after_soon)            \
    X(resume_while_workers_leave)   \
    X(job_returning)                \
    X(wait_since_mark)              \
    X(join_timeout)                 \
    X(wait_idle_timeout)            \
    X(join_with_timer)              \
    X(busy_from_worker)             \
    X(destroy_drops)                \
    X(counters)                     \
    X(counters_concurrent)          \
    X(max_workers)                  \
    X(starvation)                   \
    X(starvation_after_idle)        \
    X(retire_hands_over)            \
    X(spawn_hook)                   \
    X(spawn_failure)                \
    X(worker_run_unrequested)       \
    X(sem_basic)                    \
    X(sem_timeout)                  \
    X(sem_release_wakes)            \
    X(sem_contention)               \
    X(stress)                       \
    X(alloc_failure)                \
    X(node_reuse)                   \
    X(stream)                       \
    X(cancel_behind_worker)         \
    X(cancel_in_deep_queue)         \
    X(submitters_exactly_once)      \
    X(submitters_fifo)              \
    X(wakeup_handshake)             \
    X(cancel_while_submitting)      \
    X(timers_among_submitters)

#define FTPOOL_DECLARE_TEST(name) void test_##name(void);
FTPOOL_TESTS(FTPOOL_DECLARE_TEST)

/* Failures recorded by the running test. */
extern int harness_failures;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            harness_fail(__FILE__, __LINE__, #cond);                       \
        }                                                                  \
    } while (0)

#define REQUIRE(cond)                                                      \
    do {                                                                   \
        if (!(cond)) {                                                     \
            harness_fail(__FILE__, __LINE__, #cond);                       \
            return;                                                        \
        }                                                                  \
    } while (0)

/* An upper bound on how late something happened.  Lateness on a loaded
 * machine is scheduling noise, not an engine fault, so a test whose only
 * misses are CHECK_TIMELY ones is run again (3 attempts in all) and fails
 * if it is late every time.  Real faults (polling, drift) are late on every
 * attempt.  Everything else, including "never early", is a plain CHECK. */
#define CHECK_TIMELY(cond)                                                 \
    do {                                                                   \
        if (!(cond)) {                                                     \
            harness_late(__FILE__, __LINE__, #cond);                       \
        }                                                                  \
    } while (0)

/* Compares two integers and prints both values on failure. */
#define CHECK_EQ(a, b)                                                     \
    do {                                                                   \
        long long va_ = (long long)(a), vb_ = (long long)(b);              \
        if (va_ != vb_) {                                                  \
            harness_fail_eq(__FILE__, __LINE__, #a, #b, va_, vb_);         \
        }                                                                  \
    } while (0)

void harness_fail(const char *file, int line, const char *what);
void harness_late(const char *file, int line, const char *what);
extern int harness_misses;      /* CHECK_TIMELY misses of this attempt */
void harness_fail_eq(const char *file, int line, const char *a,
                     const char *b, long long va, long long vb);

/* 1 when FTPOOL_TEST_QUICK=1 (valgrind): smaller loops, looser timing. */
int harness_quick(void);

/* How late a timed event may be, in ns: the engine never polls, so this is
 * only scheduling delay on a loaded machine (larger under valgrind). */
int64_t harness_slack_ns(void);

#define MS ((int64_t)1000000)

void harness_sleep_ns(int64_t ns);

/* A gate: threads wait until it is opened. */
typedef struct gate {
    ftpool__mutex lock;
    ftpool__cond cond;
    int open;
} gate;

void gate_init(gate *g);
void gate_destroy(gate *g);
void gate_open(gate *g);
void gate_wait(gate *g);            /* a job function: arg is a gate * */

/* Waits until *counter >= value, for at most timeout_ns; returns 1 if it
 * got there. */
int wait_counter(atomic_int *counter, int value, int64_t timeout_ns);

/* Waits until at least n jobs of the pool are running; returns 1 if so
 * within 5 s. */
int wait_busy(ftpool_t *pool, unsigned n);

/* Starts and joins plain threads. */
typedef struct harness_thread {
    ftpool__thread t;
} harness_thread;

void thread_start(harness_thread *th, void (*fn)(void *), void *arg);
void thread_join(harness_thread *th);

/* A job that increments the atomic_int at arg. */
void job_count(void *arg);

#endif /* FTPOOL_TEST_HARNESS_H */
