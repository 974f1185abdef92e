/*
 * ftpool.h - a small, fast, portable C11 thread pool.
 *
 * The whole public API of the engine.  Everything public starts with
 * `ftpool_` (types, functions) or `FTPOOL_` (constants).
 *
 * Model
 * -----
 * A pool owns a queue of jobs.  A job is a function pointer, an argument and a
 * 64-bit id that is unique for the pool's lifetime (ids start at 1 and are never
 * reused).  Jobs go to the back of the queue (FIFO) or to its front.  Workers are
 * created on demand, up to `max_workers`: a queued job never waits for a worker
 * while fewer than `max_workers` exist (unless the pool is shut down, see
 * ftpool_shutdown).  Workers are either native threads that
 * the engine starts itself, or threads created elsewhere that call
 * ftpool_worker_run() (see `spawn` in ftpool_options).
 *
 * Timers run a job after a delay or at a deadline, once or periodically.  When a
 * timer is due its job is pushed to the *front* of the queue.  Periodic timers
 * do not drift: each run is due one interval after the previous due time.
 *
 * Contracts kept everywhere
 * -------------------------
 * - Errors are returned as negative FTPOOL_E* codes; nothing aborts.
 * - Every job submitted successfully is either run (its `fn` is called exactly
 *   once) or dropped (its `drop` callback, if any, is called exactly once):
 *   never both, never neither.  If a submitting function fails, neither
 *   callback is ever called for that job.
 * - User callbacks (job functions, drop callbacks, hooks) are never called with
 *   an engine lock held, so they may call back into the pool.
 * - Timeouts are in nanoseconds; a negative timeout means "wait forever",
 *   zero means "do not wait".
 */
#ifndef FTPOOL_H
#define FTPOOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(FTPOOL_SHARED)
#  ifdef FTPOOL_BUILDING
#    define FTPOOL_API __declspec(dllexport)
#  else
#    define FTPOOL_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) && defined(FTPOOL_SHARED)
#  define FTPOOL_API __attribute__((visibility("default")))
#else
#  define FTPOOL_API
#endif

/* ------------------------------------------------------------------------ */
/* Error codes                                                              */
/* ------------------------------------------------------------------------ */

enum {
    FTPOOL_OK = 0,          /* success */
    FTPOOL_ENOMEM = -1,     /* an allocation failed; nothing was changed */
    FTPOOL_EINVAL = -2,     /* a bad argument (NULL pointer, zero workers) */
    FTPOOL_ESTOPPED = -3,   /* the pool is closed for submissions */
    FTPOOL_ETIMEDOUT = -4,  /* a wait ran out of time */
    FTPOOL_ENOTFOUND = -5,  /* no queued job / pending timer with that id */
    FTPOOL_ESPAWN = -6,     /* the job is queued but no new worker could be
                               started; it runs when a worker is free */
    FTPOOL_EBUSY = -7       /* the operation needs an idle pool */
};

/* A short English description of an error code; never NULL. */
FTPOOL_API const char *ftpool_strerror(int err);

/* ------------------------------------------------------------------------ */
/* Types                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct ftpool ftpool_t;         /* a thread pool (opaque) */
typedef struct ftpool_sem ftpool_sem_t; /* a counting semaphore (opaque) */

/* A job's function, and the callback that releases a job's argument when the
 * job is dropped instead of run (cancelled, cleared or discarded at shutdown). */
typedef void (*ftpool_fn)(void *arg);

/* A worker hook: called in a worker thread with ftpool_options.hook_arg. */
typedef void (*ftpool_hook)(void *hook_arg);

/* Asked to start one new worker: it must make some thread call
 * ftpool_worker_run(pool) soon, and return 0, or return a negative value if it
 * could not (the pool then counts one worker fewer).  Called without engine
 * locks, in the thread that submitted the job (or in the timer thread). */
typedef int (*ftpool_spawn_fn)(ftpool_t *pool, void *spawn_arg);

/* Replaces malloc/free for every allocation the engine makes. */
typedef struct ftpool_allocator {
    void *(*alloc)(size_t size, void *ctx);  /* returns NULL on failure */
    void (*free)(void *ptr, void *ctx);      /* releases what alloc returned */
    void *ctx;                               /* passed to alloc and free */
} ftpool_allocator;

/* Pool settings.  Zero-initialise, then set what you need:
 *     ftpool_options o = {0}; o.max_workers = 4;                            */
typedef struct ftpool_options {
    unsigned max_workers;          /* required, >= 1 */
    /* NULL: the engine starts native threads.  Otherwise called whenever a
     * worker is needed (see ftpool_spawn_fn). */
    ftpool_spawn_fn spawn;
    void *spawn_arg;
    /* Optional hooks, all called in the worker thread, never with a lock
     * held.  before_wait/after_wait bracket every blocking wait of a worker
     * (the Python binding releases the GIL there); worker_start/worker_end
     * bracket a worker's life. */
    ftpool_hook before_wait;
    ftpool_hook after_wait;
    ftpool_hook worker_start;
    ftpool_hook worker_end;
    void *hook_arg;
    /* NULL: the process-wide allocator (see ftpool_set_allocator). */
    const ftpool_allocator *allocator;
} ftpool_options;

/* A consistent snapshot of the pool's counters. */
typedef struct ftpool_stats {
    unsigned workers;     /* workers alive, including those being started */
    unsigned busy;        /* workers running a job right now */
    size_t pending;       /* jobs in the queue, not yet started */
    size_t timers;        /* timers armed and not finished */
    uint64_t submitted;   /* jobs accepted (timer runs included) */
    uint64_t completed;   /* jobs whose fn returned */
    uint64_t dropped;     /* jobs dropped: cancelled, cleared or discarded */
} ftpool_stats;

/* ------------------------------------------------------------------------ */
/* Pool lifetime                                                            */
/* ------------------------------------------------------------------------ */

/* Creates a pool.  No worker exists until the first job is queued. */
FTPOOL_API int ftpool_create(const ftpool_options *opts, ftpool_t **pool_out);

/* Cancels all timers, drops the queued jobs, waits for running jobs and for
 * every worker to leave, and frees the pool.  Must not be called from one of
 * the pool's own workers (returns FTPOOL_EBUSY then, and does nothing). */
FTPOOL_API int ftpool_destroy(ftpool_t *pool);

/* Changes the maximum number of workers (>= 1).  Extra workers retire when
 * they finish their job; a larger maximum starts workers for queued jobs. */
FTPOOL_API int ftpool_set_max_workers(ftpool_t *pool, unsigned max_workers);
FTPOOL_API unsigned ftpool_max_workers(const ftpool_t *pool);

/* ------------------------------------------------------------------------ */
/* Jobs                                                                     */
/* ------------------------------------------------------------------------ */

enum {
    FTPOOL_FRONT = 1u << 0  /* queue at the front instead of the back */
};

/* Queues fn(arg) and stores its id in *id_out (if not NULL) before the job
 * can start.
 * FTPOOL_ESTOPPED: the pool is closed (see ftpool_close); FTPOOL_ENOMEM.
 * FTPOOL_ESPAWN: queued (the id is stored) but no worker could be started. */
FTPOOL_API int ftpool_submit(ftpool_t *pool, ftpool_fn fn, void *arg,
                             uint64_t *id_out);

/* Like ftpool_submit with flags (FTPOOL_FRONT) and a drop callback, called
 * with arg instead of fn if the job is dropped.  drop may be NULL. */
FTPOOL_API int ftpool_submit_ex(ftpool_t *pool, ftpool_fn fn, ftpool_fn drop,
                                void *arg, unsigned flags, uint64_t *id_out);

/* Removes a queued job and calls its drop callback.  FTPOOL_ENOTFOUND if the
 * job is not queued (already started, finished, or never existed). */
FTPOOL_API int ftpool_cancel(ftpool_t *pool, uint64_t job_id);

/* Removes every queued job and calls their drop callbacks, in queue order.
 * Returns how many were removed. */
FTPOOL_API size_t ftpool_cancel_all(ftpool_t *pool);

/* Calls visit(arg, id, ctx) for each queued job in queue order, with the queue
 * lock held: visit must not block, call into the pool or run user code.
 * Returns the number of jobs visited. */
FTPOOL_API size_t ftpool_foreach_queued(ftpool_t *pool,
                                        void (*visit)(void *arg, uint64_t id,
                                                      void *ctx),
                                        void *ctx);

/* Closes the pool for submissions (they return FTPOOL_ESTOPPED, timers stop
 * firing) or opens it again.  Queued jobs stay queued; running jobs go on.
 * A timer run that falls due while the pool is closed is skipped: a periodic
 * timer waits for its next due time, a one-shot timer ends (drop is called). */
FTPOOL_API void ftpool_close(ftpool_t *pool);
FTPOOL_API void ftpool_open(ftpool_t *pool);
FTPOOL_API int ftpool_is_closed(const ftpool_t *pool);

/* ------------------------------------------------------------------------ */
/* Timers                                                                   */
/* ------------------------------------------------------------------------ */

/* Current time of the engine's monotonic clock, in nanoseconds. */
FTPOOL_API int64_t ftpool_now_ns(void);

/* Arms a timer: fn(arg) is queued at the front when the timer is due, at
 * absolute monotonic time due_ns (see ftpool_now_ns); a due time in the past
 * fires at once.  interval_ns > 0 repeats it every interval_ns after the
 * previous due time (late runs do not shift later ones; a run that is still
 * queued when the next is due is not queued twice).  drop (may be NULL) is
 * called once with arg after the timer's last run or when it is cancelled:
 * for a one-shot timer that has run, drop is not called (fn owns arg).
 * The timer's id (stored in *id_out before any run can start) is also the
 * job id of its queued run, which ftpool_cancel() accepts. */
FTPOOL_API int ftpool_timer_at(ftpool_t *pool, int64_t due_ns,
                               int64_t interval_ns, ftpool_fn fn,
                               ftpool_fn drop, void *arg, uint64_t *id_out);

/* The same with a delay relative to now. */
FTPOOL_API int ftpool_timer_after(ftpool_t *pool, int64_t delay_ns,
                                  int64_t interval_ns, ftpool_fn fn,
                                  ftpool_fn drop, void *arg,
                                  uint64_t *id_out);

/* Stops a timer: no further run is queued.  A run already queued or running
 * completes; drop(arg) is called once the last one has finished (at once if
 * none is in flight).  FTPOOL_ENOTFOUND if the timer is no longer armed. */
FTPOOL_API int ftpool_timer_cancel(ftpool_t *pool, uint64_t timer_id);

/* Cancels every armed timer.  Returns how many were cancelled. */
FTPOOL_API size_t ftpool_timer_cancel_all(ftpool_t *pool);

/* ------------------------------------------------------------------------ */
/* Shutdown and waiting                                                     */
/* ------------------------------------------------------------------------ */

enum {
    /* Workers run the queue until it is empty - including jobs that running
     * jobs submit meanwhile - then exit.  Workers are started for queued
     * jobs if there are none. */
    FTPOOL_SHUTDOWN_FINISH = 0,
    /* Workers exit after their current job; queued jobs stay queued. */
    FTPOOL_SHUTDOWN_SOON = 1,
    /* Queued jobs are dropped; workers exit after their current job. */
    FTPOOL_SHUTDOWN_DROP = 2
};
enum {
    FTPOOL_SHUTDOWN_TIMERS = 1u << 4  /* flag: also cancel every timer */
};

/* Asks the workers to exit (mode, optionally | FTPOOL_SHUTDOWN_TIMERS); does
 * not wait (see ftpool_join).  The pool stays usable: from then on it starts
 * no worker by itself - timers still queue their runs - until a submission
 * finds no worker alive, which starts workers again for the whole queue. */
FTPOOL_API int ftpool_shutdown(ftpool_t *pool, unsigned how);

/* Ends a shutdown now: the pool runs again as if it had never been shut
 * down, and starts workers for the jobs left queued (after a SOON
 * shutdown, say), for later submissions and for timer runs.  Workers
 * still on their way out leave anyway.  On a running pool it changes
 * nothing.  Does not reopen a closed pool (see ftpool_open). */
FTPOOL_API int ftpool_resume(ftpool_t *pool);

/* Waits until no worker is alive.  FTPOOL_ETIMEDOUT after timeout_ns.
 * From one of the pool's own workers: FTPOOL_EBUSY (it would wait forever).
 * Like ftpool_wait_idle() it returns once that state has been reached at some
 * instant since the call, even if a timer started a worker again since. */
FTPOOL_API int ftpool_join(ftpool_t *pool, int64_t timeout_ns);

/* Waits until no job is queued or running (timers are not waited for).
 * FTPOOL_ETIMEDOUT after timeout_ns; FTPOOL_EBUSY from one of the pool's own
 * workers. */
FTPOOL_API int ftpool_wait_idle(ftpool_t *pool, int64_t timeout_ns);

/* A moment of the pool, for a wait made of several calls (in slices, to do
 * something else between them): see ftpool_join_since(). */
typedef struct ftpool_mark {
    uint64_t no_workers;        /* opaque */
    uint64_t idle;              /* opaque */
} ftpool_mark;

/* Takes a mark of the pool now. */
FTPOOL_API void ftpool_mark_now(ftpool_t *pool, ftpool_mark *out);

/* Like ftpool_join(), but returns as soon as no worker has been alive at
 * some instant since the mark was taken (now counts), even between two
 * calls. */
FTPOOL_API int ftpool_join_since(ftpool_t *pool, const ftpool_mark *since,
                                 int64_t timeout_ns);

/* Like ftpool_wait_idle(), counting from the mark as ftpool_join_since()
 * does. */
FTPOOL_API int ftpool_wait_idle_since(ftpool_t *pool,
                                      const ftpool_mark *since,
                                      int64_t timeout_ns);

/* Counters, each read without locking (a single value is exact at some
 * instant; use ftpool_stats for a consistent set). */
FTPOOL_API unsigned ftpool_workers(const ftpool_t *pool);
FTPOOL_API unsigned ftpool_busy(const ftpool_t *pool);
FTPOOL_API size_t ftpool_pending(const ftpool_t *pool);
FTPOOL_API void ftpool_get_stats(ftpool_t *pool, ftpool_stats *out);

/* ------------------------------------------------------------------------ */
/* Hosting workers in threads created elsewhere                             */
/* ------------------------------------------------------------------------ */

/* Makes the calling thread a worker of the pool until it retires (shutdown,
 * or a lowered maximum).  Call it once per successful spawn request; a call
 * that was not requested returns FTPOOL_EINVAL at once. */
FTPOOL_API int ftpool_worker_run(ftpool_t *pool);

/* The pool whose worker the calling thread is, or NULL. */
FTPOOL_API ftpool_t *ftpool_current_pool(void);

/* Called by a running job: its worker takes the next queued job as soon as
 * this one returns, so one job queued meanwhile neither starts a worker
 * nor wakes a sleeping one on its account.  For a job that, near its end,
 * wakes a thread which submits the next job at once (a caller waiting for
 * a result): without it that job would find every worker busy and start
 * one more.  Counts once per job; from a thread that is not running a job
 * of a pool it does nothing. */
FTPOOL_API void ftpool_job_returning(void);

/* ------------------------------------------------------------------------ */
/* Counting semaphore                                                       */
/* ------------------------------------------------------------------------ */

/* Creates a semaphore with `value` permits (0 <= value <= INT32_MAX). */
FTPOOL_API int ftpool_sem_create(int64_t value, ftpool_sem_t **sem_out);
FTPOOL_API void ftpool_sem_destroy(ftpool_sem_t *sem);

/* Takes one permit, waiting up to timeout_ns for one (negative: forever).
 * FTPOOL_OK or FTPOOL_ETIMEDOUT. */
FTPOOL_API int ftpool_sem_acquire(ftpool_sem_t *sem, int64_t timeout_ns);

/* Takes one permit if one is free: FTPOOL_OK, else FTPOOL_ETIMEDOUT. */
FTPOOL_API int ftpool_sem_try_acquire(ftpool_sem_t *sem);

/* Adds n permits (n >= 1), waking up to n waiters.  FTPOOL_EINVAL if the
 * count would exceed INT32_MAX. */
FTPOOL_API int ftpool_sem_release(ftpool_sem_t *sem, int64_t n);

/* Free permits right now (never negative). */
FTPOOL_API int64_t ftpool_sem_value(const ftpool_sem_t *sem);

/* ------------------------------------------------------------------------ */
/* Memory                                                                   */
/* ------------------------------------------------------------------------ */

/* Sets the process-wide allocator (NULL restores malloc/free).  Call it
 * before creating any pool or semaphore that should use it. */
FTPOOL_API void ftpool_set_allocator(const ftpool_allocator *allocator);

#ifdef __cplusplus
}
#endif

#endif /* FTPOOL_H */
