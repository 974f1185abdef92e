/*
 * poolcore.h - declarations shared by the files of the Pool machinery:
 * pool.c (the Pool type), poolcore.c (_PoolCore: jobs, workers, timers,
 * map, callback threads) and ascompleted.c (_AsCompleted).
 */
#ifndef FTP_POOLCORE_H
#define FTP_POOLCORE_H

#include "ftp.h"

/* Arguments stored in the job itself; more go to a tuple. */
#define FTP_INLINE_ARGS 4
/* Recycled job structs kept per pool: enough for the queue depth of a
 * submission burst (at most ~6 MB), so that a steady stream of jobs costs
 * no allocation, yet a one-off burst does not pin its memory forever. */
#define FTP_FREE_JOBS_MAX 65536
/* Items a map job pulls from the shared iterator at once. */
#define FTP_MAP_CHUNK 128
/* Blocking waits wake at least this often to run signal handlers. */
#define FTP_WAIT_SLICE_NS 50000000LL
/* A worker running only C-level jobs gives other threads the GIL at least
 * this often (Python-level jobs let the interpreter switch anyway). */
#define FTP_YIELD_NS 5000000LL

enum { FTP_KIND_JOB = 1, FTP_KIND_MAP = 2, FTP_KIND_TIMER = 3,
       FTP_KIND_NOP = 4 };

typedef struct ftp_core ftp_core;

/* The part of a pool that must outlive its core object: the engine pool,
 * which idle workers sleep in.  Idle workers hold no reference to the core
 * (so that a dropped Pool, even one in a reference cycle, can be freed):
 * they reach it through the shell, whose `core` is NULL once the core is
 * gone.  Freed after ftpool_destroy(). */
typedef struct ftp_shell {
    ftpool_t *pool;
    ftp_core *core;             /* guarded by the GIL */
    int dying;                  /* the core is being freed (GIL) */
    /* GIL fairness (maybe_yield_gil), guarded by the GIL: whoever holds
     * it is the only worker running jobs. */
    unsigned jobs_since_check;
    int64_t last_yield;
} ftp_shell;

/* How failures are recorded (the Part B section 9 shapes). */
typedef struct ftp_shape {
    int result_id, exc_stack, exc_args;
    PyObject *format_exception;
    ftp_rqobject *failed;
} ftp_shape;

/* What a pool-level callback thread needs.  It owns these references, so
 * it holds none on the core: the core asks it to stop (stop, and one extra
 * permit on the queue's counter) and forgets it (slot). */
typedef struct ftp_cbctx {
    ftp_rqobject *q;            /* the queue it consumes */
    PyObject *callback;         /* done/failed callback, or NULL */
    PyObject *logger;           /* failed thread without callback */
    ftp_shape shape;            /* for a failing done callback */
    atomic_int stop;            /* 1: exit once the queue is empty */
    struct ftp_cbctx **slot;    /* core's pointer to us, or NULL (GIL) */
} ftp_cbctx;

/* Every engine job argument starts with its kind (see get_jobs). */
typedef struct ftp_job {
    int kind;
    struct ftp_job *next;       /* free list link */
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

typedef struct ftp_map {
    int kind;
    ftp_core *core;
    Py_ssize_t users;           /* engine jobs still holding it (GIL) */
    PyObject *fn;
    PyObject *iter;
    PyObject *done;             /* as ftp_job.done */
    int unpack;                 /* -1: tuples only, 1: always, 0: never */
    int is_gen;
    int exhausted;
    Py_ssize_t chunk;           /* items pulled at once */
    /* Serialises next() on the shared iterator: a Python generator must
     * not be resumed by two workers at once.  Waited on with the GIL
     * released. */
    PyThread_type_lock pull_lock;
} ftp_map;

typedef struct ftp_timer {
    int kind;
    ftp_core *core;
    PyObject *fn;
    PyObject *args;             /* tuple */
    PyObject *kwargs;           /* dict or NULL */
    PyObject *done;
    ftp_timerobject *handle;
    uint64_t id;
    int oneshot;
    int fired;                  /* a one-shot whose run has started */
} ftp_timer;

struct ftp_core {
    PyObject_HEAD
    ftpool_t *pool;             /* shell->pool */
    ftp_shell *shell;
    PyObject *capsule;          /* points to the shell: worker targets */
    PyObject *weakreflist;
    ftp_shape shape;
    PyObject *module;           /* keeps st valid */
    ftp_state *st;
    /* Settings (fixed after construction). */
    unsigned max_children;
    PyObject *prefix;           /* thread name prefix actually used */
    PyObject *init_callback;    /* callable or NULL */
    PyObject *init_args;        /* tuple */
    PyObject *finish_callback;  /* callable or NULL */
    PyObject *done_callback;    /* pool-level callable or NULL */
    PyObject *failed_callback;  /* callable or NULL */
    PyObject *default_done;     /* mode of plain submit: NULL or False */
    PyObject *logger;           /* set when failures are logged */
    int result_id, exc_stack, exc_args;
    Py_ssize_t done_max;
    /* Results. */
    ftp_rqobject *done;
    ftp_rqobject *failed;
    /* Workers: the threading.Thread objects alive (guarded by the GIL). */
    PyObject *children;
    /* Workers that left `children` and whose threads may still be ending:
     * shutdown() joins them too (guarded by the GIL). */
    PyObject *ended;
    unsigned long long next_tnum;
    /* Callback threads and their contexts, [0] done, [1] failed (guarded
     * by the GIL). */
    PyObject *cbthread[2];
    ftp_cbctx *cbctx[2];
    int cb_restart;             /* restart them on the next submission */
    /* as_completed: released after every push and every finished job
     * while someone waits (notify_waiters > 0). */
    ftpool_sem_t *notify;
    atomic_int notify_waiters;
    atomic_llong inflight;      /* submitted jobs not finished/dropped */
    /* Armed timers: timer id -> TimerObj (guarded by the GIL). */
    PyObject *timers;
    /* Recycled job structs (guarded by the GIL). */
    ftp_job *free_jobs;
    int nfree;
    int is_shutdown;
    int children_stopped;       /* shutdown_children() since clear() */
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

typedef struct {
    PyObject_HEAD
    ftp_core *core;
    int started;
    int finished;
    int mode;                   /* 0: one pass, 1: until idle, 2: until
                                   the deadline */
    double wait;
    int64_t deadline;
    Py_ssize_t cnt_max;
    Py_ssize_t yielded;
} ftp_acobject;
/* Counts submitted jobs (n > 0) and finished or dropped ones (n < 0).
 * `inflight` changes only with the GIL held, which also orders it with
 * the notify_waiters handshake of as_completed(): no locked instruction
 * is needed on this per-job path. */
static inline void
core_inflight_add(ftp_core *core, long long n)
{
    long long v = atomic_load_explicit(&core->inflight,
                                       memory_order_relaxed);
    atomic_store_explicit(&core->inflight, v + n, memory_order_relaxed);
}

/* ---- poolcore.c: shared helpers ---------------------------------------- */

/* Seconds (a number) to ns, rejecting NaN and non-numbers.  0 or -1. */
int seconds_to_ns(PyObject *obj, const char *what, int64_t *out);
/* timeout=None: -1 (forever); otherwise an absolute deadline in ns. */
int parse_deadline(PyObject *timeout, int64_t *deadline);
/* ns left until the deadline (0 if past), -1 for no deadline. */
int64_t time_left(int64_t deadline);
/* inspect.isgeneratorfunction(): unwraps bound methods and partials. */
int is_generator_function(ftp_state *st, PyObject *fn);
/* Sets the exception for an engine error code; returns -1. */
int raise_engine_error(ftp_core *core, int rc);
/* Removes the threading.Thread objects that have ended from the list
 * `threads`.  is_alive() runs Python code, during which other threads may
 * change the list: works on a copy and removes by identity.  0 or -1. */
int forget_ended_threads(PyObject *threads);

/* ---- poolcore.c: the core ----------------------------------------------- */

int ftp_core_init_type(PyObject *module, ftp_state *st);
/* Creates the shell and the engine pool of a new core.  0 or -1. */
int core_start_engine(ftp_core *core);
int core_start_callbacks(ftp_core *core);
/* Restarts the callback threads if a shutdown stopped them.  0 or -1. */
int core_check_callbacks(ftp_core *core);
/* Queues fn(*argv, **kwargs) with the done mode `done` (stolen, as is
 * kwargs): the result of submit*(), None or the job id. */
PyObject *core_submit(ftp_core *core, PyObject *fn, PyObject *const *argv,
                      Py_ssize_t nargs, PyObject *kwargs, PyObject *done,
                      unsigned flags);
/* Arms a timer (submit_later, schedule...): its TimerObj. */
PyObject *core_timer(ftp_core *core, int kind, int64_t delay_ns,
                     int64_t interval_ns, PyObject *fn,
                     PyObject *const *argv, Py_ssize_t nargs,
                     PyObject *kwargs, PyObject *done);
/* The positional arguments of a queued job as a new tuple. */
PyObject *job_args_tuple(ftp_job *job);
/* Engine entry points of the jobs of a map() and the release of its
 * shared state. */
void map_run(void *arg);
void map_drop(void *arg);
void map_release(ftp_map *m);
/* Runs an engine wait with the GIL released, in slices.  1: done,
 * 0: timed out, -1: exception, -2: called from one of its workers. */
int core_wait(ftp_core *core, int (*waitfn)(ftpool_t *, int64_t),
              int64_t deadline);
/* No job queued or running. */
int core_idle(ftp_core *core);
/* Restarts the workers after a shutdown, for the timers.  0 or -1. */
int core_kick(ftp_core *core);
/* shutdown(timeout, soon): 1 if everything ended in time, 0 if not, -1. */
int core_shutdown(ftp_core *core, int64_t deadline, int soon);

/* ---- ascompleted.c ------------------------------------------------------ */

int ftp_ac_init_type(PyObject *module, ftp_state *st);

#endif /* FTP_POOLCORE_H */
