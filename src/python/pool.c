/*
 * pool.c - fastthreadpool.Pool on the engine.
 *
 * Two objects make a pool:
 *
 * - the Pool, which users hold.  It owns
 * - the core (_PoolCore, internal): the settings, the result queues, the
 *   worker list and the timers, and through its shell (ftp_shell) the
 *   engine pool.  Queued jobs, armed timers and as_completed() iterators
 *   hold references to the core; idle workers and the pool-level callback
 *   threads do not.  So a Pool that nobody references - even one caught in
 *   a reference cycle through its own results - is freed, its core
 *   follows as soon as its work is done, and the core's dealloc destroys
 *   the engine pool, which lets the idle workers go (D9).
 *
 * Workers are threading.Thread objects whose target calls
 * ftpool_worker_run().  A worker holds the GIL while it runs jobs and lets
 * it go only in the engine's before_wait hook, just before it sleeps; the
 * after_wait hook takes it back.  Engine locks are never held while the
 * GIL is requested (the engine calls no hook with a lock held), and the
 * GIL is never released while submitting, except when a new worker thread
 * is started.
 *
 * A submitted job is a small C struct (ftp_job) recycled through a free
 * list, holding strong references to the callable, its arguments and its
 * done mode until it has run or been dropped.
 */
#include "ftp.h"

#include <math.h>
#include <string.h>

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

/* The argument of the no-op job that restarts the engine (see clear()). */
static int ftp_nop_arg = FTP_KIND_NOP;

static void
nop_run(void *arg)
{
    (void)arg;
}

typedef struct ftp_core ftp_core;

/* The allocator the engine uses for this pool.  The engine recycles a few
 * thousand queue nodes itself; a burst of submissions queues tens of
 * thousands (one GIL switch interval's worth), and malloc/free for each
 * of them cost about a fifth of a tiny job.  Small blocks are therefore
 * recycled here too, up to FTP_BLOCKS_MAX (a few MB), behind a spin lock
 * (held for a few loads and stores; never with the GIL requested). */
#define FTP_BLOCK_SIZE 64
#define FTP_BLOCKS_MAX 65536

typedef struct ftp_blockcache {
    ftpool_allocator allocator;     /* what the engine is given */
    atomic_flag lock;               /* guards free_blocks, nfree */
    void *free_blocks;
    size_t nfree;
} ftp_blockcache;

/* Every block starts with a header saying whether it is a small one; the
 * header keeps the 16-byte alignment malloc gives. */
#define FTP_BLOCK_HEADER 16

static void *
cache_alloc(size_t size, void *ctx)
{
    ftp_blockcache *c = ctx;
    char *p = NULL;

    if (size <= FTP_BLOCK_SIZE) {
        while (atomic_flag_test_and_set_explicit(&c->lock,
                                                 memory_order_acquire)) {
        }
        if (c->free_blocks != NULL) {
            p = c->free_blocks;
            c->free_blocks = *(void **)p;
            c->nfree--;
        }
        atomic_flag_clear_explicit(&c->lock, memory_order_release);
        if (p == NULL) {
            p = PyMem_RawMalloc(FTP_BLOCK_HEADER + FTP_BLOCK_SIZE);
            if (p == NULL) {
                return NULL;
            }
        }
        *(size_t *)p = 1;   /* the free-list link overwrote it */
        return p + FTP_BLOCK_HEADER;
    }
    p = PyMem_RawMalloc(FTP_BLOCK_HEADER + size);
    if (p == NULL) {
        return NULL;
    }
    *(size_t *)p = 0;
    return p + FTP_BLOCK_HEADER;
}

static void
cache_free(void *ptr, void *ctx)
{
    ftp_blockcache *c = ctx;
    char *p;

    if (ptr == NULL) {
        return;
    }
    p = (char *)ptr - FTP_BLOCK_HEADER;
    if (*(size_t *)p == 1) {
        while (atomic_flag_test_and_set_explicit(&c->lock,
                                                 memory_order_acquire)) {
        }
        if (c->nfree < FTP_BLOCKS_MAX) {
            *(void **)p = c->free_blocks;
            c->free_blocks = p;
            c->nfree++;
            p = NULL;
        }
        atomic_flag_clear_explicit(&c->lock, memory_order_release);
        if (p == NULL) {
            return;
        }
    }
    PyMem_RawFree(p);
}

static void
cache_init(ftp_blockcache *c)
{
    c->allocator.alloc = cache_alloc;
    c->allocator.free = cache_free;
    c->allocator.ctx = c;
    atomic_flag_clear(&c->lock);
    c->free_blocks = NULL;
    c->nfree = 0;
}

/* After ftpool_destroy(): gives the cached blocks back. */
static void
cache_fini(ftp_blockcache *c)
{
    while (c->free_blocks != NULL) {
        void *p = c->free_blocks;
        c->free_blocks = *(void **)p;
        PyMem_RawFree(p);
    }
    c->nfree = 0;
}

/* The part of a pool that must outlive its core object: the engine pool,
 * which idle workers sleep in.  Idle workers hold no reference to the core
 * (so that a dropped Pool, even one in a reference cycle, can be freed):
 * they reach it through the shell, whose `core` is NULL once the core is
 * gone.  Freed after ftpool_destroy(). */
typedef struct ftp_shell {
    ftpool_t *pool;
    ftp_core *core;             /* guarded by the GIL */
    int dying;                  /* the core is being freed (GIL) */
    ftp_blockcache cache;       /* the engine's allocator */
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

/* ------------------------------------------------------------------------ */
/* GIL hooks                                                                */
/* ------------------------------------------------------------------------ */

/* The thread state a sleeping worker gave up (one per worker thread). */
static FTP_THREAD_LOCAL PyThreadState *tls_tstate;
/* Set while a drop callback or the spawn hook runs: the core must not be
 * destroyed there, since the engine may be calling from its own timer
 * thread. */
static FTP_THREAD_LOCAL int tls_in_drop;

static void
hook_before_wait(void *arg)
{
    tls_tstate = PyEval_SaveThread();
}

static void
hook_after_wait(void *arg)
{
    ftp_shell *shell = arg;

    PyEval_RestoreThread(tls_tstate);
    shell->last_yield = ftpool_now_ns();
}

/* Called after each job: lets other threads run if the workers have held
 * the GIL for a while without the interpreter switching (jobs that are C
 * functions never give the interpreter a chance to). */
static inline void
maybe_yield_gil(ftp_shell *shell)
{
    if ((++shell->jobs_since_check & 63) == 0) {
        int64_t now = ftpool_now_ns();
        if (now - shell->last_yield >= FTP_YIELD_NS) {
            PyThreadState *ts = PyEval_SaveThread();
            PyEval_RestoreThread(ts);
            shell->last_yield = now;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static inline void
job_finished(ftp_core *core)
{
    atomic_fetch_sub(&core->inflight, 1);
    ftp_notify(core->notify, &core->notify_waiters);
}

/* inspect.isgeneratorfunction(): unwraps bound methods and partials. */
static int
is_generator_function(ftp_state *st, PyObject *fn)
{
    PyObject *held = NULL;
    int r = 0;

    if (PyFunction_Check(fn)) {
        /* The common case, without the subtype checks below. */
        PyCodeObject *code = (PyCodeObject *)PyFunction_GET_CODE(fn);
        return (code->co_flags & CO_GENERATOR) != 0;
    }

    for (int depth = 0; depth < 16; depth++) {
        if (PyMethod_Check(fn)) {
            fn = PyMethod_GET_FUNCTION(fn);
        }
        else if (PyObject_TypeCheck(fn,
                                    (PyTypeObject *)st->partial_type)) {
            PyObject *inner = PyObject_GetAttrString(fn, "func");
            Py_XDECREF(held);
            held = inner;
            if (inner == NULL) {
                PyErr_Clear();
                break;
            }
            fn = inner;
        }
        else {
            break;
        }
    }
    if (PyFunction_Check(fn)) {
        PyCodeObject *code = (PyCodeObject *)PyFunction_GET_CODE(fn);
        r = (code->co_flags & CO_GENERATOR) != 0;
    }
    Py_XDECREF(held);
    return r;
}

/* Converts a number of seconds to ns, rejecting NaN and non-numbers. */
static int
seconds_to_ns(PyObject *obj, const char *what, int64_t *out)
{
    double s;

    if (!PyFloat_Check(obj) && !PyLong_Check(obj)
            && !PyIndex_Check(obj)
            && Py_TYPE(obj)->tp_as_number == NULL) {
        PyErr_Format(PyExc_TypeError, "%s must be a number, not '%.100s'",
                     what, Py_TYPE(obj)->tp_name);
        return -1;
    }
    s = PyFloat_AsDouble(obj);
    if (s == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    if (isnan(s)) {
        PyErr_Format(PyExc_ValueError, "%s must not be NaN", what);
        return -1;
    }
    if (s > 9.2e9 || s < -9.2e9) {
        PyErr_Format(PyExc_ValueError, "%s is out of range", what);
        return -1;
    }
    *out = (int64_t)(s * FTP_NS_PER_SEC);
    return 0;
}

/* timeout=None: -1 (forever); otherwise an absolute deadline in ns. */
static int
parse_deadline(PyObject *timeout, int64_t *deadline)
{
    int64_t ns;

    if (timeout == NULL || timeout == Py_None) {
        *deadline = -1;
        return 0;
    }
    if (seconds_to_ns(timeout, "timeout", &ns) < 0) {
        return -1;
    }
    if (ns < 0) {
        ns = 0;
    }
    *deadline = ftpool_now_ns() + ns;
    return 0;
}

static int64_t
time_left(int64_t deadline)
{
    int64_t left;

    if (deadline < 0) {
        return -1;
    }
    left = deadline - ftpool_now_ns();
    return left > 0 ? left : 0;
}

/* Runs an engine wait (join or wait_idle) with the GIL released, in slices
 * so that signal handlers run.  1: done, 0: timed out, -1: exception,
 * -2: called from one of the pool's own workers. */
static int
core_wait(ftp_core *core, int (*waitfn)(ftpool_t *, int64_t),
          int64_t deadline)
{
    for (;;) {
        int64_t left = time_left(deadline), slice = FTP_WAIT_SLICE_NS;
        int rc;

        if (left >= 0 && left < slice) {
            slice = left;
        }
        Py_BEGIN_ALLOW_THREADS
        rc = waitfn(core->pool, slice);
        Py_END_ALLOW_THREADS
        if (rc == FTPOOL_OK) {
            return 1;
        }
        if (rc == FTPOOL_EBUSY) {
            return -2;
        }
        if (PyErr_CheckSignals() < 0) {
            return -1;
        }
        if (deadline >= 0 && ftpool_now_ns() >= deadline) {
            return 0;
        }
    }
}

/* Sleeps about ms milliseconds with the GIL released (portable: a timed
 * wait on a lock that is never released). */
static void
ftp_nap_ms(int ms)
{
    PyThread_type_lock lock = PyThread_allocate_lock();

    if (lock == NULL) {
        return;
    }
    PyThread_acquire_lock(lock, NOWAIT_LOCK);
    Py_BEGIN_ALLOW_THREADS
    PyThread_acquire_lock_timed(lock, (PY_TIMEOUT_T)ms * 1000, 0);
    Py_END_ALLOW_THREADS
    PyThread_release_lock(lock);
    PyThread_free_lock(lock);
}

/* Joins a threading.Thread until the deadline.  1: it ended, 0: it did
 * not, -1: exception. */
static int
join_thread(ftp_core *core, PyObject *thread, int64_t deadline)
{
    PyObject *r, *alive;
    int is_alive;

    for (;;) {
        int64_t left = time_left(deadline);
        if (left < 0) {
            r = PyObject_CallMethodObjArgs(thread, core->st->str_join, NULL);
        }
        else {
            PyObject *t = PyFloat_FromDouble((double)left / FTP_NS_PER_SEC);
            if (t == NULL) {
                return -1;
            }
            r = PyObject_CallMethodObjArgs(thread, core->st->str_join, t,
                                           NULL);
            Py_DECREF(t);
        }
        if (r != NULL) {
            break;
        }
        /* A worker is listed in `children` just before its start(): if
         * another thread is inside that start(), join() refuses ("cannot
         * join thread before it is started") for a moment. */
        if (!PyErr_ExceptionMatches(PyExc_RuntimeError)
                || (deadline >= 0 && ftpool_now_ns() >= deadline)) {
            return -1;
        }
        PyErr_Clear();
        ftp_nap_ms(1);
    }
    Py_DECREF(r);
    alive = PyObject_CallMethod(thread, "is_alive", NULL);
    if (alive == NULL) {
        return -1;
    }
    is_alive = PyObject_IsTrue(alive);
    Py_DECREF(alive);
    return is_alive < 0 ? -1 : !is_alive;
}

/* ------------------------------------------------------------------------ */
/* Results and failures                                                     */
/* ------------------------------------------------------------------------ */

/* Records the current exception as a failure of job `id` (0 for map items
 * and pool-level callbacks).  `args`/`kwargs` are borrowed; either may be
 * NULL, meaning () and {}.  Never leaves an exception set. */
static void
record_failure(const ftp_shape *sh, uint64_t id, PyObject *args,
               PyObject *kwargs)
{
    PyObject *type, *value, *tb, *e, *entry = NULL;

    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value == NULL) {
        value = Py_NewRef(Py_None);
    }
    if (tb != NULL && PyExceptionInstance_Check(value)) {
        PyException_SetTraceback(value, tb);
    }
    if (sh->exc_stack) {
        PyObject *lines, *sep;
        lines = PyObject_CallFunctionObjArgs(
            sh->format_exception, type ? type : Py_None, value,
            tb ? tb : Py_None, NULL);
        sep = PyUnicode_FromString("");
        e = (lines && sep) ? PyUnicode_Join(sep, lines) : NULL;
        Py_XDECREF(lines);
        Py_XDECREF(sep);
        if (e == NULL) {
            PyErr_Clear();
            e = PyObject_Str(value);
            if (e == NULL) {
                PyErr_Clear();
                e = Py_NewRef(value);
            }
        }
    }
    else {
        e = Py_NewRef(value);
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    if (!sh->result_id && !sh->exc_args) {
        entry = e;
    }
    else {
        PyObject *a = NULL, *k = NULL, *jid = NULL;
        if (sh->exc_args) {
            a = args ? Py_NewRef(args) : PyTuple_New(0);
            k = kwargs ? PyDict_Copy(kwargs) : PyDict_New();
        }
        if (sh->result_id) {
            jid = PyLong_FromUnsignedLongLong(id);
        }
        if (sh->result_id && sh->exc_args) {
            entry = (a && k && jid) ? PyTuple_Pack(4, jid, e, a, k) : NULL;
        }
        else if (sh->result_id) {
            entry = jid ? PyTuple_Pack(2, jid, e) : NULL;
        }
        else {
            entry = (a && k) ? PyTuple_Pack(3, e, a, k) : NULL;
        }
        Py_XDECREF(a);
        Py_XDECREF(k);
        Py_XDECREF(jid);
        Py_DECREF(e);
    }
    if (entry == NULL || ftp_rq_push(sh->failed, entry) < 0) {
        PyErr_WriteUnraisable(NULL);
    }
}

/* Hands one result (a stolen reference) to its done mode.  `args`,
 * `kwargs` and `id` describe the job for a failing callback; `wrap` adds
 * the job id (result_id). */
static void
deliver(ftp_core *core, PyObject *done, PyObject *value, uint64_t id,
        int wrap, PyObject *args, PyObject *kwargs)
{
    if (done == NULL) {
        PyObject *entry = value;
        if (wrap) {
            PyObject *jid = PyLong_FromUnsignedLongLong(id);
            entry = jid ? PyTuple_Pack(2, jid, value) : NULL;
            Py_XDECREF(jid);
            Py_DECREF(value);
            if (entry == NULL) {
                record_failure(&core->shape, id, args, kwargs);
                return;
            }
        }
        if (ftp_rq_push(core->done, entry) < 0) {
            record_failure(&core->shape, id, args, kwargs);
            return;
        }
        if (core->done_max > 0) {
            ftp_rq_throttle(core->done);
        }
    }
    else if (done == Py_False) {
        Py_DECREF(value);
    }
    else {
        PyObject *r = PyObject_CallOneArg(done, value);
        Py_DECREF(value);
        if (r == NULL) {
            record_failure(&core->shape, id, args, kwargs);
        }
        else {
            Py_DECREF(r);
        }
    }
}

/* Iterates a generator job, one result per yielded value. */
static void
deliver_generator(ftp_core *core, PyObject *done, PyObject *gen,
                  uint64_t id, int wrap, PyObject *args, PyObject *kwargs)
{
    PyObject *it = PyObject_GetIter(gen), *v;

    Py_DECREF(gen);
    if (it == NULL) {
        record_failure(&core->shape, id, args, kwargs);
        return;
    }
    while ((v = PyIter_Next(it)) != NULL) {
        deliver(core, done, v, id, wrap, args, kwargs);
    }
    if (PyErr_Occurred()) {
        record_failure(&core->shape, id, args, kwargs);
    }
    Py_DECREF(it);
}

/* ------------------------------------------------------------------------ */
/* Jobs                                                                     */
/* ------------------------------------------------------------------------ */

static ftp_job *
job_alloc(ftp_core *core)
{
    ftp_job *job = core->free_jobs;

    if (job != NULL) {
        core->free_jobs = job->next;
        core->nfree--;
        return job;
    }
    job = PyMem_RawMalloc(sizeof(ftp_job));
    if (job == NULL) {
        PyErr_NoMemory();
    }
    return job;
}

/* Drops the job's references and recycles it (GIL held). */
static void
job_release(ftp_job *job)
{
    ftp_core *core = job->core;
    PyObject *fn = job->fn, *done = job->done, *kwargs = job->kwargs;
    PyObject *args = job->args;
    Py_ssize_t n = args ? 0 : job->nargs;
    PyObject *argv[FTP_INLINE_ARGS];

    for (Py_ssize_t i = 0; i < n; i++) {
        argv[i] = job->argv[i];
    }
    /* Recycle first: the references dropped below may run code that
     * submits again. */
    if (core->nfree < FTP_FREE_JOBS_MAX) {
        job->next = core->free_jobs;
        core->free_jobs = job;
        core->nfree++;
    }
    else {
        PyMem_RawFree(job);
    }
    Py_DECREF(fn);
    Py_XDECREF(done);
    Py_XDECREF(kwargs);
    Py_XDECREF(args);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_DECREF(argv[i]);
    }
    /* Last: this may free the core (and the free list). */
    Py_DECREF(core);
}

static inline PyObject *const *
job_argv(ftp_job *job)
{
    return job->args ? &PyTuple_GET_ITEM(job->args, 0) : job->argv;
}

/* The job's positional arguments as a new tuple. */
static PyObject *
job_args_tuple(ftp_job *job)
{
    PyObject *t;

    if (job->args != NULL) {
        return Py_NewRef(job->args);
    }
    t = PyTuple_New(job->nargs);
    if (t == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < job->nargs; i++) {
        PyTuple_SET_ITEM(t, i, Py_NewRef(job->argv[i]));
    }
    return t;
}

static void
job_run(void *arg)
{
    ftp_job *job = arg;
    ftp_core *core = job->core;
    ftp_shell *shell = core->shell;
    PyObject *r;
    int gen;

    r = PyObject_VectorcallDict(job->fn, job_argv(job), job->nargs,
                                job->kwargs);
    gen = r != NULL && is_generator_function(core->st, job->fn);
    if (r != NULL && !gen && job->done == NULL) {
        /* The common case: store the result. */
        deliver(core, NULL, r, job->id, core->result_id, NULL, NULL);
    }
    else {
        /* The other paths may need the arguments as a tuple. */
        PyObject *args = job_args_tuple(job);
        if (args == NULL) {
            PyErr_Clear();
            args = PyTuple_New(0);
        }
        if (r == NULL) {
            record_failure(&core->shape, job->id, args, job->kwargs);
        }
        else if (gen) {
            deliver_generator(core, job->done, r, job->id, core->result_id,
                              args, job->kwargs);
        }
        else {
            deliver(core, job->done, r, job->id, core->result_id, args,
                    job->kwargs);
        }
        Py_XDECREF(args);
    }
    job_finished(core);
    job_release(job);           /* may free the core, not the shell */
    maybe_yield_gil(shell);
}

static void
job_drop(void *arg)
{
    ftp_job *job = arg;
    ftp_core *core = job->core;
    PyGILState_STATE gs;

    if (!PyGILState_Check() && ftp_is_finalizing()) {
        return;     /* the interpreter is gone: leak rather than crash */
    }
    gs = PyGILState_Ensure();
    tls_in_drop++;
    job_finished(core);
    job_release(job);
    tls_in_drop--;
    PyGILState_Release(gs);
}

/* ------------------------------------------------------------------------ */
/* Workers                                                                  */
/* ------------------------------------------------------------------------ */

static PyObject *
call_with_kwargs(PyObject *callable, PyObject *kw)
{
    PyObject *empty = PyTuple_New(0), *r;

    if (empty == NULL) {
        return NULL;
    }
    r = PyObject_Call(callable, empty, kw);
    Py_DECREF(empty);
    return r;
}

/* The target of every worker Thread, bound to the core's capsule (which
 * points to the shell).  It holds no reference to the core. */
static PyObject *
worker_main(PyObject *capsule, PyObject *unused)
{
    ftp_shell *shell = PyCapsule_GetPointer(capsule, NULL);

    if (shell == NULL) {
        return NULL;
    }
    shell->last_yield = ftpool_now_ns();
    ftpool_worker_run(shell->pool);
    /* The shell may be freed from here on: touch nothing. */
    Py_RETURN_NONE;
}

/* Engine hook, in the worker thread, GIL held, just before the worker
 * stops counting: finish_callback, and the Thread leaves `children`. */
static void
hook_worker_end(void *arg)
{
    ftp_shell *shell = arg;
    ftp_core *core = shell->core;
    PyObject *me, *exc_t, *exc_v, *exc_tb;

    if (core == NULL) {
        return;     /* the pool is gone: nobody to report to */
    }
    PyErr_Fetch(&exc_t, &exc_v, &exc_tb);
    if (core->finish_callback != NULL) {
        PyObject *r = PyObject_CallNoArgs(core->finish_callback);
        if (r == NULL) {
            PyErr_WriteUnraisable(core->finish_callback);
        }
        Py_XDECREF(r);
    }
    me = PyObject_CallNoArgs(core->st->current_thread);
    if (me != NULL && core->children != NULL) {
        Py_ssize_t n = PyList_GET_SIZE(core->children);
        for (Py_ssize_t i = 0; i < n; i++) {
            if (PyList_GET_ITEM(core->children, i) == me) {
                PySequence_DelItem(core->children, i);
                break;
            }
        }
    }
    Py_XDECREF(me);
    PyErr_Clear();
    PyErr_Restore(exc_t, exc_v, exc_tb);
}

static PyMethodDef worker_main_def = {
    "_worker", (PyCFunction)worker_main, METH_NOARGS, NULL
};

/* Creates, initialises and starts one worker Thread.  0 or -1. */
static int
core_start_worker(ftp_core *core)
{
    ftp_state *st = core->st;
    PyObject *target, *name, *kw, *t, *tnum, *r;
    unsigned long long n = core->next_tnum++;

    if (core->children == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the pool is being freed");
        return -1;
    }
    target = PyCFunction_New(&worker_main_def, core->capsule);
    if (target == NULL) {
        return -1;
    }
    name = PyUnicode_FromFormat("%U-%llu", core->prefix, n);
    kw = name ? Py_BuildValue("{sOsOsO}", "target", target, "name", name,
                              "daemon", Py_True) : NULL;
    Py_DECREF(target);
    Py_XDECREF(name);
    if (kw == NULL) {
        return -1;
    }
    t = call_with_kwargs(st->thread_type, kw);
    Py_DECREF(kw);
    if (t == NULL) {
        return -1;
    }
    tnum = PyLong_FromUnsignedLongLong(n);
    if (tnum == NULL || PyObject_SetAttr(t, st->str_tnum, tnum) < 0) {
        Py_XDECREF(tnum);
        Py_DECREF(t);
        return -1;
    }
    Py_DECREF(tnum);
    if (core->init_callback != NULL) {
        PyObject *args = PyTuple_New(1 + PyTuple_GET_SIZE(core->init_args));
        if (args == NULL) {
            Py_DECREF(t);
            return -1;
        }
        PyTuple_SET_ITEM(args, 0, Py_NewRef(t));
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(core->init_args); i++) {
            PyTuple_SET_ITEM(args, i + 1,
                             Py_NewRef(PyTuple_GET_ITEM(core->init_args, i)));
        }
        r = PyObject_Call(core->init_callback, args, NULL);
        Py_DECREF(args);
        if (r == NULL) {
            Py_DECREF(t);
            return -1;
        }
        Py_DECREF(r);
    }
    if (PyList_Append(core->children, t) < 0) {
        Py_DECREF(t);
        return -1;
    }
    r = PyObject_CallMethodObjArgs(t, st->str_start, NULL);
    if (r == NULL) {
        Py_ssize_t i = PyList_GET_SIZE(core->children) - 1;
        PyObject *exc_t, *exc_v, *exc_tb;
        PyErr_Fetch(&exc_t, &exc_v, &exc_tb);
        if (i >= 0 && PyList_GET_ITEM(core->children, i) == t) {
            PySequence_DelItem(core->children, i);
        }
        PyErr_Restore(exc_t, exc_v, exc_tb);
        Py_DECREF(t);
        return -1;
    }
    Py_DECREF(r);
    Py_DECREF(t);
    return 0;
}

/* The engine asks for one more worker: in the submitting thread (which
 * holds the GIL), or in the engine's timer thread (which does not). */
static int
core_spawn(ftpool_t *pool, void *arg)
{
    ftp_shell *shell = arg;
    PyGILState_STATE gs = PyGILState_LOCKED;
    int have_gil = PyGILState_Check();
    int rc = -1;

    if (!have_gil) {
        if (ftp_is_finalizing()) {
            return -1;
        }
        gs = PyGILState_Ensure();
    }
    if (shell->core != NULL && !shell->dying) {
        /* A job is queued, and it holds a reference: the core lives. */
        ftp_core *core = (ftp_core *)Py_NewRef((PyObject *)shell->core);
        rc = core_start_worker(core);
        if (rc < 0 && !have_gil) {
            /* Nobody to raise to in the timer thread. */
            PyErr_WriteUnraisable((PyObject *)core);
        }
        /* This may be the last reference (the job already ran in another
         * worker), maybe in the engine's timer thread: the core must then
         * leave the engine's destruction to the main thread. */
        tls_in_drop++;
        Py_DECREF(core);
        tls_in_drop--;
    }
    if (!have_gil) {
        PyGILState_Release(gs);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Pool-level callback threads (ThreadPoolDone / ThreadPoolFailed)          */
/* ------------------------------------------------------------------------ */

static void
log_failure(ftp_cbctx *ctx, PyObject *entry)
{
    PyObject *e = entry, *r;

    if (PyTuple_Check(entry) && PyTuple_GET_SIZE(entry) >= 2) {
        e = PyTuple_GET_ITEM(entry, ctx->shape.result_id ? 1 : 0);
    }
    if (PyExceptionInstance_Check(e)) {
        PyObject *kw = Py_BuildValue("{sO}", "exc_info", e);
        PyObject *meth = PyObject_GetAttrString(ctx->logger, "error");
        PyObject *args = Py_BuildValue("(sO)", "Job failed: %r", e);
        r = (kw && meth && args) ? PyObject_Call(meth, args, kw) : NULL;
        Py_XDECREF(kw);
        Py_XDECREF(meth);
        Py_XDECREF(args);
    }
    else {
        r = PyObject_CallMethod(ctx->logger, "error", "sO", "%s", e);
    }
    if (r == NULL) {
        PyErr_WriteUnraisable(ctx->logger);
    }
    Py_XDECREF(r);
}

static void
run_pool_callback(ftp_cbctx *ctx, int failed, PyObject *item)
{
    if (ctx->callback != NULL) {
        PyObject *r = PyObject_CallOneArg(ctx->callback, item);
        if (r == NULL) {
            if (!failed) {
                /* As in 1.8: a failing done callback is recorded as a
                 * failure of job 0. */
                record_failure(&ctx->shape, 0, NULL, NULL);
            }
            else {
                PyErr_WriteUnraisable(ctx->callback);
            }
        }
        Py_XDECREF(r);
    }
    else if (ctx->logger != NULL) {
        log_failure(ctx, item);
    }
}

static void
cbctx_free(ftp_cbctx *ctx)
{
    Py_XDECREF(ctx->q);
    Py_XDECREF(ctx->callback);
    Py_XDECREF(ctx->logger);
    Py_XDECREF(ctx->shape.failed);
    Py_XDECREF(ctx->shape.format_exception);
    PyMem_RawFree(ctx);
}

static PyObject *
callback_thread_main(PyObject *capsule, PyObject *arg)
{
    ftp_cbctx *ctx = PyCapsule_GetPointer(capsule, NULL);
    int failed = PyObject_IsTrue(arg);
    ftpool_sem_t *sem;

    if (ctx == NULL) {
        return NULL;
    }
    sem = ftp_rq_counter(ctx->q);
    for (;;) {
        PyObject *item;

        if (ftpool_sem_try_acquire(sem) != FTPOOL_OK) {
            Py_BEGIN_ALLOW_THREADS
            /* Woken by a push, or by the extra permit of a stop request
             * (cbctx_stop). */
            ftpool_sem_acquire(sem, -1);
            Py_END_ALLOW_THREADS
        }
        item = ftp_rq_popleft_counted(ctx->q);
        if (item != NULL) {
            run_pool_callback(ctx, failed, item);
            Py_DECREF(item);
            continue;
        }
        if (atomic_load(&ctx->stop)) {
            break;
        }
    }
    if (ctx->slot != NULL) {
        *ctx->slot = NULL;
    }
    cbctx_free(ctx);
    Py_RETURN_NONE;
}

static PyMethodDef cb_main_def = {
    "_callback_thread", (PyCFunction)callback_thread_main, METH_O, NULL
};

/* Starts one callback thread.  0 or -1. */
static int
start_callback_thread(ftp_core *core, int failed)
{
    static const char *names[2] = {"ThreadPoolDone", "ThreadPoolFailed"};
    ftp_cbctx *ctx;
    PyObject *capsule, *target, *kw, *t, *r, *args;

    ctx = PyMem_RawCalloc(1, sizeof(*ctx));
    if (ctx == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    ctx->q = (ftp_rqobject *)Py_NewRef(
        (PyObject *)(failed ? core->failed : core->done));
    ctx->callback = Py_XNewRef(failed ? core->failed_callback
                                      : core->done_callback);
    ctx->logger = failed ? Py_XNewRef(core->logger) : NULL;
    ctx->shape = core->shape;
    Py_INCREF(ctx->shape.failed);
    Py_INCREF(ctx->shape.format_exception);
    atomic_init(&ctx->stop, 0);
    capsule = PyCapsule_New(ctx, NULL, NULL);
    if (capsule == NULL) {
        cbctx_free(ctx);
        return -1;
    }
    target = PyCFunction_New(&cb_main_def, capsule);
    Py_DECREF(capsule);
    if (target == NULL) {
        cbctx_free(ctx);
        return -1;
    }
    args = Py_BuildValue("(O)", failed ? Py_True : Py_False);
    kw = args ? Py_BuildValue("{sOsOsssO}", "target", target, "args", args,
                              "name", names[failed], "daemon", Py_True)
              : NULL;
    Py_DECREF(target);
    Py_XDECREF(args);
    if (kw == NULL) {
        cbctx_free(ctx);
        return -1;
    }
    t = call_with_kwargs(core->st->thread_type, kw);
    Py_DECREF(kw);
    if (t == NULL) {
        cbctx_free(ctx);
        return -1;
    }
    r = PyObject_CallMethodObjArgs(t, core->st->str_start, NULL);
    if (r == NULL) {
        Py_DECREF(t);
        cbctx_free(ctx);
        return -1;
    }
    Py_DECREF(r);
    /* From here on the thread owns ctx. */
    ctx->slot = &core->cbctx[failed];
    core->cbctx[failed] = ctx;
    Py_XSETREF(core->cbthread[failed], t);
    return 0;
}

static int
core_start_callbacks(ftp_core *core)
{
    core->cb_restart = 0;
    if (core->done_callback != NULL && core->cbctx[0] == NULL
            && start_callback_thread(core, 0) < 0) {
        return -1;
    }
    if ((core->failed_callback != NULL || core->logger != NULL)
            && core->cbctx[1] == NULL
            && start_callback_thread(core, 1) < 0) {
        return -1;
    }
    return 0;
}

/* Asks the callback threads to exit once their queue is drained, and
 * forgets them (they free their own context). */
static void
core_stop_callbacks(ftp_core *core)
{
    for (int i = 0; i < 2; i++) {
        ftp_cbctx *ctx = core->cbctx[i];
        if (ctx != NULL) {
            ctx->slot = NULL;
            core->cbctx[i] = NULL;
            atomic_store(&ctx->stop, 1);
            ftpool_sem_release(ftp_rq_counter(ctx->q), 1);
        }
    }
}

/* Stops the callback threads and waits for them until the deadline. */
static int
core_join_callbacks(ftp_core *core, int64_t deadline)
{
    if (core->cbthread[0] == NULL && core->cbthread[1] == NULL) {
        return 1;
    }
    core_stop_callbacks(core);
    for (int i = 0; i < 2; i++) {
        PyObject *t = core->cbthread[i];
        int rc;
        if (t == NULL) {
            continue;
        }
        Py_INCREF(t);
        rc = join_thread(core, t, deadline);
        if (rc == 1 && core->cbthread[i] == t) {
            Py_CLEAR(core->cbthread[i]);
        }
        Py_DECREF(t);
        if (rc <= 0) {
            return rc;
        }
    }
    core->cb_restart = 1;
    return 1;
}

static inline int
core_check_callbacks(ftp_core *core)
{
    if (core->cb_restart) {
        return core_start_callbacks(core);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The core object                                                          */
/* ------------------------------------------------------------------------ */

static int
core_traverse(ftp_core *core, visitproc visit, void *arg)
{
    Py_VISIT(core->module);
    Py_VISIT(core->capsule);
    Py_VISIT(core->prefix);
    Py_VISIT(core->init_callback);
    Py_VISIT(core->init_args);
    Py_VISIT(core->finish_callback);
    Py_VISIT(core->done_callback);
    Py_VISIT(core->failed_callback);
    Py_VISIT(core->logger);
    Py_VISIT(core->done);
    Py_VISIT(core->failed);
    Py_VISIT(core->children);
    Py_VISIT(core->cbthread[0]);
    Py_VISIT(core->cbthread[1]);
    Py_VISIT(core->timers);
    Py_VISIT(Py_TYPE(core));
    return 0;
}

static int
core_clear(ftp_core *core)
{
    /* Only the references that can form cycles through user objects; the
     * queues stay valid until dealloc. */
    Py_CLEAR(core->init_callback);
    Py_CLEAR(core->finish_callback);
    Py_CLEAR(core->children);
    Py_CLEAR(core->cbthread[0]);
    Py_CLEAR(core->cbthread[1]);
    Py_CLEAR(core->timers);
    return 0;
}

/* Pending call: destroys an engine pool whose core died in a place where
 * that was not possible (see core_dealloc). */
static int
shell_destroy_later(void *arg)
{
    ftp_shell *shell = arg;

    Py_BEGIN_ALLOW_THREADS
    ftpool_destroy(shell->pool);
    Py_END_ALLOW_THREADS
    cache_fini(&shell->cache);
    PyMem_RawFree(shell);
    return 0;
}

static void
core_dealloc(ftp_core *core)
{
    PyTypeObject *tp = Py_TYPE(core);
    ftp_shell *shell = core->shell;

    PyObject_GC_UnTrack(core);
    if (core->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)core);
    }
    core_stop_callbacks(core);
    if (shell != NULL) {
        shell->dying = 1;
    }
    if (shell != NULL && shell->pool != NULL) {
        if (tls_in_drop || ftpool_current_pool() == shell->pool) {
            /* The last reference went away in one of our workers (its
             * last job) or in a drop callback, maybe in the engine's timer
             * thread: ftpool_destroy() cannot run there.  The main thread
             * does it soon; until then workers see no core. */
            shell->core = NULL;
            if (Py_AddPendingCall(shell_destroy_later, shell) < 0) {
                /* Interpreter going away: leak the idle engine. */
            }
        }
        else {
            /* Idle workers run hook_worker_end (which uses the core, still
             * intact) while the engine winds down: release the GIL. */
            Py_BEGIN_ALLOW_THREADS
            ftpool_destroy(shell->pool);
            Py_END_ALLOW_THREADS
            cache_fini(&shell->cache);
            PyMem_RawFree(shell);
        }
    }
    else if (shell != NULL) {
        cache_fini(&shell->cache);
        PyMem_RawFree(shell);
    }
    core->pool = NULL;
    core->shell = NULL;
    while (core->free_jobs != NULL) {
        ftp_job *j = core->free_jobs;
        core->free_jobs = j->next;
        PyMem_RawFree(j);
    }
    if (core->notify != NULL) {
        ftpool_sem_destroy(core->notify);
    }
    core_clear(core);
    Py_CLEAR(core->capsule);
    Py_CLEAR(core->prefix);
    Py_CLEAR(core->init_args);
    Py_CLEAR(core->done_callback);
    Py_CLEAR(core->failed_callback);
    Py_CLEAR(core->default_done);
    Py_CLEAR(core->logger);
    Py_CLEAR(core->done);
    Py_CLEAR(core->failed);
    Py_CLEAR(core->module);
    tp->tp_free((PyObject *)core);
    Py_DECREF(tp);
}

static PyMemberDef core_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(struct ftp_core, weakreflist),
     READONLY, NULL},
    {NULL, 0, 0, 0, NULL}
};

static PyType_Slot core_slots[] = {
    {Py_tp_dealloc, core_dealloc},
    {Py_tp_members, core_members},
    {Py_tp_traverse, core_traverse},
    {Py_tp_clear, core_clear},
    {0, NULL}
};

static PyType_Spec core_spec = {
    .name = "fastthreadpool._PoolCore",
    .basicsize = sizeof(struct ftp_core),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = core_slots,
};

/* ------------------------------------------------------------------------ */
/* Submission                                                               */
/* ------------------------------------------------------------------------ */

static int
raise_engine_error(ftp_core *core, int rc)
{
    if (rc == FTPOOL_ESTOPPED) {
        PyErr_SetString(core->st->PoolStopped, "Pool not running");
    }
    else if (rc == FTPOOL_ENOMEM) {
        PyErr_NoMemory();
    }
    else {
        PyErr_Format(PyExc_RuntimeError, "fastthreadpool: %s",
                     ftpool_strerror(rc));
    }
    return -1;
}

/* Validates a done_callback argument: True/None -> NULL (store), False ->
 * Py_False (discard), a callable -> itself.  New reference or NULL. */
static int
parse_done(PyObject *cb, PyObject **out)
{
    if (cb == Py_True || cb == Py_None) {
        *out = NULL;
        return 0;
    }
    if (cb == Py_False) {
        *out = Py_NewRef(Py_False);
        return 0;
    }
    if (PyCallable_Check(cb)) {
        *out = Py_NewRef(cb);
        return 0;
    }
    PyErr_Format(PyExc_TypeError,
                 "done_callback must be True, False, None or a callable, "
                 "not '%.100s'", Py_TYPE(cb)->tp_name);
    return -1;
}

/* Splits a vectorcall argument list into the leading named parameters
 * (fn, done_callback, delay...) and the job's own arguments.  `names`
 * lists the leading parameters; `lead` receives them (borrowed).  The job
 * arguments are args[*pos_start:nargs] plus the remaining keywords, which
 * go to a new dict in *kwargs (or NULL). */
static int
split_args(const char *func, const char *const *names, int nnames,
           PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
           PyObject **lead, Py_ssize_t *pos_start, PyObject **kwargs)
{
    Py_ssize_t npos = nargs < nnames ? nargs : nnames;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;

    for (int i = 0; i < nnames; i++) {
        lead[i] = i < npos ? args[i] : NULL;
    }
    *pos_start = npos;
    *kwargs = NULL;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        int taken = 0;
        for (int i = 0; i < nnames; i++) {
            if (PyUnicode_CompareWithASCIIString(key, names[i]) == 0) {
                if (lead[i] != NULL) {
                    PyErr_Format(PyExc_TypeError,
                                 "%s() got multiple values for argument "
                                 "'%s'", func, names[i]);
                    Py_CLEAR(*kwargs);
                    return -1;
                }
                if (nargs > npos) {
                    /* A keyword for an early parameter while later ones
                     * were passed positionally: ambiguous, as in
                     * Python. */
                    PyErr_Format(PyExc_TypeError,
                                 "%s() got multiple values for argument "
                                 "'%s'", func, names[i]);
                    Py_CLEAR(*kwargs);
                    return -1;
                }
                lead[i] = args[nargs + k];
                taken = 1;
                break;
            }
        }
        if (!taken) {
            if (*kwargs == NULL && (*kwargs = PyDict_New()) == NULL) {
                return -1;
            }
            if (PyDict_SetItem(*kwargs, key, args[nargs + k]) < 0) {
                Py_CLEAR(*kwargs);
                return -1;
            }
        }
    }
    for (int i = 0; i < nnames; i++) {
        if (lead[i] == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() missing required argument '%s'", func,
                         names[i]);
            Py_CLEAR(*kwargs);
            return -1;
        }
    }
    return 0;
}

/* Queues fn(*args, **kwargs) with the given done mode (a new reference,
 * stolen) and flags.  Returns the result of submit*(): None or the id. */
static PyObject *
core_submit(ftp_core *core, PyObject *fn, PyObject *const *argv,
            Py_ssize_t nargs, PyObject *kwargs, PyObject *done,
            unsigned flags)
{
    ftp_job *job;
    int rc;

    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "fn must be callable, not '%.100s'",
                     Py_TYPE(fn)->tp_name);
        goto fail;
    }
    if (core->cb_restart && core_check_callbacks(core) < 0) {
        goto fail;
    }
    job = job_alloc(core);
    if (job == NULL) {
        goto fail;
    }
    job->kind = FTP_KIND_JOB;
    job->core = (ftp_core *)Py_NewRef((PyObject *)core);
    job->fn = Py_NewRef(fn);
    job->done = done;
    job->kwargs = kwargs;
    job->nargs = nargs;
    if (nargs <= FTP_INLINE_ARGS) {
        job->args = NULL;
        for (Py_ssize_t i = 0; i < nargs; i++) {
            job->argv[i] = Py_NewRef(argv[i]);
        }
    }
    else {
        job->args = PyTuple_New(nargs);
        if (job->args == NULL) {
            job->nargs = 0;
            job_release(job);
            return NULL;
        }
        for (Py_ssize_t i = 0; i < nargs; i++) {
            PyTuple_SET_ITEM(job->args, i, Py_NewRef(argv[i]));
        }
    }
    job->id = 0;
    atomic_fetch_add(&core->inflight, 1);
    rc = ftpool_submit_ex(core->pool, job_run, job_drop, job, flags,
                          &job->id);
    if (rc == FTPOOL_OK || rc == FTPOOL_ESPAWN) {
        /* The GIL we hold keeps the job from running (and being recycled)
         * before its id is read. */
        uint64_t id = job->id;
        if (rc == FTPOOL_ESPAWN && PyErr_Occurred()) {
            /* init_callback (or Thread.start) failed: the job stays
             * queued, the exception goes to the caller. */
            return NULL;
        }
        if (core->result_id) {
            return PyLong_FromUnsignedLongLong(id);
        }
        Py_RETURN_NONE;
    }
    atomic_fetch_sub(&core->inflight, 1);
    job_release(job);
    raise_engine_error(core, rc);
    return NULL;

fail:
    Py_XDECREF(done);
    Py_XDECREF(kwargs);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Timers                                                                   */
/* ------------------------------------------------------------------------ */

/* The timer will not run again: forget its handle and free it (GIL). */
static void
timer_finish(ftp_timer *t)
{
    ftp_core *core = t->core;
    ftp_timerobject *h = t->handle;

    h->active = 0;
    h->timer = NULL;
    if (core->timers != NULL) {
        PyObject *key = PyLong_FromUnsignedLongLong(t->id);
        if (key == NULL || PyDict_DelItem(core->timers, key) < 0) {
            PyErr_Clear();
        }
        Py_XDECREF(key);
    }
    Py_DECREF(t->fn);
    Py_XDECREF(t->args);
    Py_XDECREF(t->kwargs);
    Py_XDECREF(t->done);
    Py_DECREF(h);
    PyMem_RawFree(t);
    Py_DECREF(core);    /* last: may free the core */
}

static void
timer_fire(void *arg)
{
    ftp_timer *t = arg;
    ftp_core *core = t->core;
    ftp_shell *shell = core->shell;
    PyObject *r;

    t->fired = 1;
    if (core->cb_restart && core_check_callbacks(core) < 0) {
        /* A timer run after shutdown(): its result still goes to the
         * pool-level callbacks, which shutdown() had stopped. */
        PyErr_WriteUnraisable((PyObject *)core);
    }
    r = PyObject_Call(t->fn, t->args, t->kwargs);
    if (r == NULL) {
        record_failure(&core->shape, t->id, t->args, t->kwargs);
    }
    else if (is_generator_function(core->st, t->fn)) {
        deliver_generator(core, t->done, r, t->id, core->result_id,
                          t->args, t->kwargs);
    }
    else {
        deliver(core, t->done, r, t->id, core->result_id, t->args,
                t->kwargs);
    }
    ftp_notify(core->notify, &core->notify_waiters);
    if (t->oneshot) {
        timer_finish(t);        /* may free the core, not the shell */
    }
    maybe_yield_gil(shell);
}

static void
timer_drop(void *arg)
{
    PyGILState_STATE gs;

    if (!PyGILState_Check() && ftp_is_finalizing()) {
        return;
    }
    gs = PyGILState_Ensure();
    tls_in_drop++;
    timer_finish(arg);
    tls_in_drop--;
    PyGILState_Release(gs);
}

int
ftp_core_cancel_timer(PyObject *obj, ftp_timerobject *h)
{
    ftp_core *core = (ftp_core *)obj;

    if (core->pool == NULL || !h->active) {
        return 0;
    }
    if (ftpool_timer_cancel(core->pool, h->timer_id) != FTPOOL_OK) {
        return 0;
    }
    /* No further run: inactive now, even if a run already queued or
     * running keeps the record until it ends. */
    h->active = 0;
    return 1;
}

/* Arms a timer for fn(*args, **kwargs): first run after delay_ns, then
 * every interval_ns if > 0.  done is stolen, kwargs stolen. */
static PyObject *
core_timer(ftp_core *core, int kind, int64_t delay_ns, int64_t interval_ns,
           PyObject *fn, PyObject *const *argv, Py_ssize_t nargs,
           PyObject *kwargs, PyObject *done)
{
    ftp_timer *t = NULL;
    ftp_timerobject *h = NULL;
    PyObject *args = NULL, *key;
    int rc;

    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "fn must be callable, not '%.100s'",
                     Py_TYPE(fn)->tp_name);
        goto fail;
    }
    if (core->cb_restart && core_check_callbacks(core) < 0) {
        goto fail;
    }
    args = PyTuple_New(nargs);
    if (args == NULL) {
        goto fail;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyTuple_SET_ITEM(args, i, Py_NewRef(argv[i]));
    }
    h = ftp_timer_new(core->st, (PyObject *)core, kind);
    t = PyMem_RawMalloc(sizeof(*t));
    if (h == NULL || t == NULL) {
        if (t == NULL) {
            PyErr_NoMemory();
        }
        goto fail;
    }
    t->kind = FTP_KIND_TIMER;
    t->core = (ftp_core *)Py_NewRef((PyObject *)core);
    t->fn = Py_NewRef(fn);
    t->args = args;
    t->kwargs = kwargs;
    t->done = done;
    t->handle = h;
    t->oneshot = interval_ns <= 0;
    t->fired = 0;
    t->id = 0;
    if (delay_ns < 0) {
        delay_ns = 0;
    }
    rc = ftpool_timer_after(core->pool, delay_ns,
                            interval_ns > 0 ? interval_ns : 0,
                            timer_fire, timer_drop, t, &t->id);
    if (rc != FTPOOL_OK) {
        Py_DECREF(t->fn);
        Py_DECREF(t->core);
        PyMem_RawFree(t);
        t = NULL;
        raise_engine_error(core, rc);
        goto fail;
    }
    /* The GIL keeps the timer's job from running before this point. */
    h->timer_id = t->id;
    h->active = 1;
    h->timer = t;
    key = PyLong_FromUnsignedLongLong(t->id);
    if (key == NULL || PyDict_SetItem(core->timers, key,
                                      (PyObject *)h) < 0) {
        Py_XDECREF(key);
        ftpool_timer_cancel(core->pool, t->id);
        return NULL;
    }
    Py_DECREF(key);
    return Py_NewRef((PyObject *)h);    /* t->handle keeps its own */

fail:
    if (t != NULL) {
        PyMem_RawFree(t);
    }
    Py_XDECREF(h);
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    Py_XDECREF(done);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* map                                                                      */
/* ------------------------------------------------------------------------ */

static void
map_release(ftp_map *m)
{
    ftp_core *core;

    if (--m->users > 0) {
        return;
    }
    Py_DECREF(m->fn);
    Py_DECREF(m->iter);
    Py_XDECREF(m->done);
    PyThread_free_lock(m->pull_lock);
    core = m->core;
    PyMem_RawFree(m);
    Py_DECREF(core);    /* last: may free the core */
}

/* Pulls up to `max` items; sets m->exhausted at the end.  The iterator's
 * own errors are recorded as a failure of the map (job id 0). */
static Py_ssize_t
map_pull(ftp_map *m, PyObject **items, Py_ssize_t max)
{
    Py_ssize_t n = 0;

    if (!PyThread_acquire_lock(m->pull_lock, NOWAIT_LOCK)) {
        Py_BEGIN_ALLOW_THREADS
        /* Another worker is inside next(); it unlocks when its chunk is
         * pulled. */
        PyThread_acquire_lock(m->pull_lock, WAIT_LOCK);
        Py_END_ALLOW_THREADS
    }
    while (n < max && !m->exhausted) {
        PyObject *item = PyIter_Next(m->iter);
        if (item == NULL) {
            m->exhausted = 1;
            if (PyErr_Occurred()) {
                record_failure(&m->core->shape, 0, NULL, NULL);
            }
            break;
        }
        items[n++] = item;
    }
    PyThread_release_lock(m->pull_lock);
    return n;
}

static inline PyObject *
map_call(ftp_map *m, PyObject *item)
{
    if (PyTuple_Check(item) && m->unpack != 0) {
        return PyObject_Vectorcall(m->fn, &PyTuple_GET_ITEM(item, 0),
                                   PyTuple_GET_SIZE(item), NULL);
    }
    if (m->unpack == 1) {
        PyObject *t = PySequence_Tuple(item), *r;
        if (t == NULL) {
            return NULL;
        }
        r = PyObject_Vectorcall(m->fn, &PyTuple_GET_ITEM(t, 0),
                                PyTuple_GET_SIZE(t), NULL);
        Py_DECREF(t);
        return r;
    }
    return PyObject_Vectorcall(m->fn, &item, 1, NULL);
}

static void
map_run(void *arg)
{
    ftp_map *m = arg;
    ftp_core *core = m->core;
    PyObject *items[FTP_MAP_CHUNK], *out[FTP_MAP_CHUNK];
    int batch = m->done == NULL && core->done_max <= 0 && !m->is_gen;

    while (!m->exhausted && !ftpool_is_closed(core->pool)) {
        Py_ssize_t n = map_pull(m, items, m->chunk), nout = 0;

        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *item = items[i], *r = map_call(m, item);
            if (r == NULL) {
                record_failure(&core->shape, 0, item, NULL);
            }
            else if (batch) {
                out[nout++] = r;
            }
            else if (m->is_gen) {
                deliver_generator(core, m->done, r, 0, 0, item, NULL);
            }
            else {
                deliver(core, m->done, r, 0, 0, item, NULL);
            }
            Py_DECREF(item);
        }
        if (nout > 0 && ftp_rq_push_many(core->done, out, nout) < 0) {
            PyErr_WriteUnraisable((PyObject *)core);
        }
        maybe_yield_gil(core->shell);
    }
    job_finished(core);
    map_release(m);
}

static void
map_drop(void *arg)
{
    ftp_map *m = arg;
    ftp_core *core = m->core;
    PyGILState_STATE gs;

    if (!PyGILState_Check() && ftp_is_finalizing()) {
        return;
    }
    gs = PyGILState_Ensure();
    tls_in_drop++;
    job_finished(core);
    map_release(m);
    tls_in_drop--;
    PyGILState_Release(gs);
}

/* ------------------------------------------------------------------------ */
/* Pool object                                                              */
/* ------------------------------------------------------------------------ */

static int
setup_logger(ftp_state *st, long level, PyObject **out)
{
    PyObject *logging = NULL, *logger = NULL, *r = NULL;

    if (st->logger == NULL) {
        PyObject *handler = NULL, *fmt = NULL;
        logging = PyImport_ImportModule("logging");
        if (logging == NULL) {
            return -1;
        }
        logger = PyObject_CallMethod(logging, "getLogger", "s",
                                     FTP_LOGGER_NAME);
        if (logger != NULL) {
            handler = PyObject_CallMethod(logging, "StreamHandler", NULL);
            fmt = PyObject_CallMethod(logging, "Formatter", "s",
                                      FTP_DEFAULT_LOGGING_FORMAT);
        }
        if (handler != NULL && fmt != NULL) {
            r = PyObject_CallMethod(handler, "setFormatter", "O", fmt);
            Py_XDECREF(r);
            r = r ? PyObject_CallMethod(logger, "addHandler", "O", handler)
                  : NULL;
            Py_XDECREF(r);
        }
        Py_XDECREF(handler);
        Py_XDECREF(fmt);
        Py_DECREF(logging);
        if (r == NULL
                || PyObject_SetAttrString(logger, "propagate",
                                          Py_False) < 0) {
            Py_XDECREF(logger);
            return -1;
        }
        /* One handler for every pool: duplicates would repeat lines. */
        st->logger = logger;
    }
    r = PyObject_CallMethod(st->logger, "setLevel", "l", level);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    *out = Py_NewRef(st->logger);
    return 0;
}

static long
cpu_count(void)
{
    PyObject *os = PyImport_ImportModule("os"), *r;
    long n = 1;

    if (os == NULL) {
        PyErr_Clear();
        return 1;
    }
    r = PyObject_CallMethod(os, "cpu_count", NULL);
    Py_DECREF(os);
    if (r != NULL && r != Py_None) {
        n = PyLong_AsLong(r);
    }
    Py_XDECREF(r);
    PyErr_Clear();
    return n > 0 ? n : 1;
}

static int
as_long(PyObject *o, const char *what, long *out)
{
    PyObject *n;

    if (PyFloat_Check(o)) {
        n = PyNumber_Long(o);   /* truncates, like the original C int */
    }
    else {
        n = PyNumber_Index(o);
    }
    if (n == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Format(PyExc_TypeError, "%s must be an integer", what);
        }
        return -1;
    }
    *out = PyLong_AsLong(n);
    Py_DECREF(n);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static PyObject *
pool_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {
        "max_children", "child_name_prefix", "init_callback", "init_args",
        "finish_callback", "done_callback", "failed_callback", "log_level",
        "result_id", "exc_stack", "exc_args", "done_max", NULL};
    ftp_state *st = ftp_state_from_type(type);
    PyObject *max_children = NULL, *prefix = Py_None, *init_cb = Py_None;
    PyObject *init_args = Py_None, *finish_cb = Py_None, *done_cb = Py_None;
    PyObject *failed_cb = Py_None, *log_level = NULL;
    int result_id = 0, exc_stack = 0, exc_args = 0;
    PyObject *done_max_obj = NULL;
    long maxc = -9999, level = 0, done_max = 0;
    ftp_poolobject *self = NULL;
    ftp_core *core = NULL;
    PyObject *cnt, *r;
    ftpool_options opts;
    int rc;

    if (st == NULL) {
        return NULL;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOOOOOOOpppO:Pool",
                                     kwlist, &max_children, &prefix,
                                     &init_cb, &init_args, &finish_cb,
                                     &done_cb, &failed_cb, &log_level,
                                     &result_id, &exc_stack, &exc_args,
                                     &done_max_obj)) {
        return NULL;
    }
    if (max_children != NULL && max_children != Py_None
            && as_long(max_children, "max_children", &maxc) < 0) {
        return NULL;
    }
    if (maxc <= -9999) {
        maxc = cpu_count();
    }
    else if (maxc <= 0) {
        maxc = cpu_count() + maxc;
    }
    if (maxc <= 0) {
        PyErr_SetString(PyExc_ValueError,
                        "Number of child threads must be greater than 0");
        return NULL;
    }
    if (maxc > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "max_children is too large");
        return NULL;
    }
    if (log_level != NULL && log_level != Py_None
            && as_long(log_level, "log_level", &level) < 0) {
        return NULL;
    }
    if (done_max_obj != NULL && done_max_obj != Py_None
            && as_long(done_max_obj, "done_max", &done_max) < 0) {
        return NULL;
    }
    if (done_max < 0) {
        PyErr_SetString(PyExc_ValueError, "done_max must not be negative");
        return NULL;
    }
    if (prefix != Py_None && !PyUnicode_Check(prefix)) {
        PyErr_SetString(PyExc_TypeError,
                        "child_name_prefix must be a str or None");
        return NULL;
    }
    if (init_cb != Py_None && !PyCallable_Check(init_cb)) {
        PyErr_SetString(PyExc_TypeError,
                        "init_callback must be callable or None");
        return NULL;
    }
    if (failed_cb != Py_None && failed_cb != Py_False
            && !PyCallable_Check(failed_cb)) {
        PyErr_SetString(PyExc_TypeError,
                        "failed_callback must be callable or None");
        return NULL;
    }

    self = (ftp_poolobject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    core = PyObject_GC_New(ftp_core, st->core_type);
    if (core == NULL) {
        goto error;
    }
    /* Zero everything after the object header before anything can fail. */
    memset((char *)core + sizeof(PyObject), 0,
           sizeof(*core) - sizeof(PyObject));
    self->core = core;
    core->module = Py_NewRef(PyType_GetModule(st->core_type));
    core->st = st;
    core->max_children = (unsigned)maxc;
    core->result_id = result_id;
    core->exc_stack = exc_stack;
    core->exc_args = exc_args;
    core->done_max = done_max > 0 ? done_max : 0;
    atomic_init(&core->notify_waiters, 0);
    atomic_init(&core->inflight, 0);
    PyObject_GC_Track(core);

    self->child_name_prefix = Py_NewRef(prefix);
    self->log_level = PyLong_FromLong(level);
    if (self->log_level == NULL) {
        goto error;
    }
    if (prefix == Py_None || PyUnicode_GET_LENGTH(prefix) == 0) {
        core->prefix = PyUnicode_FromFormat("ThreadPool%zu",
                                            (size_t)(uintptr_t)self);
    }
    else {
        core->prefix = Py_NewRef(prefix);
    }
    if (core->prefix == NULL) {
        goto error;
    }
    if (init_cb != Py_None) {
        core->init_callback = Py_NewRef(init_cb);
    }
    if (init_args == Py_None) {
        core->init_args = PyTuple_New(0);
        self->init_args = Py_NewRef(core->init_args);
    }
    else {
        core->init_args = PySequence_Tuple(init_args);
        self->init_args = Py_NewRef(init_args);
    }
    if (core->init_args == NULL) {
        goto error;
    }
    if (finish_cb != Py_None && PyCallable_Check(finish_cb)) {
        core->finish_callback = Py_NewRef(finish_cb);
    }
    if (done_cb == Py_False) {
        core->default_done = Py_NewRef(Py_False);
    }
    else if (done_cb != Py_None && PyCallable_Check(done_cb)) {
        core->done_callback = Py_NewRef(done_cb);
    }
    if (failed_cb != Py_None && failed_cb != Py_False) {
        core->failed_callback = Py_NewRef(failed_cb);
    }
    else if (level > 0 && setup_logger(st, level, &core->logger) < 0) {
        goto error;
    }
    core->children = PyList_New(0);
    core->timers = PyDict_New();
    if (core->children == NULL || core->timers == NULL) {
        goto error;
    }
    cnt = ftp_semaphore_new(st, 0);
    if (cnt == NULL) {
        goto error;
    }
    core->done = ftp_rq_new(st, cnt);
    Py_DECREF(cnt);
    cnt = ftp_semaphore_new(st, 0);
    if (cnt == NULL) {
        goto error;
    }
    core->failed = ftp_rq_new(st, cnt);
    Py_DECREF(cnt);
    if (core->done == NULL || core->failed == NULL) {
        goto error;
    }
    if (ftpool_sem_create(0, &core->notify) != FTPOOL_OK) {
        PyErr_NoMemory();
        goto error;
    }
    ftp_rq_set_notify(core->done, core->notify, &core->notify_waiters);
    ftp_rq_set_notify(core->failed, core->notify, &core->notify_waiters);
    ftp_rq_set_limit(core->done, core->done_max);
    core->shape.result_id = result_id;
    core->shape.exc_stack = exc_stack;
    core->shape.exc_args = exc_args;
    core->shape.format_exception = st->format_exception;
    core->shape.failed = core->failed;

    core->shell = PyMem_RawCalloc(1, sizeof(ftp_shell));
    if (core->shell == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    core->shell->core = core;
    cache_init(&core->shell->cache);
    core->capsule = PyCapsule_New(core->shell, NULL, NULL);
    if (core->capsule == NULL) {
        goto error;
    }
    memset(&opts, 0, sizeof(opts));
    opts.max_workers = core->max_children;
    opts.spawn = core_spawn;
    opts.spawn_arg = core->shell;
    opts.before_wait = hook_before_wait;
    opts.after_wait = hook_after_wait;
    opts.worker_end = hook_worker_end;
    opts.hook_arg = core->shell;
    opts.allocator = &core->shell->cache.allocator;
    rc = ftpool_create(&opts, &core->shell->pool);
    if (rc != FTPOOL_OK) {
        core->shell->pool = NULL;
        raise_engine_error(core, rc);
        goto error;
    }
    core->pool = core->shell->pool;
    if (core_start_callbacks(core) < 0) {
        goto error;
    }
    r = PyObject_CallMethod(st->weakset, "add", "O", (PyObject *)core);
    if (r == NULL) {
        goto error;
    }
    Py_DECREF(r);
    return (PyObject *)self;

error:
    Py_XDECREF(self);
    return NULL;
}

/* Shared by dealloc and tp_clear: lets the core wind down on its own. */
static void
pool_release_core(ftp_poolobject *self)
{
    ftp_core *core = self->core;

    if (core == NULL) {
        return;
    }
    self->core = NULL;
    if (core->pool != NULL) {
        /* Nobody can consume results any more: no done_max throttling.
         * Queued jobs and armed timers hold the core until they have run;
         * then the core's dealloc destroys the engine pool, which lets the
         * idle workers go (D9). */
        ftp_rq_unthrottle(core->done, 1);
    }
    Py_DECREF(core);
}

static int
pool_traverse(ftp_poolobject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->core);
    Py_VISIT(self->child_name_prefix);
    Py_VISIT(self->init_args);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int
pool_clear(ftp_poolobject *self)
{
    pool_release_core(self);
    Py_CLEAR(self->child_name_prefix);
    Py_CLEAR(self->init_args);
    Py_CLEAR(self->log_level);
    return 0;
}

static void
pool_dealloc(ftp_poolobject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    pool_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static inline ftp_core *
pool_core(ftp_poolobject *self)
{
    if (self->core == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the Pool has been cleared");
    }
    return self->core;
}

/* ---- submit family ------------------------------------------------------ */

static const char *const names_fn[] = {"fn"};
static const char *const names_fn_done[] = {"fn", "done_callback"};
static const char *const names_delay_fn[] = {"delay", "fn"};
static const char *const names_delay_fn_done[] = {"delay", "fn",
                                                  "done_callback"};
static const char *const names_interval_fn[] = {"interval", "fn"};
static const char *const names_interval_fn_done[] = {"interval", "fn",
                                                     "done_callback"};
static const char *const names_at_fn[] = {"_runat", "interval", "fn"};
static const char *const names_at_fn_done[] = {"_runat", "interval", "fn",
                                               "done_callback"};

static PyObject *
pool_submit(ftp_poolobject *self, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    ftp_core *core = self->core;
    PyObject *lead[1], *kwargs;
    Py_ssize_t start;

    if (core == NULL) {
        return (PyObject *)pool_core(self);
    }
    /* Fast path: submit(fn, *args). */
    if (kwnames == NULL && nargs >= 1) {
        return core_submit(core, args[0], args + 1, nargs - 1, NULL,
                           Py_XNewRef(core->default_done), 0);
    }
    if (split_args("submit", names_fn, 1, args, nargs, kwnames, lead,
                   &start, &kwargs) < 0) {
        return NULL;
    }
    return core_submit(core, lead[0], args + start, nargs - start, kwargs,
                       Py_XNewRef(core->default_done), 0);
}

static PyObject *
submit_done_common(ftp_poolobject *self, const char *name,
                   PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames, unsigned flags)
{
    ftp_core *core = pool_core(self);
    PyObject *lead[2], *kwargs, *done;
    Py_ssize_t start;

    if (core == NULL) {
        return NULL;
    }
    if (split_args(name, names_fn_done, 2, args, nargs, kwnames, lead,
                   &start, &kwargs) < 0) {
        return NULL;
    }
    if (parse_done(lead[1], &done) < 0) {
        Py_XDECREF(kwargs);
        return NULL;
    }
    return core_submit(core, lead[0], args + start, nargs - start, kwargs,
                       done, flags);
}

static PyObject *
pool_submit_done(ftp_poolobject *self, PyObject *const *args,
                 Py_ssize_t nargs, PyObject *kwnames)
{
    return submit_done_common(self, "submit_done", args, nargs, kwnames, 0);
}

static PyObject *
pool_submit_first(ftp_poolobject *self, PyObject *const *args,
                  Py_ssize_t nargs, PyObject *kwnames)
{
    ftp_core *core = pool_core(self);
    PyObject *lead[1], *kwargs;
    Py_ssize_t start;

    if (core == NULL) {
        return NULL;
    }
    if (split_args("submit_first", names_fn, 1, args, nargs, kwnames, lead,
                   &start, &kwargs) < 0) {
        return NULL;
    }
    /* submit_first always stores, as in the original. */
    return core_submit(core, lead[0], args + start, nargs - start, kwargs,
                       NULL, FTPOOL_FRONT);
}

static PyObject *
pool_submit_done_first(ftp_poolobject *self, PyObject *const *args,
                       Py_ssize_t nargs, PyObject *kwnames)
{
    return submit_done_common(self, "submit_done_first", args, nargs,
                              kwnames, FTPOOL_FRONT);
}

/* The timer-based entry points share one parser: `nlead` leading
 * parameters, the last ones being fn and (if has_done) done_callback. */
static PyObject *
timer_common(ftp_poolobject *self, const char *name,
             const char *const *names, int nlead, int has_done, int what,
             PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    ftp_core *core = pool_core(self);
    PyObject *lead[4], *kwargs, *done = NULL, *fn;
    Py_ssize_t start;
    int64_t delay = 0, interval = 0;
    int kind = FTP_TIMER_SCHEDULE;

    if (core == NULL) {
        return NULL;
    }
    if (split_args(name, names, nlead, args, nargs, kwnames, lead, &start,
                   &kwargs) < 0) {
        return NULL;
    }
    fn = lead[what == 2 ? 2 : 1];
    if (has_done && parse_done(lead[nlead - 1], &done) < 0) {
        goto fail;
    }
    if (what == 0) {            /* submit_later(delay, fn) */
        kind = FTP_TIMER_LATER;
        if (seconds_to_ns(lead[0], "delay", &delay) < 0) {
            goto fail;
        }
    }
    else if (what == 1) {       /* schedule(interval, fn) */
        if (seconds_to_ns(lead[0], "interval", &interval) < 0) {
            goto fail;
        }
        delay = interval > 0 ? interval : 0;
    }
    else {                      /* submit_at(_runat, interval, fn) */
        PyObject *runat = lead[0], *tm, *v;
        double at, now_wall, now_mono;
        tm = PyImport_ImportModule("time");
        if (tm == NULL) {
            goto fail;
        }
        if (PyTuple_Check(runat) && !PyFloat_Check(runat)) {
            /* time.struct_time (or a 9-tuple): local time. */
            PyObject *mktime = PyUnicode_FromString("mktime");
            v = mktime ? PyObject_CallMethodOneArg(tm, mktime, runat)
                       : NULL;
            Py_XDECREF(mktime);
        }
        else {
            v = Py_NewRef(runat);
        }
        if (v == NULL) {
            Py_DECREF(tm);
            goto fail;
        }
        if (!PyFloat_Check(v) && !PyLong_Check(v)) {
            PyErr_SetString(PyExc_TypeError,
                            "_runat must be a number (time.time()) or a "
                            "struct_time");
            Py_DECREF(v);
            Py_DECREF(tm);
            goto fail;
        }
        at = PyFloat_AsDouble(v);
        Py_DECREF(v);
        {
            PyObject *a = PyObject_CallMethod(tm, "time", NULL);
            PyObject *b = PyObject_CallMethod(tm, "monotonic", NULL);
            now_wall = a ? PyFloat_AsDouble(a) : 0;
            now_mono = b ? PyFloat_AsDouble(b) : 0;
            Py_XDECREF(a);
            Py_XDECREF(b);
        }
        Py_DECREF(tm);
        if (PyErr_Occurred()) {
            goto fail;
        }
        if (isnan(at)) {
            PyErr_SetString(PyExc_ValueError, "_runat has invalid value!");
            goto fail;
        }
        /* Epoch seconds (time.time(), struct_time) as documented; a value
         * far below the epoch clock but near the monotonic one is
         * accepted too (code written against the original's clock).  A
         * second of slack covers struct_time's resolution. */
        if (at < now_wall - 1.0 && at >= now_mono - 1.0
                && at < now_mono + 1e8) {
            at = at - now_mono + now_wall;
        }
        if (at < now_wall - 1.0) {
            PyErr_SetString(PyExc_ValueError, "_runat has invalid value!");
            goto fail;
        }
        if (at - now_wall > 9e9) {
            PyErr_SetString(PyExc_ValueError, "_runat is out of range");
            goto fail;
        }
        delay = (int64_t)((at - now_wall) * FTP_NS_PER_SEC);
        if (seconds_to_ns(lead[1], "interval", &interval) < 0) {
            goto fail;
        }
    }
    if (!has_done) {
        done = NULL;    /* the timer variants without _done store */
    }
    return core_timer(core, kind, delay, interval, fn, args + start,
                      nargs - start, kwargs, done);

fail:
    Py_XDECREF(done);
    Py_XDECREF(kwargs);
    return NULL;
}

static PyObject *
pool_submit_later(ftp_poolobject *self, PyObject *const *args,
                  Py_ssize_t nargs, PyObject *kwnames)
{
    return timer_common(self, "submit_later", names_delay_fn, 2, 0, 0,
                        args, nargs, kwnames);
}

static PyObject *
pool_submit_done_later(ftp_poolobject *self, PyObject *const *args,
                       Py_ssize_t nargs, PyObject *kwnames)
{
    return timer_common(self, "submit_done_later", names_delay_fn_done, 3,
                        1, 0, args, nargs, kwnames);
}

static PyObject *
pool_schedule(ftp_poolobject *self, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames)
{
    return timer_common(self, "schedule", names_interval_fn, 2, 0, 1, args,
                        nargs, kwnames);
}

static PyObject *
pool_schedule_done(ftp_poolobject *self, PyObject *const *args,
                   Py_ssize_t nargs, PyObject *kwnames)
{
    return timer_common(self, "schedule_done", names_interval_fn_done, 3, 1,
                        1, args, nargs, kwnames);
}

static PyObject *
pool_submit_at(ftp_poolobject *self, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    return timer_common(self, "submit_at", names_at_fn, 3, 0, 2, args,
                        nargs, kwnames);
}

static PyObject *
pool_submit_done_at(ftp_poolobject *self, PyObject *const *args,
                    Py_ssize_t nargs, PyObject *kwnames)
{
    return timer_common(self, "submit_done_at", names_at_fn_done, 4, 1, 2,
                        args, nargs, kwnames);
}

/* ---- map ---------------------------------------------------------------- */

static PyObject *
pool_map(ftp_poolobject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fn", "itr", "done_callback", "direct",
                             "unpack_args", NULL};
    ftp_core *core = pool_core(self);
    PyObject *fn, *itr, *done_cb = Py_True, *direct = Py_True;
    PyObject *unpack = Py_None, *done, *iter;
    ftp_map *m;
    Py_ssize_t hint;
    unsigned k;

    if (core == NULL) {
        return NULL;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|OOO:map", kwlist, &fn,
                                     &itr, &done_cb, &direct, &unpack)) {
        return NULL;
    }
    if (ftpool_is_closed(core->pool)) {
        PyErr_SetString(core->st->PoolStopped, "Pool not running");
        return NULL;
    }
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "fn must be callable, not '%.100s'",
                     Py_TYPE(fn)->tp_name);
        return NULL;
    }
    if (parse_done(done_cb, &done) < 0) {
        return NULL;
    }
    if (core->cb_restart && core_check_callbacks(core) < 0) {
        Py_XDECREF(done);
        return NULL;
    }
    hint = PyObject_LengthHint(itr, -1);
    if (hint < 0 && PyErr_Occurred()) {
        PyErr_Clear();
    }
    iter = PyObject_GetIter(itr);
    if (iter == NULL) {
        Py_XDECREF(done);
        return NULL;
    }
    if (hint == 0) {
        Py_DECREF(iter);
        Py_XDECREF(done);
        Py_RETURN_NONE;
    }
    m = PyMem_RawCalloc(1, sizeof(*m));
    if (m == NULL || (m->pull_lock = PyThread_allocate_lock()) == NULL) {
        PyMem_RawFree(m);
        Py_DECREF(iter);
        Py_XDECREF(done);
        return PyErr_NoMemory();
    }
    m->kind = FTP_KIND_MAP;
    m->core = (ftp_core *)Py_NewRef((PyObject *)core);
    m->fn = Py_NewRef(fn);
    m->iter = iter;
    m->done = done;
    m->is_gen = is_generator_function(core->st, fn);
    if (unpack == Py_None) {
        m->unpack = -1;
    }
    else {
        int u = PyObject_IsTrue(unpack);
        if (u < 0) {
            m->users = 1;
            map_release(m);
            return NULL;
        }
        m->unpack = u;
    }
    /* A few engine jobs share the iterator; never more than max_children
     * (D6), and not more than the chunks there are. */
    k = core->max_children;
    m->chunk = 16;
    if (hint > 0) {
        if ((Py_ssize_t)k > hint) {
            k = (unsigned)hint;
        }
        /* About four chunks per job: small maps still spread over the
         * workers, large ones pay for the shared iterator rarely. */
        m->chunk = hint / (4 * (Py_ssize_t)k);
        if (m->chunk < 1) {
            m->chunk = 1;
        }
        if (m->chunk > FTP_MAP_CHUNK) {
            m->chunk = FTP_MAP_CHUNK;
        }
    }
    m->users = 1;   /* ours, until every job is queued */
    for (unsigned i = 0; i < k; i++) {
        int rc;
        m->users++;
        atomic_fetch_add(&core->inflight, 1);
        rc = ftpool_submit_ex(core->pool, map_run, map_drop, m, 0, NULL);
        if (rc == FTPOOL_ESPAWN) {
            if (PyErr_Occurred()) {
                map_release(m);
                return NULL;
            }
            continue;
        }
        if (rc != FTPOOL_OK) {
            m->users--;
            atomic_fetch_sub(&core->inflight, 1);
            if (i == 0) {
                map_release(m);
                raise_engine_error(core, rc);
                return NULL;
            }
            break;
        }
    }
    map_release(m);
    Py_RETURN_NONE;
}

/* ---- as_completed ------------------------------------------------------- */

static PyObject *
pool_as_completed(ftp_poolobject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"wait", "cnt_max", NULL};
    ftp_core *core = pool_core(self);
    PyObject *wait = Py_None;
    Py_ssize_t cnt_max = 0;
    ftp_acobject *ac;

    if (core == NULL) {
        return NULL;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|On:as_completed", kwlist,
                                     &wait, &cnt_max)) {
        return NULL;
    }
    ac = PyObject_GC_New(ftp_acobject, core->st->ascompleted_type);
    if (ac == NULL) {
        return NULL;
    }
    ac->core = (ftp_core *)Py_NewRef((PyObject *)core);
    ac->started = ac->finished = 0;
    ac->cnt_max = cnt_max;
    ac->yielded = 0;
    ac->wait = 0;
    ac->deadline = -1;
    if (wait == Py_None || wait == Py_True) {
        ac->mode = 1;           /* wait for all (D19) */
    }
    else if (wait == Py_False) {
        ac->mode = 0;
    }
    else {
        double w = PyFloat_AsDouble(wait);
        if (w == -1.0 && PyErr_Occurred()) {
            Py_DECREF(ac);
            return NULL;
        }
        if (isnan(w)) {
            Py_DECREF(ac);
            PyErr_SetString(PyExc_ValueError, "wait must not be NaN");
            return NULL;
        }
        ac->mode = w > 0 ? 2 : 0;
        ac->wait = w;
    }
    PyObject_GC_Track(ac);
    return (PyObject *)ac;
}

static int
core_idle(ftp_core *core)
{
    return atomic_load(&core->inflight) == 0
           && ftpool_pending(core->pool) == 0;
}

static PyObject *
ac_next(ftp_acobject *ac)
{
    ftp_core *core = ac->core;

    if (ac->finished) {
        return NULL;
    }
    if (!ac->started) {
        ac->started = 1;
        if (core->done_callback != NULL) {
            ac->finished = 1;
            PyErr_SetString(core->st->PoolCallback, "Using done_callback!");
            return NULL;
        }
        if (core->failed_callback != NULL || core->logger != NULL) {
            ac->finished = 1;
            PyErr_SetString(core->st->PoolCallback,
                            "Using failed_callback!");
            return NULL;
        }
        if (ac->mode == 1 && ftpool_current_pool() == core->pool) {
            /* The job calling us is one of those it would wait for. */
            ac->finished = 1;
            PyErr_SetString(PyExc_RuntimeError,
                            "as_completed() without a time limit from a "
                            "job of the same pool would wait forever");
            return NULL;
        }
        if (ac->mode == 2) {
            ac->deadline = ftpool_now_ns()
                           + (int64_t)(ac->wait * FTP_NS_PER_SEC);
        }
    }
    for (;;) {
        PyObject *item;
        int idle;

        if (ac->cnt_max > 0 && ac->yielded >= ac->cnt_max) {
            break;
        }
        idle = core_idle(core);
        item = ftp_rq_popleft(core->done);
        if (item == NULL) {
            item = ftp_rq_popleft(core->failed);
        }
        if (item != NULL) {
            ac->yielded++;
            return item;
        }
        /* Both queues were empty after the pool was seen idle: every
         * result has been handed out. */
        if (ac->mode == 0 || idle) {
            break;
        }
        if (ac->mode == 2 && ftpool_now_ns() >= ac->deadline) {
            break;
        }
        atomic_fetch_add(&core->notify_waiters, 1);
        if (ftp_rq_len(core->done) == 0 && ftp_rq_len(core->failed) == 0
                && !core_idle(core)) {
            int64_t left = ac->mode == 2 ? time_left(ac->deadline) : -1;
            int rc = ftp_sem_wait(core->notify, left);
            if (rc < 0) {
                atomic_fetch_sub(&core->notify_waiters, 1);
                return NULL;
            }
        }
        atomic_fetch_sub(&core->notify_waiters, 1);
        /* Drop stale wake-ups that piled up while we waited. */
        while (ftpool_sem_try_acquire(core->notify) == FTPOOL_OK) {
        }
    }
    ac->finished = 1;
    return NULL;
}

static int
ac_traverse(ftp_acobject *ac, visitproc visit, void *arg)
{
    Py_VISIT(ac->core);
    Py_VISIT(Py_TYPE(ac));
    return 0;
}

static void
ac_dealloc(ftp_acobject *ac)
{
    PyTypeObject *tp = Py_TYPE(ac);

    PyObject_GC_UnTrack(ac);
    Py_CLEAR(ac->core);
    tp->tp_free((PyObject *)ac);
    Py_DECREF(tp);
}

static int
ac_clear(ftp_acobject *ac)
{
    ac->finished = 1;
    return 0;
}

static PyType_Slot ac_slots[] = {
    {Py_tp_dealloc, ac_dealloc},
    {Py_tp_traverse, ac_traverse},
    {Py_tp_clear, ac_clear},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, ac_next},
    {0, NULL}
};

static PyType_Spec ac_spec = {
    .name = "fastthreadpool._AsCompleted",
    .basicsize = sizeof(ftp_acobject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = ac_slots,
};

/* ---- cancel / clear / shutdown ------------------------------------------ */

static PyObject *
pool_cancel(ftp_poolobject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"job_id", "timer", NULL};
    ftp_core *core = pool_core(self);
    PyObject *job_id = Py_None, *timer = Py_None;

    if (core == NULL) {
        return NULL;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:cancel", kwlist,
                                     &job_id, &timer)) {
        return NULL;
    }
    if (timer == Py_True) {
        ftpool_timer_cancel_all(core->pool);
    }
    else if (PyObject_TypeCheck(timer, core->st->timer_type)) {
        ftp_timerobject *h = (ftp_timerobject *)timer;
        if (h->core == (PyObject *)core) {
            ftp_core_cancel_timer((PyObject *)core, h);
        }
    }
    else if (timer != Py_None && timer != Py_False) {
        PyErr_Format(PyExc_TypeError,
                     "timer must be None, True, False or a TimerObj, "
                     "not '%.100s'", Py_TYPE(timer)->tp_name);
        return NULL;
    }
    if (job_id == Py_False) {
        Py_RETURN_TRUE;
    }
    if (job_id == Py_None) {
        ftpool_cancel_all(core->pool);
        Py_RETURN_TRUE;
    }
    if (job_id == Py_True) {
        Py_RETURN_FALSE;
    }
    if (PyLong_Check(job_id)) {
        unsigned long long id = PyLong_AsUnsignedLongLong(job_id);
        if (id == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            Py_RETURN_FALSE;
        }
        return PyBool_FromLong(ftpool_cancel(core->pool, id) == FTPOOL_OK);
    }
    /* Anything else names no queued job, as in the original. */
    Py_RETURN_FALSE;
}

/* After a shutdown the engine starts workers again only for a submission,
 * not for timer runs.  Timers armed across shutdown()/clear() must still
 * run (Part B 7.6: a schedule outlives shutdown()), so a no-op submission
 * restarts the pool.  0, or -1 with an exception (init_callback). */
static int
core_kick(ftp_core *core)
{
    int rc = ftpool_submit(core->pool, nop_run, &ftp_nop_arg, NULL);

    if (rc == FTPOOL_ESPAWN && PyErr_Occurred()) {
        return -1;
    }
    return 0;
}

static PyObject *
pool_clear_meth(ftp_poolobject *self, PyObject *unused)
{
    ftp_core *core = pool_core(self);

    if (core == NULL) {
        return NULL;
    }
    ftpool_open(core->pool);
    ftp_rq_unthrottle(core->done, 0);
    ftpool_cancel_all(core->pool);
    if (core->children_stopped) {
        core->children_stopped = 0;
        if (core_kick(core) < 0) {
            return NULL;
        }
    }
    /* Entries on their way to a pool-level callback are not taken away
     * from it (D3, D4, D10): only a queue nobody consumes is emptied. */
    if (core->done_callback == NULL) {
        ftp_rq_clear(core->done);
    }
    if (core->failed_callback == NULL && core->logger == NULL) {
        ftp_rq_clear(core->failed);
    }
    Py_RETURN_NONE;
}

static PyObject *
pool_shutdown_children(ftp_poolobject *self, PyObject *unused)
{
    ftp_core *core = pool_core(self);

    if (core == NULL) {
        return NULL;
    }
    /* Refuse new jobs; workers leave after their current job and the
     * queued ones stay queued (D17: nothing is dropped silently). */
    ftpool_close(core->pool);
    ftpool_shutdown(core->pool, FTPOOL_SHUTDOWN_SOON);
    ftp_rq_unthrottle(core->done, 1);
    core->children_stopped = 1;
    Py_RETURN_NONE;
}

/* shutdown(timeout, soon): 1 if everything ended in time, 0 if not, -1 on
 * an exception. */
static int
core_shutdown(ftp_core *core, int64_t deadline, int soon)
{
    PyObject *threads;
    int rc;

    core->is_shutdown = 1;
    if (!soon) {
        /* First let the queue run dry while the pool is fully running, so
         * that jobs submitted meanwhile by running jobs (an accept loop)
         * still get new workers; then let the workers go. */
        rc = core_wait(core, ftpool_wait_idle, deadline);
        if (rc < 0 && rc != -2) {
            return -1;
        }
    }
    ftpool_shutdown(core->pool,
                    soon ? FTPOOL_SHUTDOWN_SOON : FTPOOL_SHUTDOWN_FINISH);
    rc = core_wait(core, ftpool_join, deadline);
    if (rc == -2) {
        return 0;       /* from one of our own workers: cannot wait */
    }
    if (rc <= 0) {
        return rc;
    }
    /* The engine is done with the threads; wait for them to end too, so
     * that finish_callback has run and `children` is up to date. */
    threads = PySequence_Tuple(core->children);
    if (threads == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(threads); i++) {
        rc = join_thread(core, PyTuple_GET_ITEM(threads, i), deadline);
        if (rc <= 0) {
            Py_DECREF(threads);
            return rc;
        }
    }
    Py_DECREF(threads);
    rc = core_join_callbacks(core, deadline);
    if (rc == 1 && !ftpool_is_closed(core->pool)) {
        ftpool_stats stats;
        ftpool_get_stats(core->pool, &stats);
        if (stats.timers > 0 && core_kick(core) < 0) {
            return -1;
        }
    }
    return rc;
}

static PyObject *
pool_shutdown(ftp_poolobject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timeout", "soon", NULL};
    ftp_core *core = pool_core(self);
    PyObject *timeout = Py_None, *soon = Py_False;
    int64_t deadline;
    int rc;

    if (core == NULL) {
        return NULL;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:shutdown", kwlist,
                                     &timeout, &soon)) {
        return NULL;
    }
    if (parse_deadline(timeout, &deadline) < 0) {
        return NULL;
    }
    rc = core_shutdown(core, deadline, soon == Py_True);
    if (rc < 0) {
        return NULL;
    }
    return PyBool_FromLong(rc);
}

static PyObject *
pool_join(ftp_poolobject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timeout", NULL};
    ftp_core *core = pool_core(self);
    PyObject *timeout = Py_None;
    int64_t deadline;
    int rc;

    if (core == NULL) {
        return NULL;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:join", kwlist,
                                     &timeout)) {
        return NULL;
    }
    if (parse_deadline(timeout, &deadline) < 0) {
        return NULL;
    }
    rc = core_shutdown(core, deadline, 0);
    if (rc < 0) {
        return NULL;
    }
    return PyBool_FromLong(rc);
}

static PyObject *
pool_wait_idle(ftp_poolobject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timeout", NULL};
    ftp_core *core = pool_core(self);
    PyObject *timeout = Py_None;
    int64_t deadline;
    int rc;

    if (core == NULL) {
        return NULL;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:wait_idle", kwlist,
                                     &timeout)) {
        return NULL;
    }
    if (parse_deadline(timeout, &deadline) < 0) {
        return NULL;
    }
    rc = core_wait(core, ftpool_wait_idle, deadline);
    if (rc == -2) {
        PyErr_SetString(PyExc_RuntimeError,
                        "wait_idle() from a job of the same pool would "
                        "wait forever");
        return NULL;
    }
    if (rc < 0) {
        return NULL;
    }
    return PyBool_FromLong(rc);
}

static PyObject *
pool_cleanup_children(ftp_poolobject *self, PyObject *unused)
{
    ftp_core *core = pool_core(self);

    if (core == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = PyList_GET_SIZE(core->children) - 1; i >= 0; i--) {
        PyObject *t = PyList_GET_ITEM(core->children, i);
        PyObject *r = PyObject_CallMethod(t, "is_alive", NULL);
        int alive;
        if (r == NULL) {
            return NULL;
        }
        alive = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (alive == 0 && i < PyList_GET_SIZE(core->children)
                && PySequence_DelItem(core->children, i) < 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyObject *
pool_enter(ftp_poolobject *self, PyObject *unused)
{
    return Py_NewRef((PyObject *)self);
}

static PyObject *
pool_exit(ftp_poolobject *self, PyObject *args)
{
    ftp_core *core = pool_core(self);

    if (core == NULL) {
        return NULL;
    }
    if (core_shutdown(core, -1, 0) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

int
ftp_pool_shutdown_all(PyObject *obj, int now)
{
    ftp_core *core = (ftp_core *)obj;
    int rc;

    if (core->pool == NULL) {
        return 0;
    }
    Py_INCREF(core);
    ftpool_timer_cancel_all(core->pool);
    if (now) {
        ftpool_close(core->pool);
        ftp_rq_unthrottle(core->done, 1);
        ftpool_cancel_all(core->pool);
    }
    rc = core_shutdown(core, -1, now);
    /* Either way the pool refuses new jobs afterwards (until clear()). */
    ftpool_close(core->pool);
    core->children_stopped = 1;
    Py_DECREF(core);
    return rc < 0 ? -1 : 0;
}

/* ---- properties --------------------------------------------------------- */

#define CORE_OR_NULL(self) \
    ftp_core *core = pool_core(self); \
    if (core == NULL) { \
        return NULL; \
    }

static PyObject *
get_alive(ftp_poolobject *self, void *c)
{
    Py_ssize_t n = 0;
    CORE_OR_NULL(self)
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(core->children); i++) {
        PyObject *r = PyObject_CallMethod(PyList_GET_ITEM(core->children, i),
                                          "is_alive", NULL);
        int a;
        if (r == NULL) {
            return NULL;
        }
        a = PyObject_IsTrue(r);
        Py_DECREF(r);
        n += a > 0;
    }
    return PyLong_FromSsize_t(n);
}

static PyObject *
get_busy(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return PyLong_FromUnsignedLong(ftpool_busy(core->pool));
}

static PyObject *
get_pending(ftp_poolobject *self, void *c)
{
    ftpool_stats s;
    CORE_OR_NULL(self)
    ftpool_get_stats(core->pool, &s);
    return PyLong_FromSize_t(s.busy + s.pending);
}

typedef struct {
    void **items;
    size_t n, cap;
    int oom;
} visit_ctx;

static void
visit_queued(void *arg, uint64_t id, void *ctx_)
{
    visit_ctx *ctx = ctx_;

    if (ctx->n == ctx->cap) {
        size_t cap = ctx->cap ? ctx->cap * 2 : 64;
        void **p = PyMem_RawRealloc(ctx->items, cap * sizeof(void *));
        if (p == NULL) {
            ctx->oom = 1;
            return;
        }
        ctx->items = p;
        ctx->cap = cap;
    }
    ctx->items[ctx->n++] = arg;
}

static PyObject *
new_deque(ftp_core *core, PyObject *list)
{
    PyObject *collections = PyImport_ImportModule("collections"), *d;

    if (collections == NULL) {
        return NULL;
    }
    d = PyObject_CallMethod(collections, "deque", "O", list);
    Py_DECREF(collections);
    return d;
}

static PyObject *
done_mode_obj(PyObject *done)
{
    return Py_NewRef(done == NULL ? Py_True : done);
}

static PyObject *
get_jobs(ftp_poolobject *self, void *c)
{
    visit_ctx ctx = {NULL, 0, 0, 0};
    PyObject *list, *d;
    CORE_OR_NULL(self)

    ftpool_foreach_queued(core->pool, visit_queued, &ctx);
    if (ctx.oom) {
        PyMem_RawFree(ctx.items);
        return PyErr_NoMemory();
    }
    /* The structs stay valid: running or dropping a job needs the GIL,
     * which we hold. */
    list = PyList_New(0);
    for (size_t i = 0; list != NULL && i < ctx.n; i++) {
        int kind = *(int *)ctx.items[i];
        PyObject *entry = NULL;
        if (kind == FTP_KIND_JOB) {
            ftp_job *j = ctx.items[i];
            PyObject *a = job_args_tuple(j);
            PyObject *k = j->kwargs ? PyDict_Copy(j->kwargs) : PyDict_New();
            PyObject *dm = done_mode_obj(j->done);
            if (a && k) {
                entry = PyTuple_Pack(4, j->fn, dm, a, k);
            }
            Py_XDECREF(a);
            Py_XDECREF(k);
            Py_DECREF(dm);
        }
        else if (kind == FTP_KIND_NOP) {
            continue;
        }
        else if (kind == FTP_KIND_MAP) {
            ftp_map *m = ctx.items[i];
            PyObject *dm = done_mode_obj(m->done);
            entry = Py_BuildValue("(OO(){})", m->fn, dm);
            Py_DECREF(dm);
        }
        else {
            ftp_timer *t = ctx.items[i];
            PyObject *k = t->kwargs ? PyDict_Copy(t->kwargs) : PyDict_New();
            PyObject *dm = done_mode_obj(t->done);
            if (k) {
                entry = PyTuple_Pack(4, t->fn, dm, t->args, k);
            }
            Py_XDECREF(k);
            Py_DECREF(dm);
        }
        if (entry == NULL || PyList_Append(list, entry) < 0) {
            Py_CLEAR(list);
        }
        Py_XDECREF(entry);
    }
    PyMem_RawFree(ctx.items);
    if (list == NULL) {
        return NULL;
    }
    d = new_deque(core, list);
    Py_DECREF(list);
    return d;
}

static PyObject *
get_done(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return Py_NewRef((PyObject *)core->done);
}

static PyObject *
get_failed(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return Py_NewRef((PyObject *)core->failed);
}

static PyObject *
get_done_cnt(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return Py_NewRef(ftp_rq_counter_obj(core->done));
}

static PyObject *
get_failed_cnt(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return Py_NewRef(ftp_rq_counter_obj(core->failed));
}

static PyObject *
get_children(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return PySequence_Tuple(core->children);
}

static PyObject *
get_child_cnt(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return PyLong_FromSsize_t(PyList_GET_SIZE(core->children));
}

/* A deque of the handles of one kind of timer that will still run: a
 * one-shot timer leaves it once it fires (its job is queued). */
static PyObject *
timers_of_kind(ftp_core *core, int kind)
{
    PyObject *list = PyList_New(0), *key, *value, *d;
    visit_ctx ctx = {NULL, 0, 0, 0};
    Py_ssize_t pos = 0;

    if (list == NULL) {
        return NULL;
    }
    ftpool_foreach_queued(core->pool, visit_queued, &ctx);
    while (PyDict_Next(core->timers, &pos, &key, &value)) {
        ftp_timerobject *h = (ftp_timerobject *)value;
        ftp_timer *t = h->timer;
        int fired = 0;
        if (h->kind != kind || !h->active) {
            continue;
        }
        if (t != NULL && t->oneshot) {
            fired = t->fired;
            for (size_t i = 0; !fired && i < ctx.n; i++) {
                fired = ctx.items[i] == (void *)t;
            }
        }
        if (!fired && PyList_Append(list, value) < 0) {
            PyMem_RawFree(ctx.items);
            Py_DECREF(list);
            return NULL;
        }
    }
    PyMem_RawFree(ctx.items);
    d = new_deque(core, list);
    Py_DECREF(list);
    return d;
}

static PyObject *
get_delayed(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return timers_of_kind(core, FTP_TIMER_LATER);
}

static PyObject *
get_scheduled(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return timers_of_kind(core, FTP_TIMER_SCHEDULE);
}

static PyObject *
get_is_shutdown(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return PyBool_FromLong(core->is_shutdown);
}

static PyObject *
get_max_children(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return PyLong_FromUnsignedLong(core->max_children);
}

static PyObject *
get_child_name_prefix(ftp_poolobject *self, void *c)
{
    return Py_NewRef(self->child_name_prefix ? self->child_name_prefix
                                             : Py_None);
}

static PyObject *
get_init_args(ftp_poolobject *self, void *c)
{
    return Py_NewRef(self->init_args ? self->init_args : Py_None);
}

static PyObject *
get_log_level(ftp_poolobject *self, void *c)
{
    return Py_NewRef(self->log_level ? self->log_level : Py_None);
}

static PyObject *
opt_obj(PyObject *o)
{
    return Py_NewRef(o ? o : Py_None);
}

static PyObject *
get_init_callback(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return opt_obj(core->init_callback);
}

static PyObject *
get_finish_callback(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return opt_obj(core->finish_callback);
}

static PyObject *
get_done_callback(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    if (core->done_callback == NULL && core->default_done == Py_False) {
        Py_RETURN_FALSE;
    }
    return opt_obj(core->done_callback);
}

static PyObject *
get_failed_callback(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return opt_obj(core->failed_callback);
}

static PyObject *
get_result_id(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return PyBool_FromLong(core->result_id);
}

static PyObject *
get_exc_stack(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return PyBool_FromLong(core->exc_stack);
}

static PyObject *
get_exc_args(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return PyBool_FromLong(core->exc_args);
}

static PyObject *
get_done_max(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return PyLong_FromSsize_t(core->done_max);
}

#define FASTMETH(name, fn, doc) \
    {name, (PyCFunction)(void (*)(void))fn, METH_FASTCALL | METH_KEYWORDS, \
     doc}
#define KWMETH(name, fn, doc) \
    {name, (PyCFunction)(void (*)(void))fn, METH_VARARGS | METH_KEYWORDS, \
     doc}

static PyMethodDef pool_methods[] = {
    FASTMETH("submit", pool_submit,
             "submit(fn, *args, **kwargs) -> None | int\n\n"
             "Queue fn(*args, **kwargs); its result goes to `done`."),
    FASTMETH("submit_done", pool_submit_done,
             "submit_done(fn, done_callback, *args, **kwargs)"),
    FASTMETH("submit_first", pool_submit_first,
             "submit_first(fn, *args, **kwargs): queue at the front."),
    FASTMETH("submit_done_first", pool_submit_done_first,
             "submit_done_first(fn, done_callback, *args, **kwargs)"),
    FASTMETH("submit_later", pool_submit_later,
             "submit_later(delay, fn, *args, **kwargs) -> TimerObj"),
    FASTMETH("submit_done_later", pool_submit_done_later,
             "submit_done_later(delay, fn, done_callback, *args, **kwargs)"
             " -> TimerObj"),
    FASTMETH("submit_at", pool_submit_at,
             "submit_at(_runat, interval, fn, *args, **kwargs) -> TimerObj"
             "\n\n_runat: time.time() seconds or a time.struct_time."),
    FASTMETH("submit_done_at", pool_submit_done_at,
             "submit_done_at(_runat, interval, fn, done_callback, *args, "
             "**kwargs) -> TimerObj"),
    FASTMETH("schedule", pool_schedule,
             "schedule(interval, fn, *args, **kwargs) -> TimerObj"),
    FASTMETH("schedule_done", pool_schedule_done,
             "schedule_done(interval, fn, done_callback, *args, **kwargs)"
             " -> TimerObj"),
    KWMETH("map", pool_map,
           "map(fn, itr, done_callback=True, direct=True, "
           "unpack_args=None)"),
    KWMETH("as_completed", pool_as_completed,
           "as_completed(wait=None, cnt_max=0): yield results and failures"
           " as they come."),
    KWMETH("cancel", pool_cancel,
           "cancel(job_id=None, timer=None) -> bool"),
    {"clear", (PyCFunction)pool_clear_meth, METH_NOARGS,
     "Reopen after shutdown_children(); drop queued jobs and results."},
    KWMETH("shutdown", pool_shutdown,
           "shutdown(timeout=None, soon=False) -> bool"),
    {"shutdown_children", (PyCFunction)pool_shutdown_children, METH_NOARGS,
     "Refuse new jobs (PoolStopped); workers leave after their job."},
    {"cleanup_children", (PyCFunction)pool_cleanup_children, METH_NOARGS,
     "Forget worker threads that have ended."},
    KWMETH("join", pool_join, "join(timeout=None) -> bool"),
    KWMETH("wait_idle", pool_wait_idle, "wait_idle(timeout=None) -> bool"),
    {"__enter__", (PyCFunction)pool_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)pool_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL}
};

#define GETTER(name, fn, doc) {name, (getter)fn, NULL, doc, NULL}

static PyGetSetDef pool_getset[] = {
    GETTER("alive", get_alive, "Worker threads alive."),
    GETTER("busy", get_busy, "Workers running a job."),
    GETTER("pending", get_pending, "Jobs running plus jobs queued."),
    GETTER("jobs", get_jobs,
           "Snapshot deque of the queued jobs (fn, done_mode, args, "
           "kwargs)."),
    GETTER("done", get_done, "The results (deque-like)."),
    GETTER("done_cnt", get_done_cnt,
           "Semaphore counting the results not consumed yet."),
    GETTER("failed", get_failed, "The failures (deque-like)."),
    GETTER("failed_cnt", get_failed_cnt,
           "Semaphore counting the failures not consumed yet."),
    GETTER("children", get_children, "Tuple of the worker threads."),
    GETTER("child_cnt", get_child_cnt, "Number of worker threads."),
    GETTER("delayed", get_delayed, "Deque of pending submit_later timers."),
    GETTER("scheduled", get_scheduled,
           "Deque of active schedule/submit_at timers."),
    GETTER("is_shutdown", get_is_shutdown,
           "True once shutdown()/join() was called."),
    GETTER("max_children", get_max_children, NULL),
    GETTER("child_name_prefix", get_child_name_prefix, NULL),
    GETTER("init_callback", get_init_callback, NULL),
    GETTER("init_args", get_init_args, NULL),
    GETTER("finish_callback", get_finish_callback, NULL),
    GETTER("done_callback", get_done_callback, NULL),
    GETTER("failed_callback", get_failed_callback, NULL),
    GETTER("log_level", get_log_level, NULL),
    GETTER("result_id", get_result_id, NULL),
    GETTER("exc_stack", get_exc_stack, NULL),
    GETTER("exc_args", get_exc_args, NULL),
    GETTER("done_max", get_done_max, NULL),
    {NULL, NULL, NULL, NULL, NULL}
};

static PyMemberDef pool_members[] = {
    {"__weaklistoffset__", T_PYSSIZET,
     offsetof(ftp_poolobject, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL}
};

static PyType_Slot pool_slots[] = {
    {Py_tp_new, pool_new},
    {Py_tp_dealloc, pool_dealloc},
    {Py_tp_traverse, pool_traverse},
    {Py_tp_clear, pool_clear},
    {Py_tp_methods, pool_methods},
    {Py_tp_getset, pool_getset},
    {Py_tp_members, pool_members},
    {Py_tp_doc,
     "Pool(max_children=-9999, child_name_prefix='', init_callback=None, "
     "init_args=None, finish_callback=None, done_callback=None, "
     "failed_callback=None, log_level=0, result_id=False, "
     "exc_stack=False, exc_args=False, done_max=0)\n\n"
     "A pool of worker threads."},
    {0, NULL}
};

static PyType_Spec pool_spec = {
    .name = "fastthreadpool.Pool",
    .basicsize = sizeof(ftp_poolobject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = pool_slots,
};

int
ftp_pool_init_types(PyObject *module, ftp_state *st)
{
    st->core_type = (PyTypeObject *)PyType_FromModuleAndSpec(module,
                                                             &core_spec,
                                                             NULL);
    if (st->core_type == NULL) {
        return -1;
    }
    st->ascompleted_type = (PyTypeObject *)PyType_FromModuleAndSpec(
        module, &ac_spec, NULL);
    if (st->ascompleted_type == NULL) {
        return -1;
    }
#if PY_VERSION_HEX < 0x030A0000
    /* No Py_TPFLAGS_DISALLOW_INSTANTIATION before 3.10. */
    st->core_type->tp_new = NULL;
    st->ascompleted_type->tp_new = NULL;
#endif
    st->pool_type = (PyTypeObject *)PyType_FromModuleAndSpec(module,
                                                             &pool_spec,
                                                             NULL);
    if (st->pool_type == NULL) {
        return -1;
    }
    return PyModule_AddType(module, st->pool_type);
}
