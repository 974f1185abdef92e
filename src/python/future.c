/*
 * future.c - Future: the result of a call submitted to ThreadPoolExecutor.
 *
 * A heap type that subclasses concurrent.futures.Future, so that code which
 * checks isinstance(f, concurrent.futures.Future) (asyncio.wrap_future,
 * loop.run_in_executor) accepts it, and that overrides every method of its
 * base.  The state lives in C, guarded by the future's `lock` (an
 * ftp_mutex: the GIL with the GIL): every transition checks and updates
 * under it, and runs what it wakes or calls (waiters, callbacks, the
 * asyncio future) after releasing it.  A new future allocates nothing
 * besides itself: the condition and the waiter list that
 * concurrent.futures.wait() and as_completed() use (`_condition`,
 * `_waiters`) are made on first access, and result() and exception() block
 * on a lock of their own, made only when they wait.
 *
 * Layout: the base class is a Python class, whose instance size depends on
 * the CPython version, so our fields start at the base's tp_basicsize,
 * found at run time.  Every object field is declared as a writable
 * T_OBJECT_EX member: the inherited dealloc, traverse and clear slots of
 * Python classes (subtype_dealloc...) handle such members, and the managed
 * __dict__ and weak references of the base, with public API only.  Since
 * users can therefore rebind these members, the C code checks their types
 * before it relies on them.
 */
#include "executor.h"

#include <string.h>

enum {
    ST_PENDING,
    ST_RUNNING,
    ST_CANCELLED,
    ST_CANCELLED_AND_NOTIFIED,
    ST_FINISHED
};

/* Names of the states as concurrent.futures._base spells them. */
static const char *const state_names[] = {
    "PENDING", "RUNNING", "CANCELLED", "CANCELLED_AND_NOTIFIED", "FINISHED"
};
static const char *const state_descr[] = {
    "pending", "running", "cancelled", "cancelled", "finished"
};

/* A thread blocked in result() or exception().  It lives on the waiting
 * thread's stack and is linked into the future while the thread waits. */
typedef struct ftp_waiter {
    struct ftp_waiter *next;
    PyThread_type_lock lock;    /* held until the future wakes the thread */
} ftp_waiter;

typedef struct {
    /* The call, dropped once it has run: only the engine job (run, drop,
     * fail) touches these. */
    PyObject *fn;
    PyObject *args;             /* tuple */
    PyObject *kwargs;           /* dict or NULL */
    /* The rest is guarded by `lock`. */
    PyObject *result;
    PyObject *exception;
    PyObject *callback;         /* the first done callback */
    PyObject *callbacks;        /* list of the next ones */
    PyObject *condition;        /* fcond_object, made on demand */
    PyObject *waiters;          /* list of concurrent.futures waiters */
    /* run_in_executor(): the asyncio future to complete and its loop
     * (aiolink.c); set only on futures nobody else sees. */
    PyObject *aio_future;
    PyObject *aio_loop;
    ftp_waiter *cwaiters;       /* threads in result()/exception() */
    atomic_int state;           /* written under lock, read without */
    /* Untracked by the cyclic GC (see "GC tracking" below). */
    int gc_light;
    ftp_mutex lock;
} fut_data;

/* Offset of fut_data in the object: the base's instance size.  It is a
 * property of the CPython build, the same in every interpreter. */
static Py_ssize_t fut_off = -1;

static inline fut_data *
FD(PyObject *self)
{
    return (fut_data *)((char *)self + fut_off);
}

static inline int
state_of(fut_data *d)
{
    return ftp_load_int(&d->state);
}

static inline int
is_done(int state)
{
    return state >= ST_CANCELLED;
}

static inline int
is_cancelled(int state)
{
    return state == ST_CANCELLED || state == ST_CANCELLED_AND_NOTIFIED;
}

/* ------------------------------------------------------------------------ */
/* GC tracking                                                              */
/* ------------------------------------------------------------------------ */

/* A program that keeps many futures (a list of 200,000 submit() results)
 * would spend most of its time in the cyclic GC traversing them, although
 * a finished future that holds an int cannot be part of a cycle.  So, as
 * CPython does for tuples and dicts, the futures submit() makes are kept
 * out of the GC (`gc_light`) while they cannot be part of garbage:
 *
 * - while queued or running, the engine job holds a reference to the
 *   future, so the future and everything it holds (the call, the done
 *   callbacks) are reachable anyway;
 * - when the job lets it go (future_released), the future stays untracked
 *   only if what it still holds cannot lead back to it: a result that is
 *   not a GC object (or an untracked tuple), no exception, no callbacks,
 *   no `_condition` or `_waiters`;
 * - anything that gives a future references of another kind tracks it for
 *   good (gc_pin): setting an attribute (tp_setattro, which
 *   object.__setattr__ cannot bypass), `__dict__`, `_condition`,
 *   `_waiters`, set_running_or_notify_cancel() called by hand (a future
 *   left running by hand keeps its done callbacks after its job ends).
 *
 * Instances of subclasses are never untracked.  Nor is any future on the
 * free-threaded build: its collector (3.13) walks untracked objects too,
 * and since it spaces its passes by the tracked objects that survive,
 * 200,000 untracked futures made it run some 100 times instead of 17
 * while they were submitted. */
static void
gc_pin_locked(PyObject *self, fut_data *d)
{
    d->gc_light = 0;
    if (!PyObject_GC_IsTracked(self)) {
        PyObject_GC_Track(self);
    }
}

static void
gc_pin(PyObject *self, fut_data *d)
{
    ftp_lock(&d->lock);
    gc_pin_locked(self, d);
    ftp_unlock(&d->lock);
}

/* Can `o`, held by a finished future, lead back to it? */
static inline int
may_hold_cycle(PyObject *o)
{
    if (o == NULL || !PyObject_IS_GC(o)) {
        return 0;
    }
    /* An untracked tuple holds only objects that cannot: CPython untracks
     * it only then, and it cannot change. */
    return !PyTuple_CheckExact(o) || PyObject_GC_IsTracked(o);
}

/* The engine job lets the future go: from now on only users hold it. */
static void
future_released(PyObject *self, fut_data *d)
{
    ftp_lock(&d->lock);
    if (d->gc_light
        && (may_hold_cycle(d->result) || d->exception != NULL
            || d->callback != NULL || d->callbacks != NULL
            || d->condition != NULL || d->waiters != NULL
            || d->aio_future != NULL || d->aio_loop != NULL
            || d->fn != NULL || d->args != NULL || d->kwargs != NULL)) {
        gc_pin_locked(self, d);
    }
    ftp_unlock(&d->lock);
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* Raises `exc` again: its __traceback__ is kept and grows from here, as
 * with `raise exc` in Python. */
static void
raise_exception(PyObject *exc)
{
    if (PyExceptionInstance_Check(exc)) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    }
    else if (PyExceptionClass_Check(exc)) {
        PyErr_SetNone(exc);
    }
    else {
        PyErr_SetString(PyExc_TypeError,
                        "exceptions must derive from BaseException");
    }
}

/* An attribute of concurrent.futures._base (a new reference). */
static PyObject *
base_attr(const char *name)
{
    PyObject *mod = PyImport_ImportModule("concurrent.futures._base");
    if (mod == NULL) {
        return NULL;
    }
    PyObject *res = ftp_getattr(mod, name);
    Py_DECREF(mod);
    return res;
}

static void
raise_base_error(const char *name, PyObject *arg)
{
    PyObject *cls = base_attr(name);
    if (cls != NULL) {
        if (arg != NULL) {
            PyErr_SetObject(cls, arg);
        }
        else {
            PyErr_SetNone(cls);
        }
        Py_DECREF(cls);
    }
}

void
ftp_log_exception(const char *level, const char *msg, PyObject *arg,
                  PyObject *exc)
{
    PyObject *logger = NULL, *meth = NULL, *args = NULL, *kw = NULL;
    PyObject *res = NULL;

    logger = base_attr("LOGGER");
    if (logger == NULL) {
        goto done;
    }
    meth = ftp_getattr(logger, level);
    if (meth == NULL) {
        goto done;
    }
    args = arg ? Py_BuildValue("(sO)", msg, arg) : Py_BuildValue("(s)", msg);
    kw = Py_BuildValue("{sO}", "exc_info", exc ? exc : Py_True);
    if (args == NULL || kw == NULL) {
        goto done;
    }
    res = PyObject_Call(meth, args, kw);
done:
    if (res == NULL) {
        PyErr_WriteUnraisable(logger);
    }
    Py_XDECREF(res);
    Py_XDECREF(kw);
    Py_XDECREF(args);
    Py_XDECREF(meth);
    Py_XDECREF(logger);
}

/* ------------------------------------------------------------------------ */
/* The `_condition` object                                                  */
/* ------------------------------------------------------------------------ */

/* What `_condition` returns: a threading.Condition made cheap.  It wraps a
 * _thread.RLock and acts as threading.Condition(that lock): acquire,
 * release and the context manager go straight to the lock, and any other
 * attribute (wait, wait_for, notify, notify_all...) comes from a real
 * threading.Condition over the same lock, made the first time one is asked
 * for.  concurrent.futures.wait() and as_completed() only take the lock, so
 * they pay for one RLock per future instead of a Condition; and completing
 * a future skips notify_all() while no Condition exists, since nobody can
 * be waiting on one. */
typedef struct {
    PyObject_HEAD
    PyObject *lock;             /* _thread.RLock */
    PyObject *acquire;          /* its bound methods */
    PyObject *release;
    PyObject *cond;             /* threading.Condition(lock), or NULL;
                                   set once, under cond_lock */
    ftp_mutex cond_lock;
} fcond_object;

static void fcond_dealloc(PyObject *self);

static inline int
is_fcond(PyObject *o)
{
    return Py_TYPE(o)->tp_dealloc == fcond_dealloc;
}

static PyObject *
fcond_new(PyTypeObject *type)
{
    fcond_object *self = PyObject_GC_New(fcond_object, type);
    if (self == NULL) {
        return NULL;
    }
    self->lock = self->acquire = self->release = self->cond = NULL;
    memset(&self->cond_lock, 0, sizeof(self->cond_lock));
    PyObject *mod = PyImport_ImportModule("_thread");
    if (mod != NULL) {
        self->lock = ftp_call_method(mod, "RLock", NULL, 0);
        Py_DECREF(mod);
    }
    if (self->lock != NULL) {
        self->acquire = ftp_getattr(self->lock, "acquire");
        self->release = ftp_getattr(self->lock, "release");
    }
    PyObject_GC_Track(self);
    if (self->acquire == NULL || self->release == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* The threading.Condition over the lock, made on first use (borrowed:
 * once set it stays). */
static PyObject *
fcond_existing(fcond_object *self)
{
    PyObject *cond;

    ftp_lock(&self->cond_lock);
    cond = self->cond;
    ftp_unlock(&self->cond_lock);
    return cond;
}

static PyObject *
fcond_cond(fcond_object *self)
{
    PyObject *cond = fcond_existing(self), *made, *threading;

    if (cond != NULL) {
        return cond;
    }
    threading = PyImport_ImportModule("threading");
    if (threading == NULL) {
        return NULL;
    }
    made = PyObject_CallMethod(threading, "Condition", "O", self->lock);
    Py_DECREF(threading);
    if (made == NULL) {
        return NULL;
    }
    /* Making it ran Python code: another thread may have won. */
    ftp_lock(&self->cond_lock);
    if (self->cond == NULL) {
        self->cond = made;
        made = NULL;
    }
    cond = self->cond;
    ftp_unlock(&self->cond_lock);
    Py_XDECREF(made);
    return cond;
}

static PyObject *
fcond_getattro(PyObject *self, PyObject *name)
{
    PyObject *r = PyObject_GenericGetAttr(self, name);
    if (r != NULL || !PyErr_ExceptionMatches(PyExc_AttributeError)) {
        return r;
    }
    PyErr_Clear();
    PyObject *cond = fcond_cond((fcond_object *)self);
    return cond ? PyObject_GetAttr(cond, name) : NULL;
}

static PyObject *
fcond_acquire(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames)
{
    return PyObject_Vectorcall(((fcond_object *)self)->acquire, args, nargs,
                               kwnames);
}

static PyObject *
fcond_release(PyObject *self, PyObject *unused)
{
    return PyObject_CallNoArgs(((fcond_object *)self)->release);
}

static PyObject *
fcond_exit(PyObject *self, PyObject *args)
{
    PyObject *r = PyObject_CallNoArgs(((fcond_object *)self)->release);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyObject *
fcond_enter(PyObject *self, PyObject *unused)
{
    return PyObject_CallNoArgs(((fcond_object *)self)->acquire);
}

static int
fcond_traverse(PyObject *self, visitproc visit, void *arg)
{
    fcond_object *c = (fcond_object *)self;
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(c->lock);
    Py_VISIT(c->acquire);
    Py_VISIT(c->release);
    Py_VISIT(c->cond);
    return 0;
}

static int
fcond_clear(PyObject *self)
{
    fcond_object *c = (fcond_object *)self;
    Py_CLEAR(c->lock);
    Py_CLEAR(c->acquire);
    Py_CLEAR(c->release);
    Py_CLEAR(c->cond);
    return 0;
}

static void
fcond_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    fcond_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef fcond_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))fcond_acquire,
     METH_FASTCALL | METH_KEYWORDS, "Takes the lock (see RLock.acquire)."},
    {"release", fcond_release, METH_NOARGS, "Releases the lock."},
    {"__enter__", fcond_enter, METH_NOARGS, NULL},
    {"__exit__", fcond_exit, METH_VARARGS, NULL},
    {NULL}
};

static PyType_Slot fcond_slots[] = {
    {Py_tp_doc, "The condition of a fastthreadpool Future: behaves as a "
                "threading.Condition."},
    {Py_tp_getattro, fcond_getattro},
    {Py_tp_methods, fcond_methods},
    {Py_tp_traverse, fcond_traverse},
    {Py_tp_clear, fcond_clear},
    {Py_tp_dealloc, fcond_dealloc},
    {0, NULL}
};

static PyType_Spec fcond_spec = {
    .name = "fastthreadpool._FutureCondition",
    .basicsize = sizeof(fcond_object),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = fcond_slots,
};

/* ------------------------------------------------------------------------ */
/* State transitions                                                        */
/* ------------------------------------------------------------------------ */

/* Takes the future's Condition if one was made (someone used `_condition`,
 * e.g. concurrent.futures.wait): that keeps this transition atomic with the
 * code that inspects the state under it.  Taking it may block, so callers
 * read the state only after this.  Returns the condition to pass to
 * cond_release (NULL if none); errors are reported as unraisable. */
static PyObject *
cond_acquire(fut_data *d)
{
    PyObject *cond, *r;

    ftp_lock(&d->lock);
    cond = Py_XNewRef(d->condition);
    ftp_unlock(&d->lock);
    if (cond == NULL) {
        return NULL;
    }
    r = is_fcond(cond)
        ? PyObject_CallNoArgs(((fcond_object *)cond)->acquire)
        : ftp_call_method(cond, "acquire", NULL, 0);
    if (r == NULL) {
        PyErr_WriteUnraisable(cond);
        Py_DECREF(cond);
        return NULL;
    }
    Py_DECREF(r);
    return cond;
}

static void
cond_release(PyObject *cond)
{
    PyObject *r;

    if (cond == NULL) {
        return;
    }
    r = is_fcond(cond)
        ? PyObject_CallNoArgs(((fcond_object *)cond)->release)
        : ftp_call_method(cond, "release", NULL, 0);
    if (r == NULL) {
        PyErr_WriteUnraisable(cond);
    }
    Py_XDECREF(r);
    Py_DECREF(cond);
}

/* What a transition hands out under the lock, to be woken, notified or
 * called after it: references and the list of blocked threads. */
typedef struct {
    PyObject *waiters;          /* the `_waiters` list, or NULL */
    ftp_waiter *cwaiters;
    PyObject *callback, *callbacks;
    PyObject *aio_future, *aio_loop;
} handout;

/* Under the lock: takes what a future that is now done hands out. */
static void
take_done_handout(fut_data *d, handout *h)
{
    h->waiters = Py_XNewRef(d->waiters);
    h->cwaiters = d->cwaiters;
    h->callback = d->callback;
    h->callbacks = d->callbacks;
    h->aio_future = d->aio_future;
    h->aio_loop = d->aio_loop;
    d->cwaiters = NULL;
    d->callback = d->callbacks = NULL;
    d->aio_future = d->aio_loop = NULL;
}

/* Tells the concurrent.futures waiters (`_waiters`) about the new state by
 * calling `method` (add_result, add_exception, add_cancelled) on each. */
static void
notify_waiters(PyObject *self, PyObject *waiters, const char *method)
{
    PyObject *copy;

    if (waiters == NULL || !PyList_Check(waiters)
        || PyList_GET_SIZE(waiters) == 0) {
        return;
    }
    copy = PyList_GetSlice(waiters, 0, PY_SSIZE_T_MAX);
    if (copy == NULL) {
        PyErr_WriteUnraisable(self);
        return;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(copy); i++) {
        PyObject *w = PyList_GET_ITEM(copy, i);
        PyObject *r = ftp_call_method(w, method, &self, 1);
        if (r == NULL) {
            PyErr_WriteUnraisable(w);
        }
        Py_XDECREF(r);
    }
    Py_DECREF(copy);
}

/* Wakes everything that waits for the future to be done: notify_all() on
 * the Condition (held by the caller) and the threads in result(). */
static void
wake_all(ftp_waiter *w, PyObject *cond)
{
    if (cond != NULL && is_fcond(cond)) {
        /* Only a threading.Condition made on demand can have waiters. */
        cond = fcond_existing((fcond_object *)cond);
    }
    if (cond != NULL) {
        PyObject *r = ftp_call_method(cond, "notify_all", NULL, 0);
        if (r == NULL) {
            PyErr_WriteUnraisable(cond);
        }
        Py_XDECREF(r);
    }
    /* The list was unlinked under the lock: its threads wait until their
     * lock is released (see wait_done), so `next` is read first. */
    while (w != NULL) {
        ftp_waiter *next = w->next;
        w->next = NULL;
        PyThread_release_lock(w->lock);
        w = next;
    }
}

static void
call_callback(PyObject *self, PyObject *cb)
{
    PyObject *r = PyObject_CallOneArg(cb, self);

    if (r != NULL) {
        Py_DECREF(r);
        return;
    }
    if (PyErr_ExceptionMatches(PyExc_Exception)) {
        PyObject *exc = ftp_err_fetch();
        ftp_log_exception("error", "exception calling callback for %r",
                          self, exc);
        Py_XDECREF(exc);
    }
    else {
        PyErr_WriteUnraisable(cb);
    }
}

/* The outcome of a done future: *value is a new reference to the result or
 * the exception, NULL otherwise. */
static int
outcome_of(PyObject *self, PyObject **value)
{
    fut_data *d = FD(self);
    int outcome;

    *value = NULL;
    ftp_lock(&d->lock);
    if (is_cancelled(state_of(d))) {
        outcome = FTP_OUTCOME_CANCELLED;
    }
    else if (state_of(d) != ST_FINISHED) {
        outcome = FTP_OUTCOME_PENDING;
    }
    else if (d->exception != NULL) {
        *value = Py_NewRef(d->exception);
        outcome = FTP_OUTCOME_EXCEPTION;
    }
    else {
        *value = Py_NewRef(d->result ? d->result : Py_None);
        outcome = FTP_OUTCOME_RESULT;
    }
    ftp_unlock(&d->lock);
    return outcome;
}

/* After a transition to done: completes the linked asyncio future and
 * runs the done callbacks in the order they were added (references
 * consumed). */
static void
finish_handout(PyObject *self, handout *h)
{
    Py_XDECREF(h->waiters);
    if (h->aio_future != NULL || h->aio_loop != NULL) {
        ftp_state *st = ftp_state_from_type(Py_TYPE(self));
        if (h->aio_future == NULL || h->aio_loop == NULL || st == NULL) {
            PyErr_Clear();
            Py_XDECREF(h->aio_future);
            Py_XDECREF(h->aio_loop);
        }
        else {
            PyObject *value;
            int outcome = outcome_of(self, &value);
            ftp_aio_complete(st, outcome, value, h->aio_future,
                             h->aio_loop);
            Py_XDECREF(value);
        }
    }
    if (h->callback != NULL) {
        call_callback(self, h->callback);
        Py_DECREF(h->callback);
    }
    if (h->callbacks != NULL) {
        if (PyList_Check(h->callbacks)) {
            for (Py_ssize_t i = 0; i < PyList_GET_SIZE(h->callbacks); i++) {
                PyObject *f = PyList_GET_ITEM(h->callbacks, i);
                Py_INCREF(f);
                call_callback(self, f);
                Py_DECREF(f);
            }
        }
        Py_DECREF(h->callbacks);
    }
}

/* Completes the future with a result (exc == NULL) or an exception (both
 * references stolen).  Returns 0, or -1 without an exception set if the
 * future was already done. */
static int
finish(PyObject *self, PyObject *result, PyObject *exc)
{
    fut_data *d = FD(self);
    PyObject *cond = cond_acquire(d), *old_r, *old_e;
    handout h;

    ftp_lock(&d->lock);
    if (is_done(state_of(d))) {
        ftp_unlock(&d->lock);
        cond_release(cond);
        Py_XDECREF(result);
        Py_XDECREF(exc);
        return -1;
    }
    old_r = d->result;
    old_e = d->exception;
    d->result = result;
    d->exception = exc;
    ftp_store_int(&d->state, ST_FINISHED);
    take_done_handout(d, &h);
    if (d->gc_light && (may_hold_cycle(result) || exc != NULL)) {
        /* Before anyone sees the outcome (future_released comes later,
         * from the worker). */
        gc_pin_locked(self, d);
    }
    ftp_unlock(&d->lock);
    /* Whoever sees this outcome - a thread woken below, or one that looks
     * right after - may submit its next call at once: from a worker, that
     * call is this worker's next job, not a reason to start another
     * worker (a caller alternating submit() and result() keeps one
     * thread, as with the standard executor). */
    ftpool_job_returning();
    notify_waiters(self, h.waiters,
                   exc != NULL ? "add_exception" : "add_result");
    wake_all(h.cwaiters, cond);
    cond_release(cond);
    Py_XDECREF(old_r);
    Py_XDECREF(old_e);
    finish_handout(self, &h);
    return 0;
}

/* PENDING -> RUNNING (1), or CANCELLED -> CANCELLED_AND_NOTIFIED (0);
 * -1 for any other state. */
static int
set_running_or_notify(PyObject *self, fut_data *d)
{
    PyObject *cond = cond_acquire(d), *waiters = NULL;
    int res;

    ftp_lock(&d->lock);
    if (state_of(d) == ST_PENDING) {
        ftp_store_int(&d->state, ST_RUNNING);
        res = 1;
    }
    else if (state_of(d) == ST_CANCELLED) {
        ftp_store_int(&d->state, ST_CANCELLED_AND_NOTIFIED);
        waiters = Py_XNewRef(d->waiters);
        res = 0;
    }
    else {
        res = -1;
    }
    ftp_unlock(&d->lock);
    notify_waiters(self, waiters, "add_cancelled");
    Py_XDECREF(waiters);
    cond_release(cond);
    return res;
}

/* PENDING -> CANCELLED.  1 if the future is cancelled now or was already,
 * 0 if it is running or finished. */
static int
cancel(PyObject *self, fut_data *d)
{
    PyObject *cond = cond_acquire(d);
    handout h;
    int state;

    ftp_lock(&d->lock);
    state = state_of(d);
    if (state != ST_PENDING) {
        ftp_unlock(&d->lock);
        cond_release(cond);
        return is_cancelled(state);
    }
    ftp_store_int(&d->state, ST_CANCELLED);
    take_done_handout(d, &h);
    ftp_unlock(&d->lock);
    wake_all(h.cwaiters, cond);
    cond_release(cond);
    finish_handout(self, &h);
    return 1;
}

static void
drop_call(fut_data *d)
{
    Py_CLEAR(d->fn);
    Py_CLEAR(d->args);
    Py_CLEAR(d->kwargs);
}

/* wait_done() through the Condition: `with cond: cond.wait_for(done, t)`. */
static int
wait_on_condition(PyObject *self, PyObject *cond, double timeout)
{
    PyObject *done = NULL, *t = NULL, *r = NULL, *exc;
    int err = -1;

    r = ftp_call_method(cond, "acquire", NULL, 0);
    if (r == NULL) {
        goto fail;
    }
    Py_DECREF(r);
    done = ftp_getattr(self, "done");
    t = timeout < 0 ? Py_NewRef(Py_None) : PyFloat_FromDouble(timeout);
    if (done && t) {
        PyObject *wargs[] = {done, t};
        r = ftp_call_method(cond, "wait_for", wargs, 2);
    }
    else {
        r = NULL;
    }
    err = r == NULL ? -1 : 0;
    Py_XDECREF(r);
    /* Released even when the wait raised, keeping that exception. */
    exc = ftp_err_fetch();
    r = ftp_call_method(cond, "release", NULL, 0);
    if (r == NULL) {
        err = -1;
        if (exc != NULL) {
            PyErr_Clear();
        }
    }
    Py_XDECREF(r);
    ftp_err_restore(exc);
fail:
    Py_XDECREF(t);
    Py_XDECREF(done);
    return err;
}

/* Unlinks `w`, which was linked, from the future's blocked threads.  0 if
 * it was still linked; 1 if a transition had taken it (and will release
 * its lock). */
static int
unlink_waiter(fut_data *d, ftp_waiter *w)
{
    int taken = 1;

    ftp_lock(&d->lock);
    for (ftp_waiter **p = &d->cwaiters; *p != NULL; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            taken = 0;
            break;
        }
    }
    ftp_unlock(&d->lock);
    return taken;
}

/* Blocks until the future is done or `timeout` seconds (< 0: forever) have
 * passed, detached while it sleeps.  0, or -1 with an exception set (a
 * signal handler raised). */
static int
wait_done(PyObject *self, fut_data *d, double timeout)
{
    ftp_waiter w;
    PyObject *cond;
    int err = 0, woken = 0, linked = 0;
    int64_t deadline = 0;

    if (is_done(state_of(d)) || timeout == 0) {
        return 0;
    }
    w.lock = PyThread_allocate_lock();
    if (w.lock == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    /* Held by us; wake_all() releases it, which wakes the acquire below. */
    PyThread_acquire_lock(w.lock, WAIT_LOCK);
    ftp_lock(&d->lock);
    cond = Py_XNewRef(d->condition);
    if (cond == NULL && !is_done(state_of(d))) {
        w.next = d->cwaiters;
        d->cwaiters = &w;
        linked = 1;
    }
    ftp_unlock(&d->lock);
    if (cond != NULL) {
        /* Someone uses `_condition` and may hold it while calling us (the
         * base class's result() does that): wait on it, which releases it,
         * as the base class would.  finish() notifies it. */
        PyThread_release_lock(w.lock);
        PyThread_free_lock(w.lock);
        err = wait_on_condition(self, cond, timeout);
        Py_DECREF(cond);
        return err;
    }
    if (timeout > 0) {
        deadline = ftpool_now_ns() + (int64_t)(timeout * FTP_NS_PER_SEC);
    }
    Py_INCREF(self);
    while (!woken && !is_done(state_of(d))) {
        PY_TIMEOUT_T us = -1;
        PyLockStatus r;
        if (timeout > 0) {
            int64_t left = deadline - ftpool_now_ns();
            us = left > 0 ? (PY_TIMEOUT_T)(left / 1000) : 0;
            if (us > PY_TIMEOUT_MAX) {
                us = PY_TIMEOUT_MAX;
            }
        }
        Py_BEGIN_ALLOW_THREADS
        r = PyThread_acquire_lock_timed(w.lock, us, 1);
        Py_END_ALLOW_THREADS
        if (r == PY_LOCK_ACQUIRED) {
            woken = 1;      /* released by wake_all() */
            break;
        }
        if (r == PY_LOCK_FAILURE) {
            break;          /* timed out */
        }
        /* Interrupted by a signal: run the Python handlers, go on waiting
         * unless one of them raised or the future is done meanwhile. */
        if (Py_MakePendingCalls() < 0) {
            err = -1;
            break;
        }
    }
    if (linked && !woken && unlink_waiter(d, &w)) {
        /* A transition took us off the list and releases our lock any
         * moment now (wake_all): wait for that before freeing it. */
        Py_BEGIN_ALLOW_THREADS
        PyThread_acquire_lock(w.lock, WAIT_LOCK);
        Py_END_ALLOW_THREADS
    }
    PyThread_release_lock(w.lock);
    PyThread_free_lock(w.lock);
    Py_DECREF(self);
    return err;
}

/* timeout argument: None -> -1 (forever), a number -> seconds >= 0. */
static int
parse_timeout(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
              double *timeout)
{
    PyObject *t = Py_None;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs + nkw > 1) {
        PyErr_SetString(PyExc_TypeError, "expected at most 1 argument");
        return -1;
    }
    if (nargs == 1) {
        t = args[0];
    }
    else if (nkw == 1) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, 0);
        if (!PyUnicode_Check(name)
            || PyUnicode_CompareWithASCIIString(name, "timeout") != 0) {
            PyErr_Format(PyExc_TypeError,
                         "unexpected keyword argument %R", name);
            return -1;
        }
        t = args[0];
    }
    if (t == Py_None) {
        *timeout = -1;
        return 0;
    }
    double v = PyFloat_AsDouble(t);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (v != v) {
        PyErr_SetString(PyExc_ValueError, "timeout must not be NaN");
        return -1;
    }
    /* As threading.Condition.wait: a negative timeout does not wait. */
    *timeout = v > 0 ? v : 0;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Entry points for the executor                                            */
/* ------------------------------------------------------------------------ */

PyObject *
ftp_future_new_call(PyTypeObject *type, PyObject *fn, PyObject *args,
                    PyObject *kwargs)
{
    PyObject *self = type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    fut_data *d = FD(self);
    d->fn = Py_NewRef(fn);
    d->args = Py_NewRef(args);
    d->kwargs = Py_XNewRef(kwargs);
    if (!FTP_FREE_THREADED
        && !ftp_future_check_type((PyObject *)type->tp_base)) {
        /* Our own type, not a subclass: see "GC tracking". */
        d->gc_light = 1;
        PyObject_GC_UnTrack(self);
    }
    return self;
}

void
ftp_future_run(PyObject *self)
{
    fut_data *d = FD(self);
    PyObject *afut;

    ftp_lock(&d->lock);
    afut = Py_XNewRef(d->aio_future);
    ftp_unlock(&d->lock);
    if (afut != NULL) {
        /* What asyncio's chain does when its future is cancelled. */
        ftp_state *st = ftp_state_from_type(Py_TYPE(self));
        if (st == NULL) {
            PyErr_Clear();
        }
        else if (ftp_aio_cancelled(st, afut)) {
            cancel(self, d);
        }
        Py_DECREF(afut);
    }
    if (set_running_or_notify(self, d) != 1) {
        /* Cancelled meanwhile (or completed by hand): nothing to run. */
        drop_call(d);
        future_released(self, d);
        return;
    }
    PyObject *fn = d->fn, *args = d->args, *kwargs = d->kwargs;
    d->fn = d->args = d->kwargs = NULL;
    PyObject *res;
    if (fn == NULL || args == NULL || !PyTuple_Check(args)
        || (kwargs != NULL && !PyDict_Check(kwargs))) {
        PyErr_SetString(PyExc_RuntimeError, "the future's call was lost");
        res = NULL;
    }
    else {
        res = PyObject_Call(fn, args, kwargs);
    }
    Py_XDECREF(fn);
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    if (res != NULL) {
        finish(self, res, NULL);
    }
    else {
        finish(self, NULL, ftp_err_fetch());
    }
    future_released(self, d);
}

void
ftp_future_link_aio(PyObject *self, PyObject *afut, PyObject *loop)
{
    fut_data *d = FD(self);

    /* Before anyone else sees the future: nothing to guard. */
    Py_XSETREF(d->aio_future, Py_NewRef(afut));
    Py_XSETREF(d->aio_loop, Py_NewRef(loop));
}

void
ftp_future_fail(PyObject *self, PyObject *exc)
{
    fut_data *d = FD(self);
    drop_call(d);
    if (set_running_or_notify(self, d) == 1) {
        finish(self, NULL, Py_NewRef(exc));
    }
    future_released(self, d);
}

void
ftp_future_drop(PyObject *self)
{
    fut_data *d = FD(self);
    drop_call(d);
    /* The work will never be picked up, so notify at once what the worker
     * would have notified when reaching it. */
    cancel(self, d);
    set_running_or_notify(self, d);
    future_released(self, d);
}

/* ------------------------------------------------------------------------ */
/* Methods                                                                  */
/* ------------------------------------------------------------------------ */

static int
init(PyObject *self, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) != 0
        || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "Future() takes no arguments");
        return -1;
    }
    return 0;
}

static PyObject *
fut_cancel(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(cancel(self, FD(self)));
}

static PyObject *
fut_cancelled(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(is_cancelled(state_of(FD(self))));
}

static PyObject *
fut_running(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(state_of(FD(self)) == ST_RUNNING);
}

static PyObject *
fut_done(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(is_done(state_of(FD(self))));
}

/* Waits for the future like result()/exception(): the outcome (new
 * references: the result, or the exception, in *value; *is_exc tells
 * which), or -1 with CancelledError, TimeoutError or the wait's error
 * set. */
static int
wait_finished(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames, PyObject **value, int *is_exc)
{
    fut_data *d = FD(self);
    double timeout;
    int state;

    if (state_of(d) != ST_FINISHED) {
        if (parse_timeout(args, nargs, kwnames, &timeout) < 0) {
            return -1;
        }
        if (wait_done(self, d, timeout) < 0) {
            return -1;
        }
    }
    ftp_lock(&d->lock);
    state = state_of(d);
    if (state == ST_FINISHED) {
        *is_exc = d->exception != NULL;
        *value = Py_NewRef(d->exception ? d->exception
                           : d->result ? d->result : Py_None);
    }
    ftp_unlock(&d->lock);
    if (is_cancelled(state)) {
        raise_base_error("CancelledError", NULL);
        return -1;
    }
    if (state != ST_FINISHED) {
        raise_base_error("TimeoutError", NULL);
        return -1;
    }
    return 0;
}

static PyObject *
fut_result(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
           PyObject *kwnames)
{
    PyObject *value;
    int is_exc;

    if (wait_finished(self, args, nargs, kwnames, &value, &is_exc) < 0) {
        return NULL;
    }
    if (is_exc) {
        raise_exception(value);
        Py_DECREF(value);
        return NULL;
    }
    return value;
}

static PyObject *
fut_exception(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames)
{
    PyObject *value;
    int is_exc;

    if (wait_finished(self, args, nargs, kwnames, &value, &is_exc) < 0) {
        return NULL;
    }
    if (!is_exc) {
        Py_SETREF(value, Py_NewRef(Py_None));
    }
    return value;
}

static PyObject *
fut_add_done_callback(PyObject *self, PyObject *fn)
{
    fut_data *d = FD(self);
    PyObject *cond = cond_acquire(d), *r, *stale = NULL;
    int err = 0, done;

    ftp_lock(&d->lock);
    done = is_done(state_of(d));
    if (!done) {
        /* A gc_light future that is not done is held by its engine job,
         * which drops the callbacks before it lets the future go. */
        if (d->callback == NULL) {
            d->callback = Py_NewRef(fn);
        }
        else if (d->callbacks == NULL || !PyList_Check(d->callbacks)) {
            PyObject *list = PyList_New(1);
            if (list == NULL) {
                err = -1;
            }
            else {
                PyList_SET_ITEM(list, 0, Py_NewRef(fn));
                stale = d->callbacks;
                d->callbacks = list;
            }
        }
        else {
            err = PyList_Append(d->callbacks, fn);
        }
    }
    ftp_unlock(&d->lock);
    Py_XDECREF(stale);
    cond_release(cond);
    if (err < 0) {
        return NULL;
    }
    if (!done) {
        Py_RETURN_NONE;
    }
    /* Already done: call it now, in this thread. */
    r = PyObject_CallOneArg(fn, self);
    if (r == NULL) {
        PyObject *exc;
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            return NULL;
        }
        exc = ftp_err_fetch();
        ftp_log_exception("error", "exception calling callback for %r",
                          self, exc);
        Py_XDECREF(exc);
    }
    Py_XDECREF(r);
    Py_RETURN_NONE;
}

static PyObject *
fut_set_running_or_notify_cancel(PyObject *self, PyObject *unused)
{
    fut_data *d = FD(self);
    int r;

    /* Run by hand, the future may stay running with callbacks after its
     * engine job has let it go. */
    gc_pin(self, d);
    r = set_running_or_notify(self, d);
    if (r < 0) {
        PyErr_SetString(PyExc_RuntimeError, "Future in unexpected state");
        return NULL;
    }
    return PyBool_FromLong(r);
}

static PyObject *
invalid_state(PyObject *self)
{
    PyObject *msg = PyUnicode_FromFormat(
        "%s: %R", state_names[state_of(FD(self))], self);

    if (msg != NULL) {
        raise_base_error("InvalidStateError", msg);
        Py_DECREF(msg);
    }
    return NULL;
}

static PyObject *
fut_set_result(PyObject *self, PyObject *result)
{
    if (finish(self, Py_NewRef(result), NULL) < 0) {
        return invalid_state(self);
    }
    Py_RETURN_NONE;
}

static PyObject *
fut_set_exception(PyObject *self, PyObject *exc)
{
    /* None is stored as "no exception", as the base class would read it. */
    if (finish(self, NULL, exc == Py_None ? NULL : Py_NewRef(exc)) < 0) {
        return invalid_state(self);
    }
    Py_RETURN_NONE;
}

static PyObject *
fut_repr(PyObject *self)
{
    fut_data *d = FD(self);
    PyObject *name = ftp_getattr((PyObject *)Py_TYPE(self), "__name__");
    PyObject *v = NULL, *res;
    int state, raised = 0;

    if (name == NULL) {
        return NULL;
    }
    ftp_lock(&d->lock);
    state = state_of(d);
    if (state == ST_FINISHED) {
        raised = d->exception != NULL;
        v = Py_NewRef(d->exception ? d->exception
                      : d->result ? d->result : Py_None);
    }
    ftp_unlock(&d->lock);
    if (v != NULL) {
        res = PyUnicode_FromFormat("<%U at %p state=%s %s %s>", name, self,
                                   state_descr[state],
                                   raised ? "raised" : "returned",
                                   Py_TYPE(v)->tp_name);
        Py_DECREF(v);
    }
    else {
        res = PyUnicode_FromFormat("<%U at %p state=%s>", name, self,
                                   state_descr[state]);
    }
    Py_DECREF(name);
    return res;
}

/* ------------------------------------------------------------------------ */
/* Attributes concurrent.futures reads directly                             */
/* ------------------------------------------------------------------------ */

static PyObject *
get_state(PyObject *self, void *closure)
{
    return PyUnicode_InternFromString(state_names[state_of(FD(self))]);
}

static PyObject *
get_condition(PyObject *self, void *closure)
{
    fut_data *d = FD(self);
    PyObject *cond, *tp, *made;

    gc_pin(self, d);
    ftp_lock(&d->lock);
    cond = Py_XNewRef(d->condition);
    ftp_unlock(&d->lock);
    if (cond != NULL) {
        return cond;
    }
    tp = ftp_getattr((PyObject *)Py_TYPE(self), "_ftp_condition_type");
    if (tp == NULL) {
        return NULL;
    }
    if (!PyType_Check(tp)
        || ((PyTypeObject *)tp)->tp_dealloc != fcond_dealloc) {
        Py_DECREF(tp);
        PyErr_SetString(PyExc_TypeError, "_ftp_condition_type was replaced");
        return NULL;
    }
    made = fcond_new((PyTypeObject *)tp);
    Py_DECREF(tp);
    if (made == NULL) {
        return NULL;
    }
    /* Making it ran Python code: another thread may have won. */
    ftp_lock(&d->lock);
    if (d->condition == NULL) {
        d->condition = made;
        made = NULL;
    }
    cond = Py_NewRef(d->condition);
    ftp_unlock(&d->lock);
    Py_XDECREF(made);
    return cond;
}

static PyObject *
get_waiters(PyObject *self, void *closure)
{
    fut_data *d = FD(self);
    PyObject *w;

    gc_pin(self, d);
    ftp_lock(&d->lock);
    if (d->waiters == NULL) {
        d->waiters = PyList_New(0);
    }
    w = Py_XNewRef(d->waiters);
    ftp_unlock(&d->lock);
    return w;
}

static PyObject *
get_result(PyObject *self, void *closure)
{
    fut_data *d = FD(self);
    PyObject *r;

    ftp_lock(&d->lock);
    r = Py_NewRef(d->result ? d->result : Py_None);
    ftp_unlock(&d->lock);
    return r;
}

static PyObject *
get_exception(PyObject *self, void *closure)
{
    fut_data *d = FD(self);
    PyObject *e;

    ftp_lock(&d->lock);
    e = Py_NewRef(d->exception ? d->exception : Py_None);
    ftp_unlock(&d->lock);
    return e;
}

/* Attributes and `__dict__` may give the future references that lead back
 * to it: they track it (see "GC tracking"). */
static int
fut_setattro(PyObject *self, PyObject *name, PyObject *value)
{
    gc_pin(self, FD(self));
    return PyObject_GenericSetAttr(self, name, value);
}

static PyObject *
get_dict(PyObject *self, void *closure)
{
    gc_pin(self, FD(self));
    return PyObject_GenericGetDict(self, closure);
}

static int
set_dict(PyObject *self, PyObject *value, void *closure)
{
    gc_pin(self, FD(self));
    return PyObject_GenericSetDict(self, value, closure);
}

static PyGetSetDef fut_getset[] = {
    {"__dict__", get_dict, set_dict, NULL, NULL},
    {"_state", get_state, NULL, "The state's name, as in "
     "concurrent.futures._base.", NULL},
    {"_condition", get_condition, NULL, "Acts as a threading.Condition "
     "notified when the future is done (made on first access).", NULL},
    {"_waiters", get_waiters, NULL, "The concurrent.futures.wait() waiters "
     "(made on first access).", NULL},
    {"_result", get_result, NULL, NULL, NULL},
    {"_exception", get_exception, NULL, NULL, NULL},
    {NULL}
};

PyDoc_STRVAR(fut_doc,
"Future()\n"
"--\n"
"\n"
"The future of a call submitted to a ThreadPoolExecutor.\n"
"\n"
"A subclass of concurrent.futures.Future written in C, with the same\n"
"methods and behaviour: concurrent.futures.wait(), as_completed() and\n"
"asyncio.wrap_future() accept it.  Every method may be called from any\n"
"thread, also on free-threaded CPython: a future completes exactly once,\n"
"and each callback is called once.  Made directly, Future() is pending\n"
"until set_running_or_notify_cancel(), set_result() or set_exception() is\n"
"called, as for an executor of one's own.");

PyDoc_STRVAR(fut_cancel_doc,
"cancel($self, /)\n"
"--\n"
"\n"
"Cancel the future if its call has not started.\n"
"\n"
"Returns True if the future is cancelled (now or before), False if the\n"
"call is running or has finished.  Cancelling wakes the threads waiting\n"
"for the future and calls its callbacks.");

PyDoc_STRVAR(fut_cancelled_doc,
"cancelled($self, /)\n"
"--\n"
"\n"
"Return True if the future was cancelled, and False otherwise.");

PyDoc_STRVAR(fut_running_doc,
"running($self, /)\n"
"--\n"
"\n"
"Return True if the call is running now, and False if it has not started\n"
"or is done.");

PyDoc_STRVAR(fut_done_doc,
"done($self, /)\n"
"--\n"
"\n"
"Return True if the future was cancelled or its call has finished: its\n"
"state will not change any more.");

PyDoc_STRVAR(fut_result_doc,
"result($self, /, timeout=None)\n"
"--\n"
"\n"
"Return the call's result, waiting for it if needed.\n"
"\n"
"timeout is the most seconds to wait (None: no limit; 0 or negative: do\n"
"not wait).  Raises concurrent.futures.TimeoutError if it runs out,\n"
"concurrent.futures.CancelledError if the future was cancelled, and the\n"
"call's own exception if the call raised one.");

PyDoc_STRVAR(fut_exception_doc,
"exception($self, /, timeout=None)\n"
"--\n"
"\n"
"Return the exception the call raised, or None if it returned, waiting\n"
"for it if needed.\n"
"\n"
"timeout is the most seconds to wait (None: no limit; 0 or negative: do\n"
"not wait).  Raises concurrent.futures.TimeoutError if it runs out, and\n"
"concurrent.futures.CancelledError if the future was cancelled.");

PyDoc_STRVAR(fut_add_done_callback_doc,
"add_done_callback($self, fn, /)\n"
"--\n"
"\n"
"Call fn(future) once the future is cancelled or finished.\n"
"\n"
"If it is done already, fn is called at once in this thread; otherwise in\n"
"the thread that completes the future, in the order the callbacks were\n"
"added.  An Exception raised by fn is logged on the concurrent.futures\n"
"logger and ignored.");

PyDoc_STRVAR(fut_set_running_or_notify_cancel_doc,
"set_running_or_notify_cancel($self, /)\n"
"--\n"
"\n"
"For executors: mark the future running before its call starts.\n"
"\n"
"Returns False if the future was cancelled (its waiters are notified\n"
"then), True if it is now running.  Raises RuntimeError if it is already\n"
"running or done.");

PyDoc_STRVAR(fut_set_result_doc,
"set_result($self, result, /)\n"
"--\n"
"\n"
"For executors: complete the future with result.\n"
"\n"
"Wakes the threads waiting for it and calls its callbacks.  Raises\n"
"concurrent.futures.InvalidStateError if the future is already done.");

PyDoc_STRVAR(fut_set_exception_doc,
"set_exception($self, exception, /)\n"
"--\n"
"\n"
"For executors: complete the future with exception, an exception instance\n"
"that result() will raise.\n"
"\n"
"Wakes the threads waiting for it and calls its callbacks.  Raises\n"
"concurrent.futures.InvalidStateError if the future is already done.");

#define FAST (METH_FASTCALL | METH_KEYWORDS)

static PyMethodDef fut_methods[] = {
    {"cancel", fut_cancel, METH_NOARGS,
     fut_cancel_doc},
    {"cancelled", fut_cancelled, METH_NOARGS,
     fut_cancelled_doc},
    {"running", fut_running, METH_NOARGS,
     fut_running_doc},
    {"done", fut_done, METH_NOARGS,
     fut_done_doc},
    {"result", (PyCFunction)(void (*)(void))fut_result, FAST,
     fut_result_doc},
    {"exception", (PyCFunction)(void (*)(void))fut_exception, FAST,
     fut_exception_doc},
    {"add_done_callback", fut_add_done_callback, METH_O,
     fut_add_done_callback_doc},
    {"set_running_or_notify_cancel", fut_set_running_or_notify_cancel,
     METH_NOARGS, fut_set_running_or_notify_cancel_doc},
    {"set_result", fut_set_result, METH_O,
     fut_set_result_doc},
    {"set_exception", fut_set_exception, METH_O,
     fut_set_exception_doc},
    {NULL}
};

int
ftp_future_check_type(PyObject *type)
{
    if (!PyType_Check(type)) {
        return 0;
    }
    for (PyTypeObject *t = (PyTypeObject *)type; t != NULL; t = t->tp_base) {
        if (t->tp_init == init) {
            return 1;
        }
    }
    return 0;
}

PyTypeObject *
ftp_future_create_type(PyObject *module)
{
    PyObject *base = NULL, *bases = NULL;
    PyTypeObject *type = NULL;

    base = base_attr("Future");
    if (base == NULL) {
        return NULL;
    }
    if (!PyType_Check(base)) {
        PyErr_SetString(PyExc_TypeError,
                        "concurrent.futures.Future is not a class");
        goto done;
    }
    Py_ssize_t off = ((PyTypeObject *)base)->tp_basicsize;
    if (fut_off >= 0 && fut_off != off) {
        PyErr_SetString(PyExc_ImportError,
                        "concurrent.futures.Future changed its layout");
        goto done;
    }
    fut_off = off;

    PyMemberDef members[] = {
#define M(name, field) \
        {name, T_OBJECT_EX, off + offsetof(fut_data, field), 0, NULL}
        M("_ftp_fn", fn),
        M("_ftp_args", args),
        M("_ftp_kwargs", kwargs),
        M("_ftp_result", result),
        M("_ftp_exception", exception),
        M("_ftp_callback", callback),
        M("_ftp_callbacks", callbacks),
        M("_ftp_condition", condition),
        M("_ftp_waiters", waiters),
        M("_ftp_aio_future", aio_future),
        M("_ftp_aio_loop", aio_loop),
#undef M
        {NULL}
    };
    PyType_Slot slots[] = {
        {Py_tp_doc, (void *)fut_doc},
        {Py_tp_init, init},
        {Py_tp_repr, fut_repr},
        {Py_tp_setattro, fut_setattro},
        {Py_tp_methods, fut_methods},
        {Py_tp_getset, fut_getset},
        {Py_tp_members, members},
        {0, NULL}
    };
    /* No Py_TPFLAGS_HAVE_GC and no dealloc/traverse/clear: inherited from
     * the Python base, see the top of the file. */
    PyType_Spec spec = {
        .name = "fastthreadpool.Future",
        .basicsize = (int)(off + sizeof(fut_data)),
        .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
        .slots = slots,
    };
    bases = PyTuple_Pack(1, base);
    if (bases == NULL) {
        goto done;
    }
    type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &spec, bases);
    if (type == NULL) {
        goto done;
    }
    if (!(type->tp_flags & Py_TPFLAGS_HAVE_GC)
        || type->tp_basicsize != spec.basicsize) {
        PyErr_SetString(PyExc_ImportError, "unexpected Future layout");
        Py_CLEAR(type);
        goto done;
    }
    PyObject *fcond_type = PyType_FromModuleAndSpec(module, &fcond_spec,
                                                    NULL);
    if (fcond_type == NULL
        || PyObject_SetAttrString((PyObject *)type, "_ftp_condition_type",
                                  fcond_type) < 0
        /* asyncio.isfuture() looks this name up on the class (three times
         * per run_in_executor call); None answers "not an asyncio future"
         * as its absence does, without raising AttributeError. */
        || PyObject_SetAttrString((PyObject *)type,
                                  "_asyncio_future_blocking", Py_None) < 0
        || PyModule_AddObjectRef(module, "Future", (PyObject *)type) < 0) {
        Py_CLEAR(type);
    }
    Py_XDECREF(fcond_type);
done:
    Py_XDECREF(bases);
    Py_XDECREF(base);
    return type;
}
