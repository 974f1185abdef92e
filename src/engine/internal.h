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

/* A block of plain-job nodes allocated at once.  Nodes are never freed one
 * by one: they circulate through the pool's free list, and the blocks are
 * freed together by ftpool_destroy(). */
typedef struct ftpool__slab {
    struct ftpool__slab *next;
    ftpool__job nodes[];
} ftpool__slab;

/* A worker asleep in the pool's LIFO stack of sleepers.  Each sleeper has
 * its own condition variable, so waking one worker wakes exactly that one. */
typedef struct ftpool__sleeper {
    ftpool__cond cond;
    struct ftpool__sleeper *next;
    int woken;              /* set (under the lock) by whoever wakes it */
} ftpool__sleeper;

/* A worker as the thread-local value of its thread: its pool, and whether
 * the job it runs announced ftpool_job_returning(). */
typedef struct ftpool__self {
    ftpool_t *pool;
    int returning;
} ftpool__self;

/* The pool whose worker the calling thread is, or NULL. */
static inline ftpool_t *
ftpool__current(void)
{
    ftpool__self *self = ftpool__tls_get();

    return self != NULL ? self->pool : NULL;
}

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

/* Keeps groups of fields that different threads write apart, so that a
 * write by one thread does not steal the cache line another is using. */
#define FTPOOL__PAD(name) char name[64]

/* A spin lock for critical sections that never wait and never call user
 * code, nearly all of a few dozen instructions (the walks along the queue
 * of cancel and foreach are the rare long ones): one exchange to take it,
 * a plain store to release it (a mutex pays a read-modify-write for both).
 * A waiter spins a little, then gives its time slice away, so that a
 * holder that was preempted gets to run. */
typedef struct ftpool__spinlock {
    _Atomic int held;
} ftpool__spinlock;

void ftpool__spin_lock_slow(ftpool__spinlock *l);

static inline void
ftpool__spin_lock(ftpool__spinlock *l)
{
    if (atomic_exchange_explicit(&l->held, 1, memory_order_acquire)) {
        ftpool__spin_lock_slow(l);
    }
}

static inline void
ftpool__spin_unlock(ftpool__spinlock *l)
{
    atomic_store_explicit(&l->held, 0, memory_order_release);
}

/*
 * Three locks, always taken in this order: `lock`, head_lock, tail_lock.
 *
 * `lock` (a mutex, the one the condition variables wait with) protects the
 * workers' bookkeeping (sleepers, starting, waking, spinning, exits), the
 * timers and the waits for idle or for no workers.  head_lock (a spin lock:
 * see ftpool__spinlock) is the consumer side: the head of the queue and the
 * counts of a job's life after its submission (nunlinked, nbusy,
 * completed).  tail_lock (a spin lock) is the producer side: the tail of
 * the queue, the free node list, the ids and nlinked.
 *
 * A plain submission to the back takes only tail_lock (and `lock` only
 * when a worker must be woken or started).  A worker takes `lock` and
 * head_lock to take a job after it was asleep, spinning or busy with a
 * timer run; after a plain job it takes the next plain job (if it may go
 * on) holding head_lock only, the whole job's accounting included.  So
 * submitters and workers meet on no lock, and workers meet on a spin lock
 * held for a few dozen instructions.  Whatever changes the head or walks
 * the queue (front insertion, cancel, foreach, clear) holds `lock` and
 * head_lock; it holds tail_lock too if it may touch the tail, and a walk
 * holds tail_lock only to read the tail (jobs before it change only under
 * head_lock).  Nothing waits or calls user code while holding a spin lock
 * (a slab is allocated with tail_lock released; foreach's visitor may not
 * call into the pool).
 *
 * The queue is singly linked from `head`, a dummy node whose job is over:
 * head->next is the first job and tail the last (head when the queue is
 * empty).  Taking the first job makes its node the dummy and lets the old
 * dummy go (as in the queue of Michael and Scott), so a dequeue never
 * touches the tail, and an enqueue only the tail: a worker may take the
 * last job while a submitter links one behind it, as long as neither
 * reads the other's field (a worker does not read the next field of the
 * job it takes).  The first dummy is `stub`, a node that is never a job
 * and never freed; a timer's run node never becomes the dummy (its timer
 * owns it): it is unlinked, under tail_lock.
 *
 * Two counters, each written under one lock only, so that the submitters
 * and the workers do not fight over one cache line for every job:
 * nlinked (tail_lock) counts jobs ever linked and is raised only after a
 * job is linked; nunlinked (head_lock) counts jobs ever unlinked (taken or
 * dropped) and is raised when one is unlinked, under the same hold of
 * head_lock.  Both are raised with a release store, as their only writer.
 * The pending jobs are nlinked - nunlinked.  nlinked only grows, so
 * whoever holds head_lock may rely on at least seen_linked - nunlinked
 * jobs being linked (and visible: it reads nlinked with acquire), and
 * reads the submitters' line again only when that snapshot runs short (see
 * pending_hint_head_locked()).  Without head_lock, reading nunlinked
 * before nlinked gives at least the jobs pending at some instant.
 *
 * A submitter that raised nlinked and a worker about to park meet in a
 * handshake: the worker raises nsleepers and then reads nlinked, the
 * submitter raises nlinked and then reads nsleepers, so one of them sees
 * the other.  It is ordered by the asymmetric fences of platform.h: the
 * light one on the submit path (free on Linux), the heavy one when a
 * worker parks.
 */
struct ftpool {
    /* Read-mostly: set at create, or written rarely (and then by holders
     * of `lock`), read by submitters without it. */
    ftpool_allocator alloc;
    ftpool_spawn_fn spawn;
    void *spawn_arg;
    ftpool_hook before_wait, after_wait, worker_start, worker_end;
    void *hook_arg;
    _Atomic unsigned max_workers;
    /* FTPOOL__RUNNING, or the mode of the last shutdown: it lasts until a
     * submission finds no worker alive.  Written under `lock`; a shutdown
     * also holds head_lock, under which a worker checks it before it takes
     * a job. */
    _Atomic int stopping;
    _Atomic unsigned nactive;   /* see "Workers" below */
    /* Workers on the sleeper stack.  A parking worker raises it and then
     * checks nlinked; a submitter raises nlinked and then checks it: one
     * of the two always sees the other (see the handshake above). */
    _Atomic unsigned nsleepers;
    _Atomic int closed;
    FTPOOL__PAD(pad0_);

    /* Protects every field below up to head_lock that is not _Atomic, and
     * is the only writer lock of those _Atomic counters (which are also
     * read without it).  Held only for short list and counter updates:
     * never while user code (jobs, drop callbacks, hooks, spawn,
     * allocator) runs. */
    ftpool__mutex lock;

    /* Workers.  active: alive and not yet decided to exit (what the maximum
     * limits).  starting: reserved, not yet looking at the queue.  waking:
     * taken off the sleeper stack, not yet looking at the queue.  spinning:
     * found the queue empty and is polling the counters for a moment
     * before it parks (it looks at the queue again before parking).  A
     * job is covered when pending <= starting + waking + spinning +
     * returning; a worker is woken or started only for an uncovered job. */
    ftpool__sleeper *sleepers;
    unsigned nstarting, nwaking, nspinning;
    /* Busy workers whose job announced it returns to the queue right
     * after (ftpool_job_returning): they cover queued jobs too.  Raised
     * and lowered by the worker itself without the lock. */
    _Atomic unsigned nreturning;
    unsigned nrequests;         /* spawn-hook requests not yet claimed */
    int destroying;
    ftpool__native *zombies;    /* exited native threads to join */

    /* Readable without the lock (ftpool_workers()). */
    _Atomic unsigned nworkers;  /* alive, including starting and exiting */

    uint64_t dropped;

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
    FTPOOL__PAD(pad1_);

    /* The consumer side (see above): protects the fields below up to the
     * producer side, and is the only writer lock of its _Atomic counters
     * (which are also read without it). */
    ftpool__spinlock head_lock;
    ftpool__job *head;          /* head->next: the next job to run */
    /* The last of the timer runs queued together at the front, or NULL
     * when none is queued: a run that falls due later is queued behind
     * it, so that due runs keep their deadline order. */
    ftpool__job *timer_front;
    /* Jobs ever unlinked (see above); read without a lock by spinning
     * workers and ftpool_pending(). */
    _Atomic uint64_t nunlinked;
    uint64_t seen_linked;       /* a value nlinked has had: a lower bound */
    _Atomic unsigned nbusy;     /* workers running a job */
    uint64_t completed;
    ftpool__job stub;           /* the first dummy (see above) */
    FTPOOL__PAD(pad4_);

    /* Protects the fields below (the producer side, see above). */
    ftpool__spinlock tail_lock;
    ftpool__job *tail;          /* the last job, or head */
    /* Unused plain-job nodes.  Nodes exist for the deepest the queue has
     * been (plus the dummy, what workers hold on their way back, NODE_BATCH
     * each, and the rest of the last slab) and are not trimmed, so that a
     * steady stream of jobs allocates nothing; the memory goes back with
     * the slabs at ftpool_destroy(). */
    ftpool__job *free_nodes;
    ftpool__slab *slabs;        /* every node block, for ftpool_destroy() */
    size_t nnodes;              /* nodes in all slabs */
    uint64_t next_id;           /* job and timer ids */
    /* Jobs ever linked (see above), which is also the count of jobs
     * submitted.  On the submitter's line, which it writes anyway; read
     * without tail_lock by spinning workers, by ftpool_pending(), and by
     * holders of head_lock when their snapshot runs short. */
    _Atomic uint64_t nlinked;
    FTPOOL__PAD(pad2_);
    /* Plain-job nodes that workers have given back, a stack pushed to
     * without a lock (compare-and-swap of a whole batch) and emptied at
     * once (exchange) by a submitter whose free_nodes ran out: a worker
     * then never waits for tail_lock, which a busy submitter holds most of
     * the time, and the submitter never has to wake it.  Push-only plus
     * take-all is free of the ABA problem.  On its own line: written once
     * per batch, not per job. */
    _Atomic(ftpool__job *) returned;
    FTPOOL__PAD(pad3_);
};

/* Counters are written only with the lock held, so a relaxed load and store
 * are enough (no read-modify-write instruction on the hot path). */
static inline void
ftpool__add_u(_Atomic unsigned *c, int d)
{
    unsigned v = atomic_load_explicit(c, memory_order_relaxed);
    atomic_store_explicit(c, v + (unsigned)d, memory_order_relaxed);
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
