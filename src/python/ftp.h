/*
 * ftp.h - names shared by the files of the fastthreadpool._fastthreadpool
 * module: the module state, the rules for locks, and the layer every type
 * builds on (util.c, workers.c, semaphore.c, resultqueue.c).  The Pool's
 * files add pool.h, the executor's files executor.h.  Every name shared
 * between files starts with `ftp_`; src/python/README.md maps the files.
 */
#ifndef FTP_H
#define FTP_H

#include "compat.h"
#include "ftpool.h"

/*
 * Locking
 * -------
 * With the GIL, the GIL guards all Python-level state, and the code below
 * never releases it between reading and updating shared state.  Without it
 * (free-threaded builds) each piece of shared state names its guard where
 * it is declared, one of:
 *
 * - an ftp_mutex (compat.h): a few loads, stores and allocations, never
 *   held while calling Python code, dropping a reference that could be
 *   the last (a finalizer would run), blocking, or taking another
 *   ftp_mutex;
 * - a PyThread lock taken with ftp_lock_detached() where Python code must
 *   run under the lock (a map's shared iterator, the logger set-up);
 * - an atomic (C11 <stdatomic.h>) for counters and flags read without a
 *   lock;
 * - a Python object's own thread-safety: list, dict and set operations are
 *   atomic one by one.  (No critical section on such an object around
 *   calls of its own API: CPython 3.13 takes the object's lock again
 *   inside them, which suspends the outer section and lets another thread
 *   in between.)
 *
 * Engine locks (src/engine/internal.h) come last in any order: the engine
 * calls back into the binding (jobs, drop callbacks, hooks) with none held,
 * and the binding never calls the engine holding an ftp_mutex, except the
 * engine functions that call nothing back (stats, counters, semaphore
 * release).  A thread that waits for anything (an engine wait, a semaphore,
 * a join) first detaches its thread state (Py_BEGIN_ALLOW_THREADS or the
 * worker hooks): with the GIL that lets other threads run; without it, it
 * lets a stop-the-world garbage collection proceed.
 */

/* Seconds (a Python float) to engine nanoseconds, and back. */
#define FTP_NS_PER_SEC 1000000000.0

#define FTP_LOGGER_NAME "fastthreadpool"
#define FTP_DEFAULT_LOGGING_FORMAT \
    "[%(levelname)s/%(processName)s] %(message)s"

typedef struct ftp_workers ftp_workers;

/* ------------------------------------------------------------------------ */
/* Module state (module.c)                                                  */
/* ------------------------------------------------------------------------ */

typedef struct {
    PyTypeObject *pool_type;
    PyTypeObject *core_type;
    PyTypeObject *sem_type;
    PyTypeObject *rq_type;
    PyTypeObject *timer_type;
    PyTypeObject *ascompleted_type;
    PyObject *PoolStopped;
    PyObject *PoolCallback;
    /* Objects from other modules, looked up once. */
    PyObject *threading;            /* the threading module */
    PyObject *current_thread;       /* threading.current_thread */
    PyObject *partial_type;         /* functools.partial */
    PyObject *format_exception;     /* traceback.format_exception */
    PyObject *thread_kwnames;       /* ("target", "name", "daemon") */
    /* The "fastthreadpool" logger, configured by the first Pool that logs
     * (guarded by logger_lock). */
    PyObject *logger;
    PyThread_type_lock logger_lock;
    /* Every worker group alive (workers.c), guarded by live_lock. */
    ftp_workers *live;
    ftp_mutex live_lock;
    /* Set once the interpreter has started to exit: executors refuse
     * work. */
    atomic_int exiting;
    /* How many times this process has been forked from its parent since
     * the module loaded (workers.c): groups made in an earlier generation
     * were the parent's. */
    atomic_int fork_gen;
    /* An empty Python function (ftp_workers_job_done). */
    PyObject *checkpoint;
    /* Numbers the executors' default thread name prefixes. */
    atomic_ulong executor_counter;
    PyObject *str_tnum;
    PyObject *str_start;
    PyObject *str_join;
    PyObject *str_is_alive;
    /* asyncio's run_in_executor() (aiolink.c): its code object (None if
     * it is not the method the shortcut expects) and _convert_future_exc,
     * looked up once when first needed (guarded by aio_lock), the
     * function the loop calls to complete an asyncio future, the method
     * names used. */
    PyObject *aio_code;
    PyObject *aio_convert;
    ftp_mutex aio_lock;
    PyObject *aio_set_state;
    PyObject *str_create_future;
    PyObject *str_cancelled;
    PyObject *str_done;
    PyObject *str_cancel;
    PyObject *str_set_result;
    PyObject *str_set_exception;
    PyObject *str_call_soon_threadsafe;
    PyObject *str_is_closed;
} ftp_state;

extern PyModuleDef ftp_module_def;

static inline ftp_state *
ftp_get_state(PyObject *module)
{
    return (ftp_state *)PyModule_GetState(module);
}

/* Each type file adds its types to the module and the state. */
int ftp_semaphore_init_type(PyObject *module, ftp_state *st);
int ftp_rq_init_type(PyObject *module, ftp_state *st);
int ftp_pool_init_types(PyObject *module, ftp_state *st);
int ftp_executor_init_types(PyObject *module, ftp_state *st);
int ftp_aio_init(PyObject *module, ftp_state *st);

/* ------------------------------------------------------------------------ */
/* Helpers (util.c): a leaf, calls no other file of the binding             */
/* ------------------------------------------------------------------------ */

/* Attribute lookups and method calls by a C-string name.  CPython 3.11's
 * type attribute cache keeps a reference to the name object of each recent
 * lookup, in a slot chosen by its address: a fresh string per call (what
 * PyObject_GetAttrString() and PyObject_CallMethod() make) stays alive
 * there until that slot is reused, and memory seems to grow with every
 * executor or pool made.  These use the interned name: one object, one
 * slot.  ftp_call_method() passes nargs (at most 3) args;
 * ftp_call_method_obj() is the same with a name object. */
PyObject *ftp_getattr(PyObject *o, const char *name);
PyObject *ftp_call_method(PyObject *o, const char *name,
                          PyObject *const *args, size_t nargs);
PyObject *ftp_call_method_obj(PyObject *o, PyObject *name,
                              PyObject *const *args, size_t nargs);
/* The module state of a heap type defined by this module (or a subclass
 * of one).  NULL with SystemError if there is none. */
ftp_state *ftp_state_from_type(PyTypeObject *tp);
/* module.attr, a new reference. */
PyObject *ftp_import_attr(const char *modname, const char *attr);

/* The pending exception as one object with its traceback attached (a new
 * reference, NULL if none is set); ftp_err_restore() raises it again
 * (stealing it; NULL does nothing). */
PyObject *ftp_err_fetch(void);
void ftp_err_restore(PyObject *exc);

/* Seconds (a number) to ns, rejecting NaN and non-numbers.  0 or -1. */
int ftp_seconds_to_ns(PyObject *obj, const char *what, int64_t *out);
/* timeout=None: -1 (forever); otherwise an absolute deadline in ns. */
int ftp_parse_deadline(PyObject *timeout, int64_t *deadline);
/* ns left until the deadline (0 if past), -1 for no deadline. */
int64_t ftp_time_left(int64_t deadline);

/* inspect.isgeneratorfunction(): unwraps bound methods and partials. */
int ftp_is_generator_function(ftp_state *st, PyObject *fn);

/* list.remove(item) (an object without __eq__, such as a Thread, is
 * found by identity); an item not in the list is no error.  0 or -1. */
int ftp_list_remove(PyObject *list, PyObject *item);
/* Calls thread.is_alive(): 1, 0, or -1 with an exception set. */
int ftp_thread_is_alive(ftp_state *st, PyObject *thread);
/* Removes from the list `threads` the threading.Thread objects that have
 * ended.  is_alive() runs Python code, during which other threads may
 * change the list: works on a copy and removes by identity.  0 or -1. */
int ftp_forget_ended_threads(ftp_state *st, PyObject *threads);
/* Takes a lock that is held while Python code runs: at once if it is
 * free, else waiting detached. */
void ftp_lock_detached(PyThread_type_lock lock);
/* Joins a threading.Thread until the deadline (-1: none).  1: it ended,
 * 0: it did not, -1: exception. */
int ftp_join_thread(ftp_state *st, PyObject *thread, int64_t deadline);

/* ------------------------------------------------------------------------ */
/* The worker layer (workers.c)                                             */
/* ------------------------------------------------------------------------ */

/*
 * A worker group is an engine pool whose workers are threading.Thread
 * objects: Pool and ThreadPoolExecutor each own one.  The layer starts the
 * threads when the engine asks for a worker (its spawn hook), lets each
 * worker detach its thread state only while it sleeps in the engine (the
 * before_wait/after_wait hooks), gives other threads the GIL now and then
 * (ftp_workers_job_done), keeps the list of the threads, joins them,
 * registers the group for interpreter exit and frees it when the owner
 * and every worker thread have let it go (a reference count), so that
 * worker threads never keep their owner's Python object alive.
 *
 * What differs between owners goes through ftp_workers_ops.  An owner
 * embeds the group as the first member of its own struct, allocates that
 * struct zeroed with PyMem_RawCalloc() and calls ftp_workers_init(); the
 * layer frees it (after ops->free) when the last reference goes.
 */
typedef struct ftp_workers_ops {
    /* In the thread that asked for a worker, attached: the new Thread,
     * named, not started yet, and its number.  0, or -1 with an exception
     * set (the worker is not started). */
    int (*prepare)(ftp_workers *w, PyObject *thread, unsigned long n);
    /* In the new worker thread, before it serves the pool. */
    void (*started)(ftp_workers *w);
    /* In the worker thread once it has stopped serving, before the engine
     * stops counting it (so ftpool_join() waits for this). */
    void (*ended)(ftp_workers *w);
    /* The last reference is gone: release what the owner added. */
    void (*free)(ftp_workers *w);
} ftp_workers_ops;

enum {
    FTP_WORKERS_POOL = 1,       /* owner: a Pool's core, Shutdown() */
    FTP_WORKERS_EXECUTOR = 2    /* owner: an executor, finishes at exit */
};

struct ftp_workers {
    ftpool_t *pool;             /* NULL once destroyed */
    const ftp_workers_ops *ops;
    ftp_state *st;
    PyObject *module;           /* keeps st valid */
    int kind;
    PyObject *prefix;           /* thread names: prefix, sep, number */
    char sep;
    PyObject *daemon;           /* Thread(daemon=...): True or None */
    PyObject *target;           /* every worker thread's target */
    /* The threads serving the pool, and the ones that left it and may
     * still be ending (joined by ftp_workers_join_ended); lists, updated
     * by single list operations. */
    PyObject *threads;
    PyObject *ended;
    atomic_ulong next_n;        /* the next thread's number */
    atomic_int refs;            /* the owner + each worker thread */
    /* Why the last spawn failed, or NULL (guarded by lock). */
    PyObject *spawn_error;
    ftp_mutex lock;
    /* Interpreter exit (guarded by st->live_lock). */
    PyObject *owner_ref;        /* weak reference to the owner */
    ftp_workers *next_live;
    ftp_workers **prev_live;
    ftp_workers *exit_next;     /* only for the exit hook */
    int born_gen;               /* st->fork_gen when it was made */
};

/* Whether the group is the parent's, inherited through fork(): none of its
 * threads exist in this process and its engine locks may stay held by
 * them for ever, so it is never touched again (its memory is left). */
static inline int
ftp_workers_forked(const ftp_workers *w)
{
    return w->born_gen != atomic_load_explicit(&w->st->fork_gen,
                                               memory_order_relaxed);
}

/* Sets RuntimeError for a use of such a group, returns -1. */
int ftp_workers_forked_error(const char *what);

/* Sets up the group and its engine pool (max_workers workers at most) and
 * registers it for interpreter exit with its owner object (weakly).  On
 * failure (-1, exception set) the group is already freed. */
int ftp_workers_init(ftp_workers *w, ftp_state *st, PyObject *owner,
                     int kind, const ftp_workers_ops *ops,
                     unsigned max_workers, PyObject *prefix, char sep,
                     int daemon);
/* The owner lets the group go.  wait: shut the pool down and wait (thread
 * detached) for every idle worker to leave, then destroy it; where that
 * is not possible (in one of its workers, or in an engine callback) or
 * !wait, the workers finish the queue and leave, and the last one
 * destroys the pool. */
void ftp_workers_release(ftp_workers *w, int wait);
/* The exception the last failed spawn left (a new reference, or NULL),
 * for a submission that got FTPOOL_ESPAWN. */
PyObject *ftp_workers_take_spawn_error(ftp_workers *w);
/* Waits (ftp_wait_sliced) until no worker has been alive at some instant
 * since the mark (taken before the shutdown that lets them go: a worker a
 * racing submission starts afterwards is not waited for), or until no job
 * is queued or running.  1: done, 0: timed out, -1: exception, -2: called
 * from one of the group's workers. */
int ftp_workers_join(ftp_workers *w, const ftpool_mark *since,
                     int64_t deadline);
int ftp_workers_wait_idle(ftp_workers *w, int64_t deadline);
/* After ftp_workers_join() succeeded: joins the threads of the workers
 * that left, until the deadline.  1 all ended, 0 not in time, -1
 * exception. */
int ftp_workers_join_ended(ftp_workers *w, int64_t deadline);
/* The group whose worker the calling thread is, or NULL. */
ftp_workers *ftp_workers_current(void);
/* True while the calling thread runs an engine drop callback or the spawn
 * hook (ftp_workers_enter_callback): the engine may be calling from its
 * own timer thread, where a pool cannot be destroyed. */
void ftp_workers_enter_callback(void);
void ftp_workers_leave_callback(void);
int ftp_workers_in_callback(void);
/* Strong references to the owners of the live groups of a kind: a new
 * list, or NULL with an exception. */
PyObject *ftp_workers_live_owners(ftp_state *st, int kind);
/* Makes st->checkpoint (module exec).  0 or -1. */
int ftp_workers_checkpoint_init(ftp_state *st);
/* Registers the interpreter-exit hooks (module exec). */
int ftp_workers_exit_init(PyObject *module, ftp_state *st);

/* Called by a worker after each job: a worker running only C-level jobs
 * would never let the interpreter switch threads, so now and then it runs
 * an empty Python function, where the interpreter does. */
void ftp_workers_job_done(void);

/* The number of CPUs this process may use (at least 1). */
long ftp_cpu_count(void);

/* Runs wait(obj, slice_ns) with the thread detached, in slices short
 * enough for signal handlers to run between them, until it succeeds
 * (FTPOOL_OK), refuses (FTPOOL_EBUSY) or the deadline (-1: none) passes.
 * 1: done, 0: timed out, -1: exception (a signal handler raised), -2:
 * refused. */
int ftp_wait_sliced(int (*wait)(void *obj, int64_t ns), void *obj,
                    int64_t deadline);

/* ------------------------------------------------------------------------ */
/* Semaphore (semaphore.c)                                                  */
/* ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    ftpool_sem_t *sem;
} ftp_semobject;

/* A new Semaphore(value) object, or NULL with an exception set. */
PyObject *ftp_semaphore_new(ftp_state *st, int64_t value);
/* Takes one permit, waiting (ftp_wait_sliced) up to timeout_ns (< 0:
 * forever).  1: acquired, 0: timed out, -1: exception. */
int ftp_sem_wait(ftpool_sem_t *sem, int64_t timeout_ns);

/* ------------------------------------------------------------------------ */
/* Result queue (resultqueue.c): the type of Pool.done and Pool.failed      */
/* ------------------------------------------------------------------------ */

typedef struct ftp_rqobject ftp_rqobject;

/* A new empty queue whose entries are counted by the Semaphore `cnt`. */
ftp_rqobject *ftp_rq_new(ftp_state *st, PyObject *cnt);
/* Appends a new reference (stolen, even on failure).  0 or -1. */
int ftp_rq_push(ftp_rqobject *q, PyObject *item);
/* Appends n new references (stolen).  0 or -1. */
int ftp_rq_push_many(ftp_rqobject *q, PyObject **items, Py_ssize_t n);
/* Pops the oldest entry and takes one permit from the counter: a new
 * reference, or NULL (no exception) if the queue is empty. */
PyObject *ftp_rq_popleft(ftp_rqobject *q);
/* Pops the oldest entry whose permit the caller already took from the
 * counter (a consumer that waited on it). */
PyObject *ftp_rq_popleft_counted(ftp_rqobject *q);
Py_ssize_t ftp_rq_len(ftp_rqobject *q);
/* Removes every entry. */
void ftp_rq_clear(ftp_rqobject *q);
ftpool_sem_t *ftp_rq_counter(ftp_rqobject *q);
PyObject *ftp_rq_counter_obj(ftp_rqobject *q);

/* done_max throttling: a producer that appended calls ftp_rq_throttle();
 * it waits, thread detached, while the queue holds max entries or more and
 * the queue is not released (ftp_rq_unthrottle). */
void ftp_rq_set_limit(ftp_rqobject *q, Py_ssize_t max);
void ftp_rq_throttle(ftp_rqobject *q);
void ftp_rq_unthrottle(ftp_rqobject *q, int released);

/* Consumers that wait for "any change" of a set of queues register with a
 * notifier: the queue notifies it (ftp_notify) after every push. */
void ftp_rq_set_notify(ftp_rqobject *q, ftpool_sem_t *sem,
                       atomic_int *waiters);
/* Releases `sem` once per waiter in `*waiters`.  A waiter announces
 * itself (increments *waiters), then checks what it waits for; whoever
 * changes that state then calls this: one of the two sees the other.
 * Without the GIL that needs a full fence between the change and the
 * load. */
static inline void
ftp_notify(ftpool_sem_t *sem, atomic_int *waiters)
{
    int n;

#if FTP_FREE_THREADED
    atomic_thread_fence(memory_order_seq_cst);
#endif
    n = sem != NULL ? atomic_load_explicit(waiters, memory_order_seq_cst)
                    : 0;
    if (n > 0) {
        ftpool_sem_release(sem, n);
    }
}

#endif /* FTP_H */
