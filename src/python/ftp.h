/*
 * ftp.h - shared declarations of the fastthreadpool._fastthreadpool module:
 * compatibility shims, the module state and the helpers each type file
 * exports to the others.
 */
#ifndef FTP_H
#define FTP_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <stdatomic.h>

#include "ftpool.h"

/* ------------------------------------------------------------------------ */
/* Compatibility shims (CPython >= 3.9), gathered here                     */
/* ------------------------------------------------------------------------ */

#if PY_VERSION_HEX >= 0x030D0000
#  define ftp_is_finalizing() Py_IsFinalizing()
#else
#  define ftp_is_finalizing() _Py_IsFinalizing()
#endif

#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *
Py_NewRef(PyObject *o)
{
    Py_INCREF(o);
    return o;
}
static inline PyObject *
Py_XNewRef(PyObject *o)
{
    Py_XINCREF(o);
    return o;
}
static inline int
PyModule_AddObjectRef(PyObject *mod, const char *name, PyObject *value)
{
    Py_XINCREF(value);
    if (PyModule_AddObject(mod, name, value) < 0) {
        Py_XDECREF(value);
        return -1;
    }
    return 0;
}
#  define Py_TPFLAGS_IMMUTABLETYPE 0
#  define Py_TPFLAGS_DISALLOW_INSTANTIATION 0
#endif

/* Thread-local storage: C11 keyword, or the MSVC spelling. */
#if defined(_MSC_VER) && !defined(__clang__)
#  define FTP_THREAD_LOCAL __declspec(thread)
#else
#  define FTP_THREAD_LOCAL _Thread_local
#endif

/* Seconds (a Python float) to engine nanoseconds, and back. */
#define FTP_NS_PER_SEC 1000000000.0

/* ------------------------------------------------------------------------ */
/* Module state                                                             */
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
    /* Objects the pool needs from other modules, looked up once. */
    PyObject *thread_type;          /* threading.Thread */
    PyObject *current_thread;       /* threading.current_thread */
    PyObject *partial_type;         /* functools.partial */
    PyObject *format_exception;     /* traceback.format_exception */
    PyObject *weakset;              /* weakref.WeakSet of live Pools */
    PyObject *logger;               /* the configured logger, or NULL */
    PyObject *str_tnum;
    PyObject *str_start;
    PyObject *str_join;
    PyObject *str_remove;
    /* asyncio's run_in_executor() (aiolink.c): its code object (None if
     * it is not the method the shortcut expects) and
     * _convert_future_exc, looked up when first needed, the function the
     * loop calls to complete an asyncio future, the method names used. */
    PyObject *aio_code;
    PyObject *aio_convert;
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

static inline ftp_state *
ftp_get_state(PyObject *module)
{
    return (ftp_state *)PyModule_GetState(module);
}

/* Attribute lookups and method calls by a C-string name.  CPython 3.11's
 * type attribute cache keeps a reference to the name object of each
 * recent lookup, in a slot chosen by its address: the fresh string that
 * PyObject_GetAttrString() or PyObject_CallMethod() make for every call
 * stays alive there until that slot is reused, and memory seems to grow
 * with every executor or pool made.  These use the interned name: one
 * object, one slot.  ftp_call_method() passes nargs (at most 3) args;
 * ftp_call_method_obj() is the same with a name already interned. */
PyObject *ftp_getattr(PyObject *o, const char *name);
PyObject *ftp_call_method(PyObject *o, const char *name,
                          PyObject *const *args, size_t nargs);
PyObject *ftp_call_method_obj(PyObject *o, PyObject *name,
                              PyObject *const *args, size_t nargs);

/* The module state of a heap type defined by this module (or a subclass). */
ftp_state *ftp_state_from_type(PyTypeObject *tp);

extern PyModuleDef ftp_module_def;

/* ------------------------------------------------------------------------ */
/* asyncio's run_in_executor() on the executor (aiolink.c)                  */
/* ------------------------------------------------------------------------ */

int ftp_aio_init(PyObject *module, ftp_state *st);
/* If the Python code calling submit() (on an executor of `executor_type`)
 * is asyncio's BaseEventLoop.run_in_executor: makes its loop's asyncio
 * future, links the pending Future `fut` to it and returns 1 with a new
 * reference in *afut.  0 (*afut NULL) for any other caller; -1 with an
 * exception set if the loop could not make a future. */
int ftp_aio_link_caller(PyTypeObject *executor_type, PyObject *fut,
                        PyObject **afut);
/* afut.cancelled(); errors are reported as unraisable and read as 0. */
int ftp_aio_cancelled(ftp_state *st, PyObject *afut);
/* The done Future `fut` completes its asyncio future `afut` on `loop`
 * (both references stolen), from any thread.  Never fails. */
void ftp_aio_complete(ftp_state *st, PyObject *fut, PyObject *afut,
                      PyObject *loop);

#define FTP_LOGGER_NAME "fastthreadpool"
#define FTP_DEFAULT_LOGGING_FORMAT \
    "[%(levelname)s/%(processName)s] %(message)s"

/* ------------------------------------------------------------------------ */
/* Semaphore (semaphore.c)                                                  */
/* ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    ftpool_sem_t *sem;
} ftp_semobject;

int ftp_semaphore_init_type(PyObject *module, ftp_state *st);
/* A new Semaphore(value) object, or NULL with an exception set. */
PyObject *ftp_semaphore_new(ftp_state *st, int64_t value);
/* Waits for one permit with the GIL released, in slices so that signals
 * are handled; timeout_ns < 0 waits forever.  1: acquired, 0: timed out,
 * -1: an exception (KeyboardInterrupt...) is set. */
int ftp_sem_wait(ftpool_sem_t *sem, int64_t timeout_ns);

/* ------------------------------------------------------------------------ */
/* Result queue (resultqueue.c): the type of Pool.done and Pool.failed      */
/* ------------------------------------------------------------------------ */

typedef struct ftp_rqobject ftp_rqobject;

int ftp_rq_init_type(PyObject *module, ftp_state *st);
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
 * it waits, with the GIL released, while the queue holds max entries or
 * more and the queue is not released (ftp_rq_unthrottle). */
void ftp_rq_set_limit(ftp_rqobject *q, Py_ssize_t max);
int ftp_rq_throttle(ftp_rqobject *q);
void ftp_rq_unthrottle(ftp_rqobject *q, int released);

/* Consumers that wait for "any change" of a set of queues register with a
 * notifier: the queue releases it after every push. */
void ftp_rq_set_notify(ftp_rqobject *q, ftpool_sem_t *sem,
                       atomic_int *waiters);
/* Releases `sem` once if `*waiters` is non-zero. */
static inline void
ftp_notify(ftpool_sem_t *sem, atomic_int *waiters)
{
    if (sem != NULL && atomic_load_explicit(waiters, memory_order_seq_cst)) {
        ftpool_sem_release(sem, 1);
    }
}

/* ------------------------------------------------------------------------ */
/* TimerObj (timerobj.c)                                                    */
/* ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *core;       /* the pool core that armed it, or NULL */
    uint64_t timer_id;    /* engine timer id; 0 = none */
    int kind;             /* FTP_TIMER_LATER or FTP_TIMER_SCHEDULE */
    int active;           /* armed and not finished (guarded by the GIL) */
    void *timer;          /* the pool's timer record while active */
} ftp_timerobject;

enum { FTP_TIMER_LATER = 1, FTP_TIMER_SCHEDULE = 2 };

int ftp_timer_init_type(PyObject *module, ftp_state *st);
ftp_timerobject *ftp_timer_new(ftp_state *st, PyObject *core, int kind);
/* Implemented in poolcore.c: cancels a timer of a core; 1 if it was
 * armed. */
int ftp_core_cancel_timer(PyObject *core, ftp_timerobject *t);

/* ------------------------------------------------------------------------ */
/* Pool (pool.c, poolcore.c, ascompleted.c)                                */
/* ------------------------------------------------------------------------ */

int ftp_pool_init_types(PyObject *module, ftp_state *st);
/* Module-level Shutdown(now) for one pool core (the registry holds
 * cores, so that pools dropped with work left are found too). */
int ftp_pool_shutdown_all(PyObject *pool, int now);

#endif /* FTP_H */
