/*
 * internal.h - names shared between the engine's source files.
 *
 * Everything here starts with `ftpool__` and is not part of the public API
 * (include/ftpool.h).  The pool structure lives here because pool.c (queue,
 * workers) and timer.c (timers) both work on it under the same lock.
 */
#ifndef FTPOOL_INTERNAL_H
#define FTPOOL_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "ftpool.h"
#include "platform/platform.h"

/* ------------------------------------------------------------------------ */
/* Memory (alloc.c)                                                         */
/* ------------------------------------------------------------------------ */

/* A copy of the process-wide allocator as it is right now. */
void ftpool__default_allocator(ftpool_allocator *out);

static inline void *
ftpool__alloc(const ftpool_allocator *a, size_t size)
{
    return a->alloc(size, a->ctx);
}

static inline void
ftpool__free(const ftpool_allocator *a, void *ptr)
{
    if (ptr != NULL) {
        a->free(ptr, a->ctx);
    }
}

/* ------------------------------------------------------------------------ */
/* The pool                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct ftpool__timer ftpool__timer;

/* A queued job.  Plain jobs use nodes recycled through the pool's free list;
 * a timer's run uses the node embedded in its timer, which is enough because
 * a timer never has two runs queued at once. */
typedef struct ftpool__job {
    struct ftpool__job *next;
    ftpool_fn fn;
    ftpool_fn drop;         /* NULL for timer runs: the timer drops arg */
    void *arg;
    uint64_t id;
    ftpool__timer *timer;   /* the timer this run belongs to, or NULL */
} ftpool__job;

struct ftpool__timer {
    ftpool__job run;        /* fn, arg and id of the timer */
    int64_t due;            /* next due time (monotonic ns) while armed */
    int64_t interval;       /* > 0: periodic */
    ftpool_fn drop;
    size_t heap_pos;        /* index in the heap, or FTPOOL__UNARMED */
    /* One reference for being armed plus one per run queued or running;
     * the timer is finished (drop called, memory freed) at zero. */
    unsigned refs;
    unsigned char queued;   /* its run node sits in the queue */
    unsigned char consumed; /* a one-shot run has called fn: fn owns arg */
    ftpool__timer *next_done; /* links timers being finished */
};

#define FTPOOL__UNARMED ((size_t)-1)

/* A worker asleep in the pool's LIFO stack of sleepers.  Each sleeper has
 * its own condition variable, so waking one worker wakes exactly that one. */
typedef struct ftpool__sleeper {
    ftpool__cond cond;
    struct ftpool__sleeper *next;
    int woken;              /* set (under the lock) by whoever wakes it */
} ftpool__sleeper;

/* A native worker thread, kept after it exits until someone joins it. */
typedef struct ftpool__native {
    ftpool__thread thread;
    ftpool_t *pool;
    struct ftpool__native *next;
} ftpool__native;

/* Shutdown states (pool->stopping). */
enum {
    FTPOOL__RUNNING = -1
    /* otherwise one of FTPOOL_SHUTDOWN_FINISH/SOON/DROP */
};

struct ftpool {
    /* Protects every field below that is not _Atomic, and is the only
     * writer lock of the _Atomic counters (which are also read without
     * it).  Held only for short list and counter updates: never while user
     * code (jobs, drop callbacks, hooks, spawn, allocator) runs. */
    ftpool__mutex lock;

    /* Read-only after ftpool_create(). */
    ftpool_allocator alloc;
    ftpool_spawn_fn spawn;
    void *spawn_arg;
    ftpool_hook before_wait, after_wait, worker_start, worker_end;
    void *hook_arg;

    /* The queue: singly linked, head is the next job to run. */
    ftpool__job *head, *tail;
    ftpool__job *free_nodes;    /* recycled plain-job nodes */
    size_t nfree;
    uint64_t next_id;

    /* Workers.  active: alive and not yet decided to exit (what the maximum
     * limits).  starting: reserved, not yet looking at the queue.  waking:
     * taken off the sleeper stack, not yet looking at the queue.  A job is
     * covered when pending <= starting + waking; a new worker is started
     * only for an uncovered job. */
    ftpool__sleeper *sleepers;
    unsigned nactive, nstarting, nwaking;
    unsigned nrequests;         /* spawn-hook requests not yet claimed */
    /* FTPOOL__RUNNING, or the mode of the last shutdown: it lasts until a
     * submission finds no worker alive. */
    int stopping;
    int destroying;
    ftpool__native *zombies;    /* exited native threads to join */

    /* Counters readable without the lock (ftpool_workers() etc.). */
    _Atomic unsigned max_workers;
    _Atomic unsigned nworkers;  /* alive, including starting and exiting */
    _Atomic unsigned nbusy;
    _Atomic size_t npending;
    _Atomic int closed;

    uint64_t submitted, completed, dropped;

    /* ftpool_join()/ftpool_wait_idle() sleep on state_cond; whoever makes
     * the last worker leave or the pool idle broadcasts it.  Each of these
     * states also bumps a generation, because it may last only an instant:
     * new work can arrive before a woken waiter gets the lock. */
    ftpool__cond state_cond;
    unsigned state_waiters;
    uint64_t no_workers_gen;
    uint64_t idle_gen;

    /* Timers: a min-heap on (due, id).  The timer thread sleeps on
     * timer_cond until the earliest due time; arming an earlier timer and
     * ftpool_destroy() signal it. */
    ftpool__timer **heap;
    size_t heap_len, heap_cap;
    size_t ntimers;             /* timers not finished */
    ftpool__cond timer_cond;
    int timer_thread_state;     /* 0 none, 1 starting, 2 running */
    ftpool__thread timer_thread;
};

/* Counters are written only with the lock held, so a relaxed load and store
 * are enough (no read-modify-write instruction on the hot path). */
static inline void
ftpool__add_u(_Atomic unsigned *c, int d)
{
    unsigned v = atomic_load_explicit(c, memory_order_relaxed);
    atomic_store_explicit(c, v + (unsigned)d, memory_order_relaxed);
}

static inline void
ftpool__add_z(_Atomic size_t *c, ptrdiff_t d)
{
    size_t v = atomic_load_explicit(c, memory_order_relaxed);
    atomic_store_explicit(c, v + (size_t)d, memory_order_relaxed);
}

/* pool.c, for timer.c.  All *_locked functions need pool->lock. */

/* Queues a chain of jobs at the front, keeping the chain's order, and wakes
 * or reserves workers for them.  Returns how many workers to spawn (with
 * ftpool__spawn_workers(), after unlocking). */
unsigned ftpool__push_front_locked(ftpool_t *pool, ftpool__job *first,
                                   ftpool__job *last, size_t n);
/* Wakes or reserves workers for every uncovered queued job.  Reserves only
 * while running, or during a FINISH shutdown if finishing is set.  Returns
 * how many workers to spawn. */
unsigned ftpool__cover_locked(ftpool_t *pool, int finishing);
/* Starts n reserved workers; the lock must not be held.  FTPOOL_OK or
 * FTPOOL_ESPAWN. */
int ftpool__spawn_workers(ftpool_t *pool, unsigned n);
/* Wakes the state_cond waiters if the pool just became idle. */
void ftpool__check_idle_locked(ftpool_t *pool);

/* timer.c, for pool.c. */

/* A run of t was dropped or has finished: releases its reference.  Returns
 * t if it is now finished and must go to ftpool__timer_finish(). */
ftpool__timer *ftpool__timer_run_done_locked(ftpool_t *pool, ftpool__timer *t,
                                             int ran);
/* Calls drop if due and frees a finished timer; the lock must not be held.
 * Follows the next_done links. */
void ftpool__timer_finish(ftpool_t *pool, ftpool__timer *list);
/* Disarms every timer; returns the finished ones (a next_done list) and
 * stores how many were disarmed. */
ftpool__timer *ftpool__timer_disarm_all_locked(ftpool_t *pool,
                                               size_t *count);
/* Stops the timer thread and frees the heap (ftpool_destroy()). */
void ftpool__timer_stop_thread(ftpool_t *pool);

#endif /* FTPOOL_INTERNAL_H */
