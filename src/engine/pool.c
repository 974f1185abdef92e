/*
 * pool.c - the job queue, the workers, submission, cancellation, shutdown
 * and waiting.
 *
 * Three locks (see struct ftpool in internal.h): pool->lock, a mutex,
 * protects the worker bookkeeping and the timers; pool->head_lock, a spin
 * lock, the head of the queue and the job counts; pool->tail_lock, a spin
 * lock, the tail, the free nodes and the ids.  A submission to the back
 * takes tail_lock once - pop a free node, link it, count it - which costs
 * it one atomic exchange; it takes pool->lock as well only if a worker
 * must be woken or started - no system call otherwise.  A worker that
 * finished a plain job takes the next one holding head_lock only; it takes
 * pool->lock when it runs out of work, for a timer run, or to retire.
 * Threads are started after unlocking, and user code always runs
 * unlocked.
 *
 * Job nodes come in slabs and go back for reuse (workers return them in
 * small batches, without a lock) once they have left the queue - a node
 * whose job was taken stays as the queue's dummy until the next job is
 * taken - so once the queue has been as deep as it gets, no submission
 * allocates.  A worker that finds the queue empty polls for a new job for
 * a couple of microseconds before it parks: a steady stream of jobs then
 * finds it awake, and the submitter makes no wake-up call.
 *
 * Sleeping workers form a LIFO stack, each with its own condition variable,
 * so a wake-up wakes exactly one chosen thread.  New workers are started
 * only when a queued job is not covered by a worker already on its way (see
 * uncovered_locked()), which keeps the promise of ftpool.h: a queued job
 * never waits for a worker while fewer than max_workers exist.
 */
#include <string.h>

#include "internal.h"

/* Nodes per slab: few for a pool that only ever queues a handful of jobs,
 * more as the pool grows (a slab is as large as all earlier ones together,
 * within these bounds), so that a deep queue costs one allocation per
 * SLAB_MAX jobs the first time and none afterwards. */
#define SLAB_MIN 32
#define SLAB_MAX 256

/* How long a worker that found the queue empty polls for a job before it
 * parks.  Parking costs the next submission a wake-up system call and the
 * worker a trip through the scheduler, several microseconds in all; a job
 * that arrives within the window costs neither.  Bounded, so an idle pool
 * burns no CPU: a worker spins once each time it runs out of work. */
#define SPIN_NS 2000

static void worker_loop(ftpool_t *pool, ftpool__native *native);

/* ------------------------------------------------------------------------ */
/* Workers: waking and reserving                                            */
/* ------------------------------------------------------------------------ */

/* Jobs queued right now; needs head_lock (so that nunlinked is stable).
 * Reads nlinked afresh and keeps it as the snapshot. */
static size_t
pending_head_locked(ftpool_t *pool)
{
    uint64_t done = atomic_load_explicit(&pool->nunlinked,
                                         memory_order_relaxed);

    /* Acquire: pairs with the release in link_locked(), so the jobs
     * counted are visible. */
    pool->seen_linked = atomic_load_explicit(&pool->nlinked,
                                             memory_order_acquire);
    return (size_t)(pool->seen_linked - done);
}

/* At least this many jobs are queued; needs head_lock.  Trusts the
 * snapshot of nlinked while it promises a job, so a worker working through
 * a deep queue does not pull the submitters' cache line for every job. */
static size_t
pending_hint_head_locked(ftpool_t *pool)
{
    uint64_t done = atomic_load_explicit(&pool->nunlinked,
                                         memory_order_relaxed);

    if (pool->seen_linked > done) {
        return (size_t)(pool->seen_linked - done);
    }
    return pending_head_locked(pool);
}

/* Jobs queued, without head_lock: at least as many as were queued at some
 * instant during the call (nunlinked is read first; a job is unlinked only
 * after it was counted in nlinked, so the difference is never negative). */
static size_t
pending_now(ftpool_t *pool)
{
    uint64_t done = atomic_load_explicit(&pool->nunlinked,
                                         memory_order_acquire);

    return (size_t)(atomic_load_explicit(&pool->nlinked,
                                         memory_order_acquire) - done);
}

/* Counts n jobs as unlinked; needs head_lock, the only writer. */
static void
add_unlinked_head_locked(ftpool_t *pool, size_t n)
{
    uint64_t done = atomic_load_explicit(&pool->nunlinked,
                                         memory_order_relaxed);

    atomic_store_explicit(&pool->nunlinked, done + n, memory_order_release);
}

/* Pops the most recently parked sleeper and wakes it.  LIFO: the worker that
 * slept last has the warmest cache and the others may sleep on. */
static void
wake_one_locked(ftpool_t *pool)
{
    ftpool__sleeper *s = pool->sleepers;

    pool->sleepers = s->next;
    ftpool__add_u(&pool->nsleepers, -1);
    s->woken = 1;
    pool->nwaking++;
    /* Signalled with the lock held: the sleeper lives on its own stack and
     * may leave as soon as it sees woken, so it must not be touched after
     * the unlock. */
    ftpool__cond_signal(&s->cond);
}

static void
wake_all_locked(ftpool_t *pool)
{
    while (pool->sleepers != NULL) {
        wake_one_locked(pool);
    }
}

/* Whether a queued job is not covered by a worker already on its way to the
 * queue (starting, or woken and not yet back).  Each such worker pops one
 * job when it arrives, so only uncovered jobs need a wake-up or a new
 * worker: a busy worker that takes a job first saves a needless wake-up. */
static int
uncovered_locked(ftpool_t *pool)
{
    return pending_now(pool)
           > (size_t)pool->nstarting + pool->nwaking + pool->nspinning
             + atomic_load_explicit(&pool->nreturning, memory_order_relaxed);
}

/* Reserves a worker slot if a queued job is uncovered and the maximum allows
 * one more.  Returns 1 if the caller must start a worker after unlocking.
 * Only ftpool_shutdown(FINISH) reserves while stopping (finishing). */
static unsigned
reserve_slot_locked(ftpool_t *pool, int finishing)
{
    unsigned max = atomic_load_explicit(&pool->max_workers,
                                        memory_order_relaxed);

    if ((pool->stopping != FTPOOL__RUNNING && !finishing)
            || pool->nactive >= max || !uncovered_locked(pool)) {
        return 0;
    }
    ftpool__add_u(&pool->nactive, 1);
    pool->nstarting++;
    ftpool__add_u(&pool->nworkers, 1);
    if (pool->spawn != NULL) {
        pool->nrequests++;
    }
    return 1;
}

static unsigned
reserve_worker_locked(ftpool_t *pool)
{
    return reserve_slot_locked(pool, 0);
}

/* A job was queued: if it is uncovered, hand it to a sleeper or reserve a
 * new worker.  Invariant (while running): no worker sleeps while a job is
 * uncovered, and a job stays uncovered only if max_workers are active. */
static unsigned
job_queued_locked(ftpool_t *pool)
{
    if (!uncovered_locked(pool)) {
        return 0;
    }
    if (pool->sleepers != NULL) {
        wake_one_locked(pool);
        return 0;
    }
    return reserve_worker_locked(pool);
}

unsigned
ftpool__cover_locked(ftpool_t *pool, int finishing)
{
    unsigned spawn = 0;

    while (uncovered_locked(pool)) {
        if (pool->sleepers != NULL) {
            wake_one_locked(pool);
        }
        else if (reserve_slot_locked(pool, finishing)) {
            spawn++;
        }
        else {
            break;
        }
    }
    return spawn;
}

void
ftpool__check_idle_locked(ftpool_t *pool)
{
    int idle;

    /* The snapshot first: while it shows a job queued, the pool is not
     * idle and the submitters' line is left alone. */
    ftpool__spin_lock(&pool->head_lock);
    idle = atomic_load_explicit(&pool->nbusy, memory_order_relaxed) == 0
           && pool->seen_linked
              <= atomic_load_explicit(&pool->nunlinked,
                                      memory_order_relaxed)
           && pending_head_locked(pool) == 0;
    ftpool__spin_unlock(&pool->head_lock);
    if (idle) {
        pool->idle_gen++;
        if (pool->state_waiters > 0) {
            ftpool__cond_broadcast(&pool->state_cond);
        }
    }
}

/* A worker (or a reserved slot) is gone for good.  A shutdown stays in
 * force after the last worker has left (see submit()): nothing but a
 * submission starts workers again, so ftpool_join() is not kept waiting by
 * workers that a timer started behind its back. */
static void
worker_gone_locked(ftpool_t *pool)
{
    ftpool__add_u(&pool->nworkers, -1);
    if (atomic_load_explicit(&pool->nworkers, memory_order_relaxed) == 0) {
        pool->no_workers_gen++;
        if (pool->state_waiters > 0) {
            ftpool__cond_broadcast(&pool->state_cond);
        }
    }
}

/* A reserved worker will never run: give its slot back. */
static void
unreserve_locked(ftpool_t *pool)
{
    ftpool__add_u(&pool->nactive, -1);
    pool->nstarting--;
    if (pool->spawn != NULL && pool->nrequests > 0) {
        pool->nrequests--;
    }
    worker_gone_locked(pool);
}

static void
native_main(void *arg)
{
    ftpool__native *native = arg;

    worker_loop(native->pool, native);
}

/* Joins the native threads that have exited; returns one record to reuse (or
 * NULL) and frees the others. */
static ftpool__native *
reap_zombies(ftpool_t *pool, ftpool__native *list, int keep_one)
{
    ftpool__native *keep = NULL;

    while (list != NULL) {
        ftpool__native *next = list->next;

        ftpool__thread_join(&list->thread);
        if (keep_one && keep == NULL) {
            keep = list;
        }
        else {
            ftpool__free(&pool->alloc, list);
        }
        list = next;
    }
    return keep;
}

/* Starts one native worker thread. */
static int
spawn_native(ftpool_t *pool)
{
    ftpool__native *native, *zombies;

    ftpool__mutex_lock(&pool->lock);
    zombies = pool->zombies;
    pool->zombies = NULL;
    ftpool__mutex_unlock(&pool->lock);

    native = reap_zombies(pool, zombies, 1);
    if (native == NULL) {
        native = ftpool__alloc(&pool->alloc, sizeof(*native));
        if (native == NULL) {
            return -1;
        }
    }
    native->pool = pool;
    native->next = NULL;
    native->thread.fn = native_main;
    native->thread.arg = native;
    if (ftpool__thread_start(&native->thread) != 0) {
        ftpool__free(&pool->alloc, native);
        return -1;
    }
    return 0;
}

int
ftpool__spawn_workers(ftpool_t *pool, unsigned n)
{
    int rc = FTPOOL_OK;

    for (; n > 0; n--) {
        int ok;

        if (pool->spawn != NULL) {
            ok = pool->spawn(pool, pool->spawn_arg) >= 0;
        }
        else {
            ok = spawn_native(pool) == 0;
        }
        if (!ok) {
            ftpool__mutex_lock(&pool->lock);
            unreserve_locked(pool);
            ftpool__mutex_unlock(&pool->lock);
            rc = FTPOOL_ESPAWN;
        }
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The queue                                                                */
/* ------------------------------------------------------------------------ */

/* Allocates a slab of nodes and puts them on the free list.  Called with
 * tail_lock held (and not `lock`); drops it around the allocation, because
 * the allocator may be user code (callers check their conditions again).
 * 0, or -1 if the allocation failed. */
static int
add_slab_locked(ftpool_t *pool)
{
    size_t n = pool->nnodes, i;
    ftpool__slab *slab;

    n = n < SLAB_MIN ? SLAB_MIN : n > SLAB_MAX ? SLAB_MAX : n;
    ftpool__spin_unlock(&pool->tail_lock);
    slab = ftpool__alloc(&pool->alloc,
                         sizeof(*slab) + n * sizeof(slab->nodes[0]));
    ftpool__spin_lock(&pool->tail_lock);
    if (slab == NULL) {
        return -1;
    }
    slab->next = pool->slabs;
    pool->slabs = slab;
    pool->nnodes += n;
    /* Linked in address order: a burst of submissions walks the slab
     * sequentially, which the hardware prefetcher likes. */
    for (i = 0; i + 1 < n; i++) {
        slab->nodes[i].next = &slab->nodes[i + 1];
    }
    slab->nodes[n - 1].next = pool->free_nodes;
    pool->free_nodes = &slab->nodes[0];
    return 0;
}

/* Counts n jobs as linked; needs tail_lock, which makes this the only
 * writer.  Release: a reader of the count finds the jobs linked. */
static void
link_locked(ftpool_t *pool, size_t n)
{
    uint64_t linked = atomic_load_explicit(&pool->nlinked,
                                           memory_order_relaxed);

    atomic_store_explicit(&pool->nlinked, linked + n, memory_order_release);
}

/* The spin lock's contended path: spins on a read (no writes while it is
 * held) for about the length of a critical section, then yields between
 * attempts. */
void
ftpool__spin_lock_slow(ftpool__spinlock *l)
{
    unsigned spins = 0;

    do {
        while (atomic_load_explicit(&l->held, memory_order_relaxed)) {
            if (++spins < 16) {
                ftpool__cpu_relax();
            }
            else {
                ftpool__thread_yield();
            }
        }
    } while (atomic_exchange_explicit(&l->held, 1, memory_order_acquire));
}

unsigned
ftpool__push_front_locked(ftpool_t *pool, ftpool__job *first,
                          ftpool__job *last, size_t n)
{
    unsigned spawn = 0;

    ftpool__job *after;

    ftpool__spin_lock(&pool->head_lock);
    ftpool__spin_lock(&pool->tail_lock);
    /* Behind the timer runs still queued at the front (earlier
     * deadlines), ahead of everything else. */
    after = pool->timer_front != NULL ? pool->timer_front : pool->head;
    last->next = after->next;
    after->next = first;
    if (pool->tail == after) {
        pool->tail = last;
    }
    pool->timer_front = last;
    link_locked(pool, n);
    ftpool__spin_unlock(&pool->tail_lock);
    ftpool__spin_unlock(&pool->head_lock);
    while (n-- > 0) {
        spawn += job_queued_locked(pool);
    }
    return spawn;
}

/* Counts a chain of jobs, unlinked (and counted as such) under head_lock,
 * as dropped.  Timer runs release their timer's reference (finished timers
 * are added to *done); the plain jobs are returned, in order, for their
 * drop callbacks. */
static ftpool__job *
release_chain_locked(ftpool_t *pool, ftpool__job *chain, size_t *count,
                     ftpool__timer **done)
{
    ftpool__job *plain = NULL, **tailp = &plain;
    size_t n = 0;

    while (chain != NULL) {
        ftpool__job *job = chain;

        chain = job->next;
        n++;
        if (job->timer != NULL) {
            ftpool__timer *t = job->timer;

            t->queued = 0;
            t = ftpool__timer_run_done_locked(pool, t, 0);
            if (t != NULL) {
                t->next_done = *done;
                *done = t;
            }
        }
        else {
            job->next = NULL;
            *tailp = job;
            tailp = &job->next;
        }
    }
    pool->dropped += n;
    ftpool__check_idle_locked(pool);
    *count = n;
    return plain;
}

/* Calls the drop callbacks of released plain jobs, then gives their nodes
 * back to the free list.  The lock must not be held. */
static void
drop_jobs(ftpool_t *pool, ftpool__job *plain)
{
    ftpool__job *job, *last = NULL;

    /* The chain is detached from the queue: nothing else touches it while
     * the callbacks run (even if they call into the pool). */
    for (job = plain; job != NULL; job = job->next) {
        if (job->drop != NULL) {
            job->drop(job->arg);
        }
        last = job;
    }
    if (last != NULL) {
        ftpool__spin_lock(&pool->tail_lock);
        last->next = pool->free_nodes;
        pool->free_nodes = plain;
        ftpool__spin_unlock(&pool->tail_lock);
    }
}

/* Detaches the whole queue and releases it (see release_chain_locked). */
static ftpool__job *
clear_queue_locked(ftpool_t *pool, size_t *count, ftpool__timer **done)
{
    ftpool__job *chain;

    ftpool__spin_lock(&pool->head_lock);
    ftpool__spin_lock(&pool->tail_lock);
    chain = pool->head->next;
    pool->head->next = NULL;
    pool->tail = pool->head;
    pool->timer_front = NULL;
    /* Exact with both locks: the chain holds every job linked and not
     * unlinked. */
    add_unlinked_head_locked(pool, pending_head_locked(pool));
    ftpool__spin_unlock(&pool->tail_lock);
    ftpool__spin_unlock(&pool->head_lock);
    return release_chain_locked(pool, chain, count, done);
}

/* Takes a free node (allocating a slab if none is left), unless the pool
 * is closed.  Called and returns with tail_lock held. */
static int
take_node_locked(ftpool_t *pool, ftpool__job **job_out)
{
    for (;;) {
        /* Checked again after add_slab_locked(), which unlocks. */
        if (atomic_load_explicit(&pool->closed, memory_order_relaxed)) {
            return FTPOOL_ESTOPPED;
        }
        if (pool->free_nodes != NULL) {
            *job_out = pool->free_nodes;
            pool->free_nodes = (*job_out)->next;
            return FTPOOL_OK;
        }
        /* Acquire: pairs with the release in give_back(), so the worker
         * is done with the nodes before they are reused. */
        pool->free_nodes = atomic_exchange_explicit(&pool->returned, NULL,
                                                    memory_order_acquire);
        if (pool->free_nodes != NULL) {
            continue;
        }
        if (add_slab_locked(pool) != 0) {
            return FTPOOL_ENOMEM;
        }
    }
}

/* Whether a job just queued at the back may be left alone: no worker
 * sleeps, the pool runs, and no further worker may be started - so
 * job_queued_locked() would do nothing.  Read without `lock`: nsleepers is
 * read after the job was counted in nlinked and a light fence, and a
 * parking worker raises nsleepers and passes a heavy fence before it looks
 * at nlinked a last time, so either the worker sees the job or this sees
 * the worker (see struct ftpool).  The other fields change only when
 * workers are started or retire, and a stale read errs towards taking the
 * lock, or is a submission that happened just before the change. */
static int
queued_needs_nothing(ftpool_t *pool)
{
    ftpool__fence_light();
    return atomic_load_explicit(&pool->nsleepers, memory_order_relaxed) == 0
           && atomic_load_explicit(&pool->stopping, memory_order_relaxed)
              == FTPOOL__RUNNING
           && atomic_load_explicit(&pool->nactive, memory_order_relaxed)
              >= atomic_load_explicit(&pool->max_workers,
                                      memory_order_relaxed);
}

static int
submit(ftpool_t *pool, ftpool_fn fn, ftpool_fn drop, void *arg,
       unsigned flags, uint64_t *id_out)
{
    ftpool__job *job;
    unsigned spawn;
    int front = (flags & FTPOOL_FRONT) != 0, rc;

    if (pool == NULL || fn == NULL || (flags & ~(unsigned)FTPOOL_FRONT)) {
        return FTPOOL_EINVAL;
    }
    ftpool__spin_lock(&pool->tail_lock);
    rc = take_node_locked(pool, &job);
    if (rc != FTPOOL_OK) {
        ftpool__spin_unlock(&pool->tail_lock);
        return rc;
    }
    if (front) {
        /* The head of the queue needs `lock` and head_lock, which come
         * first. */
        ftpool__spin_unlock(&pool->tail_lock);
        ftpool__mutex_lock(&pool->lock);
        ftpool__spin_lock(&pool->head_lock);
        ftpool__spin_lock(&pool->tail_lock);
        if (atomic_load_explicit(&pool->closed, memory_order_relaxed)) {
            job->next = pool->free_nodes;
            pool->free_nodes = job;
            ftpool__spin_unlock(&pool->tail_lock);
            ftpool__spin_unlock(&pool->head_lock);
            ftpool__mutex_unlock(&pool->lock);
            return FTPOOL_ESTOPPED;
        }
    }
    job->fn = fn;
    job->drop = drop;
    job->arg = arg;
    job->timer = NULL;
    job->id = pool->next_id++;
    /* Stored before the job is linked, so that the id is there before the
     * job can start: a job may read its own id through its argument. */
    if (id_out != NULL) {
        *id_out = job->id;
    }
    if (front) {
        job->next = pool->head->next;
        pool->head->next = job;
        if (pool->tail == pool->head) {
            pool->tail = job;
        }
    }
    else {
        job->next = NULL;
        pool->tail->next = job;
        pool->tail = job;
    }
    /* After linking (see struct ftpool). */
    link_locked(pool, 1);
    ftpool__spin_unlock(&pool->tail_lock);
    if (front) {
        ftpool__spin_unlock(&pool->head_lock);
    }
    else {
        if (queued_needs_nothing(pool)) {
            return FTPOOL_OK;
        }
        ftpool__mutex_lock(&pool->lock);
    }
    if (pool->stopping == FTPOOL__RUNNING) {
        spawn = job_queued_locked(pool);
    }
    else {
        /* After a shutdown: a submission that finds no worker alive starts
         * the pool again (for every queued job); one during a FINISH
         * shutdown gets workers that finish the queue and leave. */
        if (atomic_load_explicit(&pool->nworkers, memory_order_relaxed)
                == 0) {
            pool->stopping = FTPOOL__RUNNING;
        }
        spawn = ftpool__cover_locked(
            pool, pool->stopping == FTPOOL_SHUTDOWN_FINISH);
    }
    ftpool__mutex_unlock(&pool->lock);
    return spawn ? ftpool__spawn_workers(pool, spawn) : FTPOOL_OK;
}

int
ftpool_submit(ftpool_t *pool, ftpool_fn fn, void *arg, uint64_t *id_out)
{
    return submit(pool, fn, NULL, arg, 0, id_out);
}

int
ftpool_submit_ex(ftpool_t *pool, ftpool_fn fn, ftpool_fn drop, void *arg,
                 unsigned flags, uint64_t *id_out)
{
    return submit(pool, fn, drop, arg, flags, id_out);
}

/* The last job queued right now, or pool->head if none; needs head_lock.
 * The jobs from the first to this one stay linked as they are while
 * head_lock is held: only holders of head_lock unlink jobs or queue at the
 * front, and submitters only write the next field of the last job.  So the
 * queue up to it may be walked without tail_lock, as long as the walk
 * stops there (and does not read its next field). */
static ftpool__job *
last_job_locked(ftpool_t *pool)
{
    ftpool__job *last;

    ftpool__spin_lock(&pool->tail_lock);
    last = pool->tail;
    ftpool__spin_unlock(&pool->tail_lock);
    return last;
}

int
ftpool_cancel(ftpool_t *pool, uint64_t job_id)
{
    ftpool__job *job, *prev, *plain, *last;
    ftpool__timer *done = NULL;
    size_t n;

    if (pool == NULL) {
        return FTPOOL_EINVAL;
    }
    ftpool__mutex_lock(&pool->lock);
    ftpool__spin_lock(&pool->head_lock);
    /* A linear search: cancelling is rare next to submitting, and an index
     * by id would cost every submission.  Submitters are not held up
     * meanwhile (see last_job_locked()); a job queued after the search
     * began is newer than the call. */
    last = last_job_locked(pool);
    prev = pool->head;
    job = NULL;
    if (last != pool->head) {
        for (job = prev->next;; prev = job, job = job->next) {
            if (job->id == job_id) {
                break;
            }
            if (job == last) {
                job = NULL;
                break;
            }
        }
    }
    if (job == NULL) {
        ftpool__spin_unlock(&pool->head_lock);
        ftpool__mutex_unlock(&pool->lock);
        return FTPOOL_ENOTFOUND;
    }
    if (job == pool->timer_front) {
        /* The runs queued together before it are timer runs too. */
        pool->timer_front = prev != pool->head && prev->timer != NULL
                            ? prev : NULL;
    }
    if (job != last) {
        prev->next = job->next;
    }
    else {
        /* Maybe still the tail, behind which a submitter may link. */
        ftpool__spin_lock(&pool->tail_lock);
        prev->next = job->next;
        if (pool->tail == job) {
            pool->tail = prev;
        }
        ftpool__spin_unlock(&pool->tail_lock);
    }
    add_unlinked_head_locked(pool, 1);
    ftpool__spin_unlock(&pool->head_lock);
    job->next = NULL;
    plain = release_chain_locked(pool, job, &n, &done);
    ftpool__mutex_unlock(&pool->lock);

    drop_jobs(pool, plain);
    ftpool__timer_finish(pool, done);
    return FTPOOL_OK;
}

size_t
ftpool_cancel_all(ftpool_t *pool)
{
    ftpool__job *plain;
    ftpool__timer *done = NULL;
    size_t n;

    if (pool == NULL) {
        return 0;
    }
    ftpool__mutex_lock(&pool->lock);
    plain = clear_queue_locked(pool, &n, &done);
    ftpool__mutex_unlock(&pool->lock);

    drop_jobs(pool, plain);
    ftpool__timer_finish(pool, done);
    return n;
}

size_t
ftpool_foreach_queued(ftpool_t *pool,
                      void (*visit)(void *arg, uint64_t id, void *ctx),
                      void *ctx)
{
    ftpool__job *job, *last;
    size_t n = 0;

    if (pool == NULL || visit == NULL) {
        return 0;
    }
    ftpool__mutex_lock(&pool->lock);
    ftpool__spin_lock(&pool->head_lock);
    /* Without tail_lock, up to the last job queued when the walk began
     * (see last_job_locked()). */
    last = last_job_locked(pool);
    for (job = pool->head; job != last;) {
        job = job->next;
        visit(job->arg, job->id, ctx);
        n++;
    }
    ftpool__spin_unlock(&pool->head_lock);
    ftpool__mutex_unlock(&pool->lock);
    return n;
}

void
ftpool_close(ftpool_t *pool)
{
    if (pool == NULL) {
        return;
    }
    /* Under the locks so that no submission is half-way past its check. */
    ftpool__mutex_lock(&pool->lock);
    ftpool__spin_lock(&pool->tail_lock);
    atomic_store(&pool->closed, 1);
    ftpool__spin_unlock(&pool->tail_lock);
    ftpool__mutex_unlock(&pool->lock);
}

void
ftpool_open(ftpool_t *pool)
{
    if (pool == NULL) {
        return;
    }
    ftpool__mutex_lock(&pool->lock);
    if (!pool->destroying) {
        atomic_store(&pool->closed, 0);
    }
    ftpool__mutex_unlock(&pool->lock);
}

int
ftpool_is_closed(const ftpool_t *pool)
{
    if (pool == NULL) {
        return 1;
    }
    /* The pool object is never const itself; C11 atomics want a non-const
     * pointer. */
    return atomic_load(&((ftpool_t *)pool)->closed);
}

/* ------------------------------------------------------------------------ */
/* Workers                                                                  */
/* ------------------------------------------------------------------------ */

/* Polls the pending counter (without the lock) until a job is queued or
 * SPIN_NS have passed.  The clock is read only every few rounds: it is a
 * cheap library call, but still dearer than a pause. */
static void
spin_for_job(ftpool_t *pool)
{
    int64_t deadline = ftpool__now_ns() + SPIN_NS;
    unsigned i;

    for (i = 1;; i++) {
        if (atomic_load_explicit(&pool->nlinked, memory_order_relaxed)
                != atomic_load_explicit(&pool->nunlinked,
                                        memory_order_relaxed)) {
            return;
        }
        ftpool__cpu_relax();
        if (i % 16 == 0 && ftpool__now_ns() >= deadline) {
            return;
        }
    }
}

/* Nodes a worker took off the queue, not yet given back: each return is an
 * atomic read-modify-write on a line the submitters also use, so they go
 * back in batches of up to NODE_BATCH, and whenever the worker runs out of
 * work (so that an idle pool has all its nodes back but the dummy). */
#define NODE_BATCH 32

typedef struct used_nodes {
    ftpool__job *first, *last;
    unsigned n;
} used_nodes;

/* Gives the used nodes back without tail_lock, onto pool->returned. */
static void
give_back(ftpool_t *pool, used_nodes *u)
{
    ftpool__job *head;

    if (u->n == 0) {
        return;
    }
    head = atomic_load_explicit(&pool->returned, memory_order_relaxed);
    do {
        u->last->next = head;
    } while (!atomic_compare_exchange_weak_explicit(
                 &pool->returned, &head, u->first, memory_order_release,
                 memory_order_relaxed));
    u->first = u->last = NULL;
    u->n = 0;
}

/* Puts a node that left the queue on the used list. */
static void
add_used(used_nodes *u, ftpool__job *job)
{
    job->next = u->first;
    u->first = job;
    if (u->last == NULL) {
        u->last = job;
    }
    u->n++;
}

/* Takes the first job off the queue and copies its fields to *out; a node
 * that leaves the queue joins *u.  Needs head_lock, and a job linked (as
 * counted with head_lock held).  The job's next field is not read: a
 * submitter may be linking a job behind it. */
static void
pop_head_locked(ftpool_t *pool, ftpool__job *out, used_nodes *u)
{
    ftpool__job *dummy = pool->head, *job = dummy->next;

    out->fn = job->fn;
    out->drop = job->drop;
    out->arg = job->arg;
    out->id = job->id;
    out->timer = job->timer;
    if (job->timer == NULL) {
        /* The job's node becomes the dummy and the old dummy leaves the
         * queue: the tail, which may be this node, stays where it is, so
         * no submitter is in the way (see struct ftpool). */
        pool->head = job;
        if (dummy != &pool->stub) {
            add_used(u, dummy);
            if (u->n >= NODE_BATCH) {
                give_back(pool, u);
            }
        }
    }
    else {
        /* A timer's run node belongs to the timer, which may queue it
         * again or free it, so it cannot stay as the dummy: it is
         * unlinked, under tail_lock as it may be the last. */
        ftpool__spin_lock(&pool->tail_lock);
        dummy->next = job->next;
        if (pool->tail == job) {
            pool->tail = dummy;
        }
        ftpool__spin_unlock(&pool->tail_lock);
        if (job == pool->timer_front) {
            pool->timer_front = NULL;   /* the last of them */
        }
    }
    add_unlinked_head_locked(pool, 1);
}

/* Whether a worker that just finished a plain job may take the next one
 * holding head_lock only (needs head_lock): a plain job is queued, and the
 * worker need not retire (no SOON or DROP shutdown - set under head_lock,
 * so no job is taken after one - and no lowered maximum, which it may
 * notice a job late).  Everything else goes through `lock`. */
static int
may_go_on_head_locked(ftpool_t *pool)
{
    int stopping = atomic_load_explicit(&pool->stopping,
                                        memory_order_relaxed);

    return stopping != FTPOOL_SHUTDOWN_SOON
           && stopping != FTPOOL_SHUTDOWN_DROP
           && atomic_load_explicit(&pool->nactive, memory_order_relaxed)
              <= atomic_load_explicit(&pool->max_workers,
                                      memory_order_relaxed)
           && pending_hint_head_locked(pool) > 0
           && pool->head->next->timer == NULL;
}

/* A job has returned: it no longer covers a queued job on its own
 * account (ftpool_job_returning), as the worker is about to look at the
 * queue. */
static inline void
job_returned(ftpool_t *pool, ftpool__self *self)
{
    if (self->returning) {
        self->returning = 0;
        atomic_fetch_sub(&pool->nreturning, 1);
    }
}

/* Runs a plain job the worker took, then, as long as it may go on, the
 * plain jobs after it, each taken and accounted for holding head_lock only.
 * Called and returns without a lock; the last job is accounted for. */
static void
run_plain_jobs(ftpool_t *pool, ftpool__self *self, ftpool__job *job,
               used_nodes *used)
{
    for (;;) {
        job->fn(job->arg);

        job_returned(pool, self);
        ftpool__spin_lock(&pool->head_lock);
        ftpool__add_u(&pool->nbusy, -1);
        pool->completed++;
        if (!may_go_on_head_locked(pool)) {
            break;
        }
        pop_head_locked(pool, job, used);
        ftpool__add_u(&pool->nbusy, 1);
        ftpool__spin_unlock(&pool->head_lock);
    }
    ftpool__spin_unlock(&pool->head_lock);
}

static void
worker_loop(ftpool_t *pool, ftpool__native *native)
{
    void *outer = ftpool__tls_get();
    ftpool__self me = {pool, 0};
    ftpool__sleeper self;
    int can_sleep = ftpool__cond_init(&self.cond) == 0;
    int spun = 0;   /* has spun since it last found a job or was woken */
    used_nodes used = {NULL, NULL, 0};

    ftpool__tls_set(&me);
    if (pool->worker_start != NULL) {
        pool->worker_start(pool->hook_arg);
    }
    ftpool__mutex_lock(&pool->lock);
    pool->nstarting--;
    while (can_sleep) {
        unsigned max = atomic_load_explicit(&pool->max_workers,
                                            memory_order_relaxed);

        if (pool->stopping == FTPOOL_SHUTDOWN_SOON
                || pool->stopping == FTPOOL_SHUTDOWN_DROP
                || pool->nactive > max) {
            break;
        }
        ftpool__spin_lock(&pool->head_lock);
        if (pending_hint_head_locked(pool) > 0) {
            ftpool__job job;
            ftpool__timer *t;

            pop_head_locked(pool, &job, &used);
            ftpool__add_u(&pool->nbusy, 1);
            ftpool__spin_unlock(&pool->head_lock);
            t = job.timer;
            spun = 0;
            if (t == NULL) {
                ftpool__mutex_unlock(&pool->lock);
                run_plain_jobs(pool, &me, &job, &used);
                ftpool__mutex_lock(&pool->lock);
            }
            else {
                t->queued = 0;  /* the next run may be queued now */
                ftpool__mutex_unlock(&pool->lock);

                job.fn(job.arg);

                job_returned(pool, &me);
                ftpool__mutex_lock(&pool->lock);
                ftpool__spin_lock(&pool->head_lock);
                ftpool__add_u(&pool->nbusy, -1);
                pool->completed++;
                ftpool__spin_unlock(&pool->head_lock);
                t = ftpool__timer_run_done_locked(pool, t, 1);
                if (t != NULL) {
                    ftpool__mutex_unlock(&pool->lock);
                    ftpool__timer_finish(pool, t);
                    ftpool__mutex_lock(&pool->lock);
                }
            }
            ftpool__check_idle_locked(pool);
            continue;
        }
        ftpool__spin_unlock(&pool->head_lock);
        /* Still holding `lock` since the idle check: whoever sees the
         * pool idle finds every node given back but the dummy. */
        give_back(pool, &used);
        if (pool->stopping == FTPOOL_SHUTDOWN_FINISH) {
            break;
        }
        /* Out of work: poll for a moment before parking (see SPIN_NS).
         * Counted as spinning, a job that arrives meanwhile is covered by
         * this worker, so its submitter wakes nobody.  Not with a
         * before_wait hook: such a hook typically releases something the
         * submitters need (the Python binding releases the GIL there), so
         * no job could arrive while this worker spins holding it. */
        if (!spun && pool->before_wait == NULL) {
            spun = 1;
            pool->nspinning++;
            ftpool__mutex_unlock(&pool->lock);
            spin_for_job(pool);
            ftpool__mutex_lock(&pool->lock);
            pool->nspinning--;
            continue;
        }
        /* Park on the sleeper stack before unlocking, so that a job queued
         * while before_wait runs finds this worker and sets woken. */
        self.woken = 0;
        self.next = pool->sleepers;
        pool->sleepers = &self;
        /* Store, heavy fence, load: the handshake with submit() (see
         * queued_needs_nothing()).  A job queued since nlinked was read
         * above, by a submitter that saw no sleeper, is taken now. */
        ftpool__add_u(&pool->nsleepers, 1);
        ftpool__fence_heavy();
        if (pending_now(pool) != 0) {
            pool->sleepers = self.next;
            ftpool__add_u(&pool->nsleepers, -1);
            continue;
        }
        if (pool->before_wait != NULL) {
            ftpool__mutex_unlock(&pool->lock);
            pool->before_wait(pool->hook_arg);
            ftpool__mutex_lock(&pool->lock);
        }
        /* Woken by wake_one_locked(): a queued job, shutdown, a lowered
         * maximum or ftpool_destroy(). */
        while (!self.woken) {
            ftpool__cond_wait(&self.cond, &pool->lock);
        }
        if (pool->after_wait != NULL) {
            ftpool__mutex_unlock(&pool->lock);
            pool->after_wait(pool->hook_arg);
            ftpool__mutex_lock(&pool->lock);
        }
        /* Counted as waking until now, so that the job it was woken for
         * starts no other worker meanwhile. */
        pool->nwaking--;
        spun = 0;
    }

    give_back(pool, &used);
    /* Leaving: from now on this worker no longer counts against the
     * maximum. */
    ftpool__add_u(&pool->nactive, -1);
    /* A retiring worker may have been woken for a job it will not take:
     * pass that job on to a sleeper. */
    while (pool->sleepers != NULL && uncovered_locked(pool)) {
        wake_one_locked(pool);
    }
    ftpool__mutex_unlock(&pool->lock);
    if (pool->worker_end != NULL) {
        pool->worker_end(pool->hook_arg);
    }
    ftpool__tls_set(outer);
    if (can_sleep) {
        ftpool__cond_destroy(&self.cond);
    }

    ftpool__mutex_lock(&pool->lock);
    if (native != NULL) {
        native->next = pool->zombies;
        pool->zombies = native;
    }
    worker_gone_locked(pool);
    /* Nothing touches the pool after this unlock: ftpool_destroy() may free
     * it as soon as the worker count reaches zero. */
    ftpool__mutex_unlock(&pool->lock);
}

int
ftpool_worker_run(ftpool_t *pool)
{
    if (pool == NULL) {
        return FTPOOL_EINVAL;
    }
    ftpool__mutex_lock(&pool->lock);
    if (pool->spawn == NULL || pool->nrequests == 0) {
        ftpool__mutex_unlock(&pool->lock);
        return FTPOOL_EINVAL;
    }
    pool->nrequests--;
    ftpool__mutex_unlock(&pool->lock);
    worker_loop(pool, NULL);
    return FTPOOL_OK;
}

ftpool_t *
ftpool_current_pool(void)
{
    return ftpool__current();
}

void
ftpool_job_returning(void)
{
    ftpool__self *self = ftpool__tls_get();

    if (self != NULL && !self->returning) {
        self->returning = 1;
        /* Before whatever the job does next (waking the thread that will
         * submit): a submitter that sees the job's effect sees this. */
        atomic_fetch_add(&self->pool->nreturning, 1);
    }
}

int
ftpool_set_max_workers(ftpool_t *pool, unsigned max_workers)
{
    unsigned spawn = 0;

    if (pool == NULL || max_workers < 1) {
        return FTPOOL_EINVAL;
    }
    ftpool__mutex_lock(&pool->lock);
    atomic_store_explicit(&pool->max_workers, max_workers,
                          memory_order_relaxed);
    if (pool->nactive > max_workers) {
        /* Sleepers retire at once; busy workers after their job. */
        unsigned extra = pool->nactive - max_workers;

        while (extra-- > 0 && pool->sleepers != NULL) {
            wake_one_locked(pool);
        }
    }
    else {
        while (reserve_worker_locked(pool)) {
            spawn++;
        }
    }
    ftpool__mutex_unlock(&pool->lock);
    return spawn ? ftpool__spawn_workers(pool, spawn) : FTPOOL_OK;
}

unsigned
ftpool_max_workers(const ftpool_t *pool)
{
    if (pool == NULL) {
        return 0;
    }
    return atomic_load(&((ftpool_t *)pool)->max_workers);
}

/* ------------------------------------------------------------------------ */
/* Shutdown and waiting                                                     */
/* ------------------------------------------------------------------------ */

int
ftpool_shutdown(ftpool_t *pool, unsigned how)
{
    unsigned mode = how & ~(unsigned)FTPOOL_SHUTDOWN_TIMERS;
    ftpool__job *plain = NULL;
    ftpool__timer *done = NULL;
    unsigned spawn = 0;
    size_t n;

    if (pool == NULL || mode > FTPOOL_SHUTDOWN_DROP) {
        return FTPOOL_EINVAL;
    }
    ftpool__mutex_lock(&pool->lock);
    if (how & FTPOOL_SHUTDOWN_TIMERS) {
        done = ftpool__timer_disarm_all_locked(pool, &n);
    }
    if (mode == FTPOOL_SHUTDOWN_DROP) {
        plain = clear_queue_locked(pool, &n, &done);
    }
    /* While workers are alive the strongest mode asked for wins; once all
     * have left, the previous shutdown is over and this one replaces it.
     * It lasts until a submission finds no worker alive. */
    if ((int)mode > pool->stopping
            || atomic_load_explicit(&pool->nworkers,
                                    memory_order_relaxed) == 0) {
        /* Under head_lock too: no worker takes a job after a SOON or DROP
         * shutdown (see may_go_on_head_locked()). */
        ftpool__spin_lock(&pool->head_lock);
        pool->stopping = (int)mode;
        ftpool__spin_unlock(&pool->head_lock);
    }
    wake_all_locked(pool);
    /* Finishing needs workers for the queued jobs even if none is left
     * (after a SOON shutdown, or a failed spawn); they exit once the queue
     * is empty. */
    if (pool->stopping == FTPOOL_SHUTDOWN_FINISH) {
        spawn = ftpool__cover_locked(pool, 1);
    }
    ftpool__mutex_unlock(&pool->lock);

    drop_jobs(pool, plain);
    ftpool__timer_finish(pool, done);
    return spawn ? ftpool__spawn_workers(pool, spawn) : FTPOOL_OK;
}

int
ftpool_resume(ftpool_t *pool)
{
    unsigned spawn;

    if (pool == NULL) {
        return FTPOOL_EINVAL;
    }
    ftpool__mutex_lock(&pool->lock);
    if (pool->stopping != FTPOOL__RUNNING) {
        ftpool__spin_lock(&pool->head_lock);
        pool->stopping = FTPOOL__RUNNING;
        ftpool__spin_unlock(&pool->head_lock);
    }
    /* Workers that already decided to leave no longer count as active:
     * the queued jobs they leave behind get workers of their own. */
    spawn = ftpool__cover_locked(pool, 0);
    ftpool__mutex_unlock(&pool->lock);
    return spawn ? ftpool__spawn_workers(pool, spawn) : FTPOOL_OK;
}

/* What wait_state() waits for. */
enum {
    WAIT_IDLE,          /* no job queued or running, at some instant */
    WAIT_NO_WORKERS,    /* no worker alive, at some instant */
    WAIT_NO_WORKERS_NOW /* no worker alive now (ftpool_destroy()) */
};

static int
reached_locked(ftpool_t *pool, int what, uint64_t gen0)
{
    switch (what) {
    case WAIT_IDLE:
        if (pool->idle_gen != gen0) {
            return 1;
        }
        {
            int idle;

            ftpool__spin_lock(&pool->head_lock);
            idle = pending_head_locked(pool) == 0
                   && atomic_load_explicit(&pool->nbusy,
                                           memory_order_relaxed) == 0;
            ftpool__spin_unlock(&pool->head_lock);
            return idle;
        }
    case WAIT_NO_WORKERS:
        if (pool->no_workers_gen != gen0) {
            return 1;
        }
        /* fall through */
    default:
        return atomic_load_explicit(&pool->nworkers,
                                    memory_order_relaxed) == 0;
    }
}

/* Waits on state_cond until `what` is reached (since the generation
 * `since` of it, or since now if NULL) or timeout_ns has passed. */
static int
wait_state(ftpool_t *pool, int what, int64_t timeout_ns,
           const uint64_t *since)
{
    int64_t deadline = 0;
    uint64_t gen0;
    int rc = FTPOOL_OK;

    if (timeout_ns > 0) {
        int64_t now = ftpool__now_ns();

        deadline = timeout_ns > INT64_MAX - now ? INT64_MAX
                                                : now + timeout_ns;
    }
    ftpool__mutex_lock(&pool->lock);
    gen0 = since != NULL ? *since
           : what == WAIT_IDLE ? pool->idle_gen : pool->no_workers_gen;
    while (!reached_locked(pool, what, gen0)) {
        int timed_out = 0;

        if (timeout_ns == 0) {
            rc = FTPOOL_ETIMEDOUT;
            break;
        }
        /* Woken by the last worker leaving or the pool becoming idle. */
        pool->state_waiters++;
        if (timeout_ns < 0) {
            ftpool__cond_wait(&pool->state_cond, &pool->lock);
        }
        else {
            timed_out = ftpool__cond_timedwait(&pool->state_cond,
                                               &pool->lock, deadline) != 0;
        }
        pool->state_waiters--;
        if (timed_out && !reached_locked(pool, what, gen0)) {
            rc = FTPOOL_ETIMEDOUT;
            break;
        }
    }
    ftpool__mutex_unlock(&pool->lock);
    return rc;
}

/* Joins the native threads that have left, so that none outlives a
 * successful ftpool_join(). */
static void
reap_now(ftpool_t *pool)
{
    ftpool__native *zombies;

    ftpool__mutex_lock(&pool->lock);
    zombies = pool->zombies;
    pool->zombies = NULL;
    ftpool__mutex_unlock(&pool->lock);
    reap_zombies(pool, zombies, 0);
}

void
ftpool_mark_now(ftpool_t *pool, ftpool_mark *out)
{
    ftpool__mutex_lock(&pool->lock);
    /* A state that holds now has been reached "at or after" the mark: the
     * mark is then one generation behind, which the waits take as
     * reached. */
    out->no_workers = pool->no_workers_gen
                      - (reached_locked(pool, WAIT_NO_WORKERS_NOW, 0) != 0);
    out->idle = pool->idle_gen
                - (reached_locked(pool, WAIT_IDLE, pool->idle_gen) != 0);
    ftpool__mutex_unlock(&pool->lock);
}

static int
join_since(ftpool_t *pool, const uint64_t *since, int64_t timeout_ns)
{
    int rc;

    if (pool == NULL) {
        return FTPOOL_EINVAL;
    }
    if (ftpool__current() == pool) {
        return FTPOOL_EBUSY;
    }
    rc = wait_state(pool, WAIT_NO_WORKERS, timeout_ns, since);
    if (rc == FTPOOL_OK) {
        reap_now(pool);
    }
    return rc;
}

static int
wait_idle_since(ftpool_t *pool, const uint64_t *since, int64_t timeout_ns)
{
    if (pool == NULL) {
        return FTPOOL_EINVAL;
    }
    if (ftpool__current() == pool) {
        return FTPOOL_EBUSY;
    }
    return wait_state(pool, WAIT_IDLE, timeout_ns, since);
}

int
ftpool_join(ftpool_t *pool, int64_t timeout_ns)
{
    return join_since(pool, NULL, timeout_ns);
}

int
ftpool_join_since(ftpool_t *pool, const ftpool_mark *since,
                  int64_t timeout_ns)
{
    return join_since(pool, since ? &since->no_workers : NULL, timeout_ns);
}

int
ftpool_wait_idle(ftpool_t *pool, int64_t timeout_ns)
{
    return wait_idle_since(pool, NULL, timeout_ns);
}

int
ftpool_wait_idle_since(ftpool_t *pool, const ftpool_mark *since,
                       int64_t timeout_ns)
{
    return wait_idle_since(pool, since ? &since->idle : NULL, timeout_ns);
}

unsigned
ftpool_workers(const ftpool_t *pool)
{
    return pool == NULL ? 0 : atomic_load(&((ftpool_t *)pool)->nworkers);
}

unsigned
ftpool_busy(const ftpool_t *pool)
{
    return pool == NULL ? 0 : atomic_load(&((ftpool_t *)pool)->nbusy);
}

size_t
ftpool_pending(const ftpool_t *pool)
{
    ftpool_t *p = (ftpool_t *)pool;
    uint64_t before, linked, after;

    if (p == NULL) {
        return 0;
    }
    /* nunlinked unchanged around the read of nlinked: the difference was
     * exact when nlinked was read. */
    after = atomic_load(&p->nunlinked);
    do {
        before = after;
        linked = atomic_load(&p->nlinked);
        after = atomic_load(&p->nunlinked);
    } while (after != before);
    return (size_t)(linked - before);
}

void
ftpool_get_stats(ftpool_t *pool, ftpool_stats *out)
{
    if (pool == NULL || out == NULL) {
        return;
    }
    /* All locks: busy and completed change under head_lock, submitted
     * under tail_lock, timers and dropped under `lock`. */
    ftpool__mutex_lock(&pool->lock);
    ftpool__spin_lock(&pool->head_lock);
    ftpool__spin_lock(&pool->tail_lock);
    out->workers = atomic_load_explicit(&pool->nworkers,
                                        memory_order_relaxed);
    out->busy = atomic_load_explicit(&pool->nbusy, memory_order_relaxed);
    out->pending = pending_head_locked(pool);
    out->timers = pool->ntimers;
    out->submitted = pool->seen_linked;
    out->completed = pool->completed;
    out->dropped = pool->dropped;
    ftpool__spin_unlock(&pool->tail_lock);
    ftpool__spin_unlock(&pool->head_lock);
    ftpool__mutex_unlock(&pool->lock);
}

/* ------------------------------------------------------------------------ */
/* Pool lifetime                                                            */
/* ------------------------------------------------------------------------ */

int
ftpool_create(const ftpool_options *opts, ftpool_t **pool_out)
{
    ftpool_allocator a;
    ftpool_t *pool;

    if (opts == NULL || pool_out == NULL || opts->max_workers < 1) {
        return FTPOOL_EINVAL;
    }
    if (opts->allocator != NULL) {
        if (opts->allocator->alloc == NULL || opts->allocator->free == NULL) {
            return FTPOOL_EINVAL;
        }
        a = *opts->allocator;
    }
    else {
        ftpool__default_allocator(&a);
    }
    pool = ftpool__alloc(&a, sizeof(*pool));
    if (pool == NULL) {
        return FTPOOL_ENOMEM;
    }
    memset(pool, 0, sizeof(*pool));
    pool->alloc = a;
    pool->spawn = opts->spawn;
    pool->spawn_arg = opts->spawn_arg;
    pool->before_wait = opts->before_wait;
    pool->after_wait = opts->after_wait;
    pool->worker_start = opts->worker_start;
    pool->worker_end = opts->worker_end;
    pool->hook_arg = opts->hook_arg;
    pool->next_id = 1;
    pool->head = &pool->stub;
    pool->tail = &pool->stub;
    atomic_init(&pool->stopping, FTPOOL__RUNNING);
    atomic_init(&pool->nactive, 0);
    atomic_init(&pool->nreturning, 0);
    atomic_init(&pool->nsleepers, 0);
    atomic_init(&pool->max_workers, opts->max_workers);
    atomic_init(&pool->nworkers, 0);
    atomic_init(&pool->nbusy, 0);
    atomic_init(&pool->nlinked, 0);
    atomic_init(&pool->nunlinked, 0);
    atomic_init(&pool->closed, 0);
    atomic_init(&pool->returned, NULL);

    atomic_init(&pool->head_lock.held, 0);
    atomic_init(&pool->tail_lock.held, 0);
    ftpool__fence_init();

    if (ftpool__mutex_init(&pool->lock) != 0) {
        goto fail_mutex;
    }
    if (ftpool__cond_init(&pool->state_cond) != 0) {
        goto fail_state_cond;
    }
    if (ftpool__cond_init(&pool->timer_cond) != 0) {
        goto fail_timer_cond;
    }
    *pool_out = pool;
    return FTPOOL_OK;

fail_timer_cond:
    ftpool__cond_destroy(&pool->state_cond);
fail_state_cond:
    ftpool__mutex_destroy(&pool->lock);
fail_mutex:
    ftpool__free(&a, pool);
    return FTPOOL_ENOMEM;
}

int
ftpool_destroy(ftpool_t *pool)
{
    ftpool__job *plain;
    ftpool__slab *slab;
    ftpool__timer *done;
    ftpool_allocator a;
    size_t n;

    if (pool == NULL) {
        return FTPOOL_EINVAL;
    }
    if (ftpool__current() == pool) {
        return FTPOOL_EBUSY;
    }
    ftpool__mutex_lock(&pool->lock);
    ftpool__spin_lock(&pool->tail_lock);
    atomic_store(&pool->closed, 1);
    ftpool__spin_unlock(&pool->tail_lock);
    pool->destroying = 1;
    ftpool__mutex_unlock(&pool->lock);

    /* First the timer thread, so that nothing queues or spawns behind us. */
    ftpool__timer_stop_thread(pool);

    ftpool__mutex_lock(&pool->lock);
    done = ftpool__timer_disarm_all_locked(pool, &n);
    plain = clear_queue_locked(pool, &n, &done);
    ftpool__spin_lock(&pool->head_lock);
    pool->stopping = FTPOOL_SHUTDOWN_DROP;
    ftpool__spin_unlock(&pool->head_lock);
    wake_all_locked(pool);
    ftpool__mutex_unlock(&pool->lock);
    drop_jobs(pool, plain);
    ftpool__timer_finish(pool, done);

    /* Running jobs finish (and release their timers); then every worker
     * leaves. */
    wait_state(pool, WAIT_NO_WORKERS_NOW, -1, NULL);
    reap_now(pool);

    a = pool->alloc;
    slab = pool->slabs;
    while (slab != NULL) {
        ftpool__slab *next = slab->next;

        ftpool__free(&a, slab);
        slab = next;
    }
    ftpool__free(&a, pool->heap);
    ftpool__cond_destroy(&pool->timer_cond);
    ftpool__cond_destroy(&pool->state_cond);
    ftpool__mutex_destroy(&pool->lock);
    ftpool__free(&a, pool);
    return FTPOOL_OK;
}
