/*
 * platform.h - the small operating-system interface the engine is built on.
 *
 * Threads, a mutex, a condition variable whose timed wait uses the monotonic
 * clock, the monotonic clock itself, one thread-local pointer, a yield and
 * an asymmetric pair of fences.  Atomics come from <stdatomic.h>.  posix.c
 * implements this file with pthreads; a win32.c implements the same
 * functions beside it.
 * Nothing outside this directory includes an operating-system header.
 */
#ifndef FTPOOL_PLATFORM_H
#define FTPOOL_PLATFORM_H

#include <stdatomic.h>
#include <stdint.h>

#if defined(_WIN32)
#  ifndef WIN32_LEAN_AND_MEAN
#    define WIN32_LEAN_AND_MEAN
#  endif
#  include <windows.h>
typedef HANDLE ftpool__thread_handle;
typedef SRWLOCK ftpool__mutex;
typedef CONDITION_VARIABLE ftpool__cond;
#else
#  include <pthread.h>
typedef pthread_t ftpool__thread_handle;
typedef pthread_mutex_t ftpool__mutex;
typedef pthread_cond_t ftpool__cond;
#endif

/* A thread: set fn and arg, then call ftpool__thread_start().  The struct
 * must stay valid until ftpool__thread_join() has returned, because the new
 * thread reads fn and arg from it. */
typedef struct ftpool__thread {
    ftpool__thread_handle handle;
    void (*fn)(void *arg);
    void *arg;
} ftpool__thread;

/* Starts a thread running t->fn(t->arg), with every signal blocked so that
 * signals keep going to the application's own threads.  0 or -1. */
int ftpool__thread_start(ftpool__thread *t);
/* Waits for the thread to end and releases it. */
void ftpool__thread_join(ftpool__thread *t);

/* Both init functions return 0, or -1 when the system is out of resources. */
int ftpool__mutex_init(ftpool__mutex *m);
void ftpool__mutex_destroy(ftpool__mutex *m);
void ftpool__mutex_lock(ftpool__mutex *m);
void ftpool__mutex_unlock(ftpool__mutex *m);

int ftpool__cond_init(ftpool__cond *c);
void ftpool__cond_destroy(ftpool__cond *c);
void ftpool__cond_signal(ftpool__cond *c);
void ftpool__cond_broadcast(ftpool__cond *c);
void ftpool__cond_wait(ftpool__cond *c, ftpool__mutex *m);
/* Waits until signalled or until the monotonic clock reaches deadline_ns.
 * Returns 0, or -1 once the deadline has passed.  Like every condition
 * wait it may also return early for no reason: callers loop. */
int ftpool__cond_timedwait(ftpool__cond *c, ftpool__mutex *m,
                           int64_t deadline_ns);

/* Tells the CPU that the caller is in a spin-wait loop: it saves power and
 * lets the other hyper-thread of the core run (x86 PAUSE, Arm YIELD).  A
 * no-op elsewhere.  Inline because it sits in the engine's spin loop. */
static inline void
ftpool__cpu_relax(void)
{
#if defined(_MSC_VER)
    YieldProcessor();
#elif defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_ia32_pause();
#elif defined(__GNUC__) && defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/* The monotonic clock in nanoseconds (the clock of ftpool_now_ns). */
int64_t ftpool__now_ns(void);

/* One thread-local pointer: the pool whose worker the calling thread is. */
void *ftpool__tls_get(void);
void ftpool__tls_set(void *value);

/* Gives the rest of the time slice to another thread. */
void ftpool__thread_yield(void);

/* An asymmetric pair of fences, for a handshake between a frequent path
 * and a rare one in which each side stores, then loads what the other
 * stores (either side must see the other's store).  The frequent side calls
 * ftpool__fence_light() between its store and its load, the rare side
 * ftpool__fence_heavy(): together they order both sides as two
 * sequentially consistent fences would.  Where the system can make every
 * thread of the process pass a full barrier at once (Linux membarrier),
 * the light fence only stops the compiler and the heavy one is a system
 * call; elsewhere both are full fences.  ftpool__fence_init() chooses, once
 * per process, before the first use (ftpool_create() calls it). */
extern _Atomic int ftpool__fence_asymmetric;
void ftpool__fence_init(void);
void ftpool__fence_heavy(void);

/* ThreadSanitizer does not model fences (GCC warns about them): under it,
 * the full fence is a sequentially consistent read-modify-write of one
 * shared variable, which orders two threads' store-then-load the same way
 * and which it understands, and the fences are never asymmetric. */
#if defined(__SANITIZE_THREAD__)
#  define FTPOOL__TSAN 1
#elif defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define FTPOOL__TSAN 1
#  endif
#endif
#ifndef FTPOOL__TSAN
#  define FTPOOL__TSAN 0
#endif

#if FTPOOL__TSAN
extern _Atomic int ftpool__fence_dummy;
#endif

/* A full (sequentially consistent) fence. */
static inline void
ftpool__fence_full(void)
{
#if FTPOOL__TSAN
    atomic_fetch_add(&ftpool__fence_dummy, 0);
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

static inline void
ftpool__fence_light(void)
{
    if (atomic_load_explicit(&ftpool__fence_asymmetric,
                             memory_order_relaxed)) {
        atomic_signal_fence(memory_order_seq_cst);
    }
    else {
        ftpool__fence_full();
    }
}

#endif /* FTPOOL_PLATFORM_H */
