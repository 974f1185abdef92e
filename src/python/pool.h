/*
 * pool.h - names shared by the files of fastthreadpool.Pool: pool.c (the
 * type users hold), core.c (_PoolCore: settings, worker group, lifetime,
 * shutdown), results.c (where outcomes go), jobs.c, map.c, timers.c
 * (with TimerObj), callbacks.c (pool-level callback threads) and
 * ascompleted.c.
 *
 * Two objects make a pool: the Pool, which users hold, and its core
 * (_PoolCore, internal), which owns everything else.  Queued jobs, armed
 * timers and as_completed() iterators hold references to the core; worker
 * threads and the pool-level callback threads do not.  So a Pool that
 * nobody references - even one caught in a reference cycle through its own
 * results - is freed, its core follows as soon as its work is done, and
 * the core lets its worker group go, which lets the idle workers go.
 */
#ifndef FTP_POOL_H
#define FTP_POOL_H

#include "ftp.h"

/* Arguments stored in the job itself; more go to a tuple. */
#define FTP_INLINE_ARGS 4
/* Recycled job structs kept per pool: enough for the queue depth of a
 * submission burst (at most ~6 MB), so that a steady stream of jobs costs
 * no allocation, yet a one-off burst does not pin its memory forever. */
#define FTP_FREE_JOBS_MAX 65536
/* Items a map job pulls from the shared iterator at once. */
#define FTP_MAP_CHUNK 128

/* Every engine job argument of a pool starts with its kind, so that
 * Pool.jobs can tell what a queued job is. */
enum { FTP_KIND_JOB = 1, FTP_KIND_MAP = 2, FTP_KIND_TIMER = 3 };

typedef struct ftp_core ftp_core;

/* The pool's worker group (workers.c) with what its threads need of the
 * pool's settings, so that workers never touch the core: thread names are
 * prefix-N, each thread has `tnum` = N, init_callback(thread, *init_args)
 * runs before it starts and finish_callback() in it when it ends.  All
 * fixed at creation. */
typedef struct ftp_pool_workers {
    ftp_workers w;
    PyObject *init_callback;    /* callable or NULL */
    PyObject *init_args;        /* tuple */
    PyObject *finish_callback;  /* callable or NULL */
} ftp_pool_workers;

/* How failures are recorded: the entry shapes of Pool.failed (exc_stack:
 * the formatted traceback instead of the exception; result_id: with the
 * job id; exc_args: with the job's arguments).  Fixed at creation. */
typedef struct ftp_failure_format {
    int result_id, exc_stack, exc_args;
    PyObject *format_exception; /* traceback.format_exception */
    ftp_rqobject *failed;       /* where failures go */
} ftp_failure_format;

/* A plain job: fn(*args, **kwargs) with its done mode. */
typedef struct ftp_job {
    int kind;
    struct ftp_job *next;       /* free list link */
    /* The job may run and be recycled before its submitter has read its
     * id (without the GIL, or while the spawn hook starts a thread): with
     * result_id the submitter holds a reference too, and whoever drops the
     * last recycles it. */
    atomic_int refs;
    ftp_core *core;
    PyObject *fn;
    PyObject *done;             /* NULL: store, Py_False: discard, else
                                   a callable */
    PyObject *kwargs;           /* dict or NULL */
    PyObject *args;             /* tuple, when nargs > FTP_INLINE_ARGS */
    Py_ssize_t nargs;
    PyObject *argv[FTP_INLINE_ARGS];
    uint64_t id;
} ftp_job;

/* A map(): up to max_children engine jobs share one iterator. */
typedef struct ftp_map {
    int kind;
    ftp_core *core;
    atomic_long users;          /* engine jobs still holding it */
    PyObject *fn;
    PyObject *iter;
    PyObject *done;             /* as ftp_job.done */
    int unpack;                 /* -1: tuples only, 1: always, 0: never */
    int is_gen;
    atomic_int exhausted;       /* read without pull_lock */
    Py_ssize_t chunk;           /* items pulled at once */
    /* Serialises next() on the shared iterator: a Python generator must
     * not be resumed by two workers at once.  Waited on detached. */
    PyThread_type_lock pull_lock;
} ftp_map;

/* The handle of a timer: fastthreadpool.TimerObj. */
typedef struct ftp_timerobject {
    PyObject_HEAD
    PyObject *core;             /* the core that armed it, or NULL */
    uint64_t timer_id;          /* engine timer id; 0 = none */
    int kind;                   /* FTP_TIMER_LATER or FTP_TIMER_SCHEDULE */
    atomic_int active;          /* armed and not finished */
} ftp_timerobject;

enum { FTP_TIMER_LATER = 1, FTP_TIMER_SCHEDULE = 2 };

/* An armed timer: the engine job argument of its runs, linked into its
 * core's list until it finishes (next, prevp: guarded by the core's
 * timers_lock). */
typedef struct ftp_timer {
    int kind;
    ftp_core *core;
    PyObject *fn;
    PyObject *args;             /* tuple */
    PyObject *kwargs;           /* dict or NULL */
    PyObject *done;
    ftp_timerobject *handle;
    struct ftp_timer *next, **prevp;
    int oneshot;
    atomic_int fired;           /* a one-shot whose run has started */
} ftp_timer;

/* What a pool-level callback thread needs.  It owns these references and
 * holds none on the core: the core asks it to stop (stop, and one extra
 * permit on the queue's counter) and forgets it. */
typedef struct ftp_cbctx {
    ftp_rqobject *q;            /* the queue it consumes */
    PyObject *callback;         /* done/failed callback, or NULL */
    PyObject *logger;           /* failed thread without callback */
    ftp_failure_format fail;    /* for a failing done callback */
    atomic_int stop;            /* 1: exit once the queue is empty */
} ftp_cbctx;

struct ftp_core {
    PyObject_HEAD
    ftpool_t *pool;             /* the engine pool of `workers` */
    ftp_pool_workers *workers;
    PyObject *weakreflist;
    ftp_failure_format fail;
    PyObject *module;           /* keeps st valid */
    ftp_state *st;
    /* Settings (fixed after construction). */
    unsigned max_children;
    PyObject *done_callback;    /* pool-level callable or NULL */
    PyObject *failed_callback;  /* callable or NULL */
    PyObject *default_done;     /* mode of plain submit: NULL or False */
    PyObject *logger;           /* set when failures are logged */
    int result_id;
    Py_ssize_t done_max;
    /* Results. */
    ftp_rqobject *done;
    ftp_rqobject *failed;
    /* Callback threads and their contexts, [0] done, [1] failed, and
     * cb_busy (a thread is starting them): guarded by cb_lock. */
    PyObject *cbthread[2];
    ftp_cbctx *cbctx[2];
    int cb_busy;
    ftp_mutex cb_lock;
    atomic_int cb_restart;      /* restart them on the next submission */
    /* as_completed: released after every push and every finished job
     * while someone waits (notify_waiters > 0). */
    ftpool_sem_t *notify;
    atomic_int notify_waiters;
    atomic_llong inflight;      /* submitted jobs not finished/dropped */
    /* Armed timers, guarded by timers_lock. */
    ftp_timer *timers;
    ftp_mutex timers_lock;
    /* Recycled job structs, with the GIL only (the GIL guards them). */
    ftp_job *free_jobs;
    int nfree;
    atomic_int is_shutdown;
    atomic_int children_stopped; /* shutdown_children() since clear() */
};

typedef struct {
    PyObject_HEAD
    ftp_core *core;
    PyObject *weakreflist;
    /* Constructor arguments as given, for the read-only attributes. */
    PyObject *child_name_prefix;
    PyObject *init_args;
    PyObject *log_level;
} ftp_poolobject;

/* ---- core.c ------------------------------------------------------------- */

/* The settings of a new core, checked by Pool(). */
typedef struct ftp_core_config {
    unsigned max_children;
    PyObject *prefix;           /* thread name prefix (str) */
    PyObject *init_callback;    /* callable or NULL */
    PyObject *init_args;        /* tuple */
    PyObject *finish_callback;  /* callable or NULL */
    PyObject *done_callback;    /* callable or NULL */
    PyObject *failed_callback;  /* callable or NULL */
    PyObject *logger;           /* logger or NULL */
    int store_nothing;          /* done_callback=False */
    int result_id, exc_stack, exc_args;
    Py_ssize_t done_max;
} ftp_core_config;

/* A new core with its queues, worker group and callback threads. */
ftp_core *ftp_core_new(ftp_state *st, const ftp_core_config *cfg);
int ftp_core_init_type(PyObject *module, ftp_state *st);
/* Counts submitted jobs (n > 0) and finished or dropped ones (n < 0). */
void ftp_core_inflight_add(ftp_core *core, long long n);
/* A job of the core has finished or been dropped: counts it and wakes
 * as_completed(). */
void ftp_core_job_finished(ftp_core *core);
/* No job queued or running. */
int ftp_core_idle(ftp_core *core);
/* Sets the exception for an engine error code; returns -1. */
int ftp_core_raise(ftp_core *core, int rc);
/* After FTPOOL_ESPAWN: raises what stopped the worker from starting and
 * returns -1, or returns 0 if nothing did (the job runs anyway). */
int ftp_core_check_spawn(ftp_core *core);
/* Waits until the engine pool is idle, detached, in slices.  1: done, 0:
 * timed out, -1: exception, -2: called from one of its workers. */
int ftp_core_wait_idle(ftp_core *core, int64_t deadline);
/* Ends a shutdown: workers start again for what is queued and for the
 * timers' runs.  0, or -1 with the exception that kept a worker from
 * starting (init_callback). */
int ftp_core_resume(ftp_core *core);
/* shutdown(timeout, soon): 1 if everything ended in time, 0 if not, -1. */
int ftp_core_shutdown(ftp_core *core, int64_t deadline, int soon);
/* Shutdown(now) for this core.  0 or -1. */
int ftp_core_stop(ftp_core *core, int now);

/* ---- results.c ---------------------------------------------------------- */

/* Records the current exception as a failure of job `id` (0 for map items
 * and pool-level callbacks).  `args`/`kwargs` are borrowed; either may be
 * NULL, meaning () and {}.  Never leaves an exception set. */
void ftp_record_failure(const ftp_failure_format *fail, uint64_t id,
                        PyObject *args, PyObject *kwargs);
/* Hands one result (a stolen reference) to its done mode.  `args`,
 * `kwargs` and `id` describe the job for a failing callback; `wrap` adds
 * the job id (result_id). */
void ftp_deliver(ftp_core *core, PyObject *done, PyObject *value,
                 uint64_t id, int wrap, PyObject *args, PyObject *kwargs);
/* Iterates a generator job (stolen), one result per yielded value. */
void ftp_deliver_generator(ftp_core *core, PyObject *done, PyObject *gen,
                           uint64_t id, int wrap, PyObject *args,
                           PyObject *kwargs);
/* Stores a plain result (stolen) in `done`, throttled by done_max. */
void ftp_store_result(ftp_core *core, PyObject *value, uint64_t id);

/* ---- jobs.c ------------------------------------------------------------- */

/* Queues fn(*argv, **kwargs) with the done mode `done` (stolen, as is
 * kwargs): the result of submit*(), None or the job id. */
PyObject *ftp_job_submit(ftp_core *core, PyObject *fn,
                         PyObject *const *argv, Py_ssize_t nargs,
                         PyObject *kwargs, PyObject *done, unsigned flags);
/* Frees the recycled job structs of a core being freed. */
void ftp_job_free_cache(ftp_core *core);

/* ---- map.c -------------------------------------------------------------- */

/* Pool.map(fn, iterable): queues the jobs that share the iterator.  `done`
 * is stolen; unpack: -1 tuples only, 1 always, 0 never. */
PyObject *ftp_map_submit(ftp_core *core, PyObject *fn, PyObject *iterable,
                         PyObject *done, int unpack);

/* ---- timers.c ----------------------------------------------------------- */

int ftp_timer_init_type(PyObject *module, ftp_state *st);
/* Arms a timer (submit_later, schedule...): its TimerObj.  First run after
 * delay_ns, then every interval_ns if > 0.  kwargs and done are stolen. */
PyObject *ftp_timer_arm(ftp_core *core, int kind, int64_t delay_ns,
                        int64_t interval_ns, PyObject *fn,
                        PyObject *const *argv, Py_ssize_t nargs,
                        PyObject *kwargs, PyObject *done);
/* Stops a timer of the core: 1 if it was armed. */
int ftp_timer_cancel(ftp_core *core, ftp_timerobject *h);
/* _runat (time.time() seconds or a struct_time) to a delay from now. */
int ftp_timer_delay_until(PyObject *runat, int64_t *delay_ns);
/* A deque of the handles of the timers of one kind that will still run. */
PyObject *ftp_timer_handles(ftp_core *core, int kind);

/* ---- callbacks.c -------------------------------------------------------- */

/* Starts the pool-level callback threads the settings ask for.  0 / -1. */
int ftp_callbacks_start(ftp_core *core);
/* Restarts them if a shutdown stopped them.  0 or -1. */
static inline int
ftp_callbacks_check(ftp_core *core)
{
    return ftp_load_int(&core->cb_restart) ? ftp_callbacks_start(core) : 0;
}
/* Asks them to exit once their queue is drained and forgets them. */
void ftp_callbacks_stop(ftp_core *core);
/* Stops them and waits until the deadline: 1 ended, 0 not, -1. */
int ftp_callbacks_join(ftp_core *core, int64_t deadline);

/* ---- ascompleted.c ------------------------------------------------------ */

int ftp_ac_init_type(PyObject *module, ftp_state *st);
/* Pool.as_completed(wait, cnt_max). */
PyObject *ftp_ac_new(ftp_core *core, PyObject *wait, Py_ssize_t cnt_max);

#endif /* FTP_POOL_H */
