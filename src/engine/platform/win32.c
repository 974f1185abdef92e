/*
 * win32.c - platform.h on the Win32 API (Windows Vista and later: slim
 * reader/writer locks and condition variables).
 */
#include "platform.h"

#include <process.h>
#include <stdatomic.h>

/* MSVC spells a thread-local variable its own way; GCC and Clang (MinGW-w64)
 * take the C11 keyword. */
#if defined(_MSC_VER)
#  define FTPOOL__THREAD_LOCAL __declspec(thread)
#else
#  define FTPOOL__THREAD_LOCAL _Thread_local
#endif

/* _beginthreadex() rather than CreateThread(): the thread runs application
 * code that may use the C runtime, which _beginthreadex() sets up for it. */
static unsigned __stdcall
thread_main(void *arg)
{
    ftpool__thread *t = arg;
    t->fn(t->arg);
    return 0;
}

int
ftpool__thread_start(ftpool__thread *t)
{
    uintptr_t h;

    /* Nothing to block: Windows has no per-thread signal mask, and the C
     * runtime runs a SIGINT or SIGBREAK handler on a thread that the system
     * creates for the console event, never on an engine thread. */
    h = _beginthreadex(NULL, 0, thread_main, t, 0, NULL);
    if (h == 0) {
        return -1;
    }
    t->handle = (HANDLE)h;
    return 0;
}

void
ftpool__thread_join(ftpool__thread *t)
{
    WaitForSingleObject(t->handle, INFINITE);
    CloseHandle(t->handle);
}

/* An SRW lock needs no resources: init cannot fail and destroy has nothing
 * to release.  It already spins briefly before sleeping, which is what the
 * engine's short critical sections want (see posix.c). */
int
ftpool__mutex_init(ftpool__mutex *m)
{
    InitializeSRWLock(m);
    return 0;
}

void
ftpool__mutex_destroy(ftpool__mutex *m)
{
    (void)m;
}

void
ftpool__mutex_lock(ftpool__mutex *m)
{
    AcquireSRWLockExclusive(m);
}

void
ftpool__mutex_unlock(ftpool__mutex *m)
{
    ReleaseSRWLockExclusive(m);
}

int
ftpool__cond_init(ftpool__cond *c)
{
    InitializeConditionVariable(c);
    return 0;
}

void
ftpool__cond_destroy(ftpool__cond *c)
{
    (void)c;
}

void
ftpool__cond_signal(ftpool__cond *c)
{
    WakeConditionVariable(c);
}

void
ftpool__cond_broadcast(ftpool__cond *c)
{
    WakeAllConditionVariable(c);
}

void
ftpool__cond_wait(ftpool__cond *c, ftpool__mutex *m)
{
    SleepConditionVariableSRW(c, m, INFINITE, 0);
}

int
ftpool__cond_timedwait(ftpool__cond *c, ftpool__mutex *m, int64_t deadline_ns)
{
    int64_t now = ftpool__now_ns();
    int64_t left;
    uint64_t ms;

    /* Compared before subtracting: a deadline far in the past would make
     * deadline_ns - now overflow. */
    if (deadline_ns <= now) {
        return -1;
    }
    left = deadline_ns - now;
    /* The system waits in whole milliseconds, measured on its own clock:
     * round up so that the wait is never shorter than asked. */
    ms = (uint64_t)(left / 1000000) + (left % 1000000 != 0);
    /* INFINITE would never end; a longer wait is cut to the longest finite
     * one, and the caller waits again as after a spurious wakeup. */
    if (ms >= INFINITE) {
        ms = INFINITE - 1;
    }
    if (SleepConditionVariableSRW(c, m, (DWORD)ms, 0)) {
        return 0;
    }
    /* A timeout of the system's timer can end a little before the same
     * span has passed on QueryPerformanceCounter(), the clock of
     * deadline_ns: report it only once the deadline has truly passed. */
    return ftpool__now_ns() >= deadline_ns ? -1 : 0;
}

int64_t
ftpool__now_ns(void)
{
    /* The counter's frequency is fixed at boot: read it once.  Relaxed is
     * enough, every thread that reads it finds the same value. */
    static atomic_llong freq;
    long long f = atomic_load_explicit(&freq, memory_order_relaxed);
    LARGE_INTEGER count;

    if (f == 0) {
        LARGE_INTEGER q;

        QueryPerformanceFrequency(&q);
        f = q.QuadPart;
        atomic_store_explicit(&freq, f, memory_order_relaxed);
    }
    QueryPerformanceCounter(&count);
    /* Whole seconds and the rest apart: count * 1e9 would overflow after
     * about 15 minutes of uptime at a 10 MHz counter. */
    return (int64_t)(count.QuadPart / f) * 1000000000
           + (int64_t)(count.QuadPart % f) * 1000000000 / f;
}

static FTPOOL__THREAD_LOCAL void *tls_value;

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
    SwitchToThread();
}

/* Always symmetric here: both sides are full fences. */
_Atomic int ftpool__fence_asymmetric;
#if FTPOOL__TSAN
_Atomic int ftpool__fence_dummy;
#endif

void
ftpool__fence_init(void)
{
}

void
ftpool__fence_heavy(void)
{
    ftpool__fence_full();
}
