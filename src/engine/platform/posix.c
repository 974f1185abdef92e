/*
 * posix.c - platform.h on POSIX threads (Linux, macOS, the BSDs).
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
/* For PTHREAD_MUTEX_ADAPTIVE_NP (see ftpool__mutex_init) and syscall(). */
#  define _GNU_SOURCE
#endif
#include "platform.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <time.h>
#if defined(__linux__)
#  include <sys/syscall.h>
#  include <unistd.h>
#endif

/* macOS has no pthread_condattr_setclock(); its timed wait is measured on
 * the real-time clock, so deadlines are converted there (see below). */
#if defined(__APPLE__)
#  define FTPOOL__COND_REALTIME 1
#else
#  define FTPOOL__COND_REALTIME 0
#endif

static void *
thread_main(void *arg)
{
    ftpool__thread *t = arg;
    t->fn(t->arg);
    return NULL;
}

int
ftpool__thread_start(ftpool__thread *t)
{
    sigset_t all, old;
    int rc;

    /* The new thread inherits the signal mask of its creator: block
     * everything around pthread_create() so that no signal handler of the
     * application ever runs on an engine thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&t->handle, NULL, thread_main, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc == 0 ? 0 : -1;
}

void
ftpool__thread_join(ftpool__thread *t)
{
    pthread_join(t->handle, NULL);
}

int
ftpool__mutex_init(ftpool__mutex *m)
{
#if defined(PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP)
    /* The engine holds its locks for a few dozen instructions: spinning
     * briefly before sleeping saves a system call on most contended
     * acquisitions (glibc's adaptive mutex bounds the spin). */
    pthread_mutexattr_t attr;
    int rc;

    if (pthread_mutexattr_init(&attr) != 0) {
        return -1;
    }
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    rc = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    return rc == 0 ? 0 : -1;
#else
    return pthread_mutex_init(m, NULL) == 0 ? 0 : -1;
#endif
}

void
ftpool__mutex_destroy(ftpool__mutex *m)
{
    pthread_mutex_destroy(m);
}

void
ftpool__mutex_lock(ftpool__mutex *m)
{
    pthread_mutex_lock(m);
}

void
ftpool__mutex_unlock(ftpool__mutex *m)
{
    pthread_mutex_unlock(m);
}

int
ftpool__cond_init(ftpool__cond *c)
{
#if FTPOOL__COND_REALTIME
    return pthread_cond_init(c, NULL) == 0 ? 0 : -1;
#else
    /* Timed waits must not jump when someone sets the wall clock. */
    pthread_condattr_t attr;
    int rc;

    if (pthread_condattr_init(&attr) != 0) {
        return -1;
    }
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0) {
        rc = pthread_cond_init(c, &attr);
    }
    pthread_condattr_destroy(&attr);
    return rc == 0 ? 0 : -1;
#endif
}

void
ftpool__cond_destroy(ftpool__cond *c)
{
    pthread_cond_destroy(c);
}

void
ftpool__cond_signal(ftpool__cond *c)
{
    pthread_cond_signal(c);
}

void
ftpool__cond_broadcast(ftpool__cond *c)
{
    pthread_cond_broadcast(c);
}

void
ftpool__cond_wait(ftpool__cond *c, ftpool__mutex *m)
{
    pthread_cond_wait(c, m);
}

int
ftpool__cond_timedwait(ftpool__cond *c, ftpool__mutex *m, int64_t deadline_ns)
{
    struct timespec ts;
    int rc;

#if FTPOOL__COND_REALTIME
    struct timespec real;
    int64_t left = deadline_ns - ftpool__now_ns();

    clock_gettime(CLOCK_REALTIME, &real);
    deadline_ns = (int64_t)real.tv_sec * 1000000000 + real.tv_nsec
                  + (left > 0 ? left : 0);
#endif
    if (deadline_ns < 0) {
        deadline_ns = 0;
    }
    ts.tv_sec = (time_t)(deadline_ns / 1000000000);
    ts.tv_nsec = (long)(deadline_ns % 1000000000);
    rc = pthread_cond_timedwait(c, m, &ts);
    return rc == ETIMEDOUT ? -1 : 0;
}

int64_t
ftpool__now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static _Thread_local void *tls_value;

void *
ftpool__tls_get(void)
{
    return tls_value;
}

void
ftpool__tls_set(void *value)
{
    tls_value = value;
}

void
ftpool__thread_yield(void)
{
    sched_yield();
}

/* Linux's membarrier(2): a private expedited barrier interrupts every CPU
 * that runs a thread of this process (Linux 4.14 and later, after the
 * process has registered for it once). */
#if defined(__linux__) && defined(SYS_membarrier) && !FTPOOL__TSAN
#  define FTPOOL__MEMBARRIER 1
#  define FTPOOL__MB_PRIVATE_EXPEDITED (1 << 3)
#  define FTPOOL__MB_REGISTER_PRIVATE_EXPEDITED (1 << 4)
#else
#  define FTPOOL__MEMBARRIER 0
#endif

_Atomic int ftpool__fence_asymmetric;
#if FTPOOL__TSAN
_Atomic int ftpool__fence_dummy;
#endif

void
ftpool__fence_init(void)
{
#if FTPOOL__MEMBARRIER
    /* 0: not tried, 1: being tried, 2: decided.  Every caller returns only
     * once the choice is made, so that both sides of every handshake (on a
     * pool created after this returned) see the same choice. */
    static atomic_int state;
    int expected = 0;

    if (atomic_compare_exchange_strong(&state, &expected, 1)) {
        if (syscall(SYS_membarrier, FTPOOL__MB_REGISTER_PRIVATE_EXPEDITED,
                    0, 0) == 0) {
            atomic_store(&ftpool__fence_asymmetric, 1);
        }
        atomic_store(&state, 2);
    }
    while (atomic_load(&state) != 2) {
        sched_yield();
    }
#endif
}

void
ftpool__fence_heavy(void)
{
    ftpool__fence_full();
#if FTPOOL__MEMBARRIER
    if (atomic_load_explicit(&ftpool__fence_asymmetric,
                             memory_order_relaxed)) {
        /* The light side relies on it: once registered, the call fails
         * only for want of memory for a moment, so try again. */
        while (syscall(SYS_membarrier, FTPOOL__MB_PRIVATE_EXPEDITED, 0, 0)
               != 0) {
            sched_yield();
        }
    }
#endif
}
