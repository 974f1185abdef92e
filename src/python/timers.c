/*
 * timers.c - the delayed and periodic jobs of a pool (submit_later,
 * submit_at, schedule and their _done forms) on the engine's timers, and
 * their handle, fastthreadpool.TimerObj.
 *
 * A timer's record (ftp_timer) is the argument of its engine runs and
 * holds the call, the core and the handle until the engine lets it go
 * (timer_finish).  The handle references the core, not the Pool object, so
 * an armed timer does not keep a dropped Pool alive; Pool.cancel(False,
 * handle) and handle.cancel() both stop it, before or between runs.
 */
#include "pool.h"

#include <math.h>

/* ------------------------------------------------------------------------ */
/* Records                                                                  */
/* ------------------------------------------------------------------------ */

static void
timer_link(ftp_core *core, ftp_timer *t)
{
    ftp_lock(&core->timers_lock);
    t->next = core->timers;
    t->prevp = &core->timers;
    if (core->timers != NULL) {
        core->timers->prevp = &t->next;
    }
    core->timers = t;
    ftp_unlock(&core->timers_lock);
}

static void
timer_unlink(ftp_timer *t)
{
    ftp_lock(&t->core->timers_lock);
    *t->prevp = t->next;
    if (t->next != NULL) {
        t->next->prevp = t->prevp;
    }
    ftp_unlock(&t->core->timers_lock);
}

/* The timer will not run again: forget its handle and free it. */
static void
timer_finish(ftp_timer *t)
{
    ftp_core *core = t->core;
    ftp_timerobject *h = t->handle;

    timer_unlink(t);
    ftp_store_int(&h->active, 0);
    Py_DECREF(t->fn);
    Py_XDECREF(t->args);
    Py_XDECREF(t->kwargs);
    Py_XDECREF(t->done);
    Py_DECREF(h);
    PyMem_RawFree(t);
    Py_DECREF(core);    /* last: may free the core */
}

/* The engine runs the timer's job: in a worker, attached. */
static void
timer_fire(void *arg)
{
    ftp_timer *t = arg;
    ftp_core *core = t->core;
    PyObject *r;

    ftp_store_int(&t->fired, 1);
    if (ftp_callbacks_check(core) < 0) {
        /* A timer run after shutdown(): its result still goes to the
         * pool-level callbacks, which shutdown() had stopped. */
        PyErr_WriteUnraisable((PyObject *)core);
    }
    r = PyObject_Call(t->fn, t->args, t->kwargs);
    if (r == NULL) {
        ftp_record_failure(&core->fail, t->handle->timer_id, t->args,
                           t->kwargs);
    }
    else if (ftp_is_generator_function(core->st, t->fn)) {
        ftp_deliver_generator(core, t->done, r, t->handle->timer_id,
                              core->result_id, t->args, t->kwargs);
    }
    else {
        ftp_deliver(core, t->done, r, t->handle->timer_id, core->result_id,
                    t->args, t->kwargs);
    }
    ftp_notify(core->notify, &core->notify_waiters);
    if (t->oneshot) {
        timer_finish(t);        /* may free the core */
    }
    ftp_workers_job_done();
}

/* The engine lets a timer go: cancelled, or its last run has ended.  From
 * any thread, maybe the engine's timer thread, maybe not attached. */
static void
timer_drop(void *arg)
{
    PyGILState_STATE gs;

    if (!PyGILState_Check() && ftp_is_finalizing()) {
        return;
    }
    gs = PyGILState_Ensure();
    ftp_workers_enter_callback();
    timer_finish(arg);
    ftp_workers_leave_callback();
    PyGILState_Release(gs);
}

/* ------------------------------------------------------------------------ */
/* TimerObj                                                                 */
/* ------------------------------------------------------------------------ */

static ftp_timerobject *
handle_new(ftp_state *st, ftp_core *core, int kind)
{
    ftp_timerobject *h;

    h = (ftp_timerobject *)st->timer_type->tp_alloc(st->timer_type, 0);
    if (h == NULL) {
        return NULL;
    }
    h->core = Py_NewRef((PyObject *)core);
    h->kind = kind;
    return h;
}

int
ftp_timer_cancel(ftp_core *core, ftp_timerobject *h)
{
    if (core->pool == NULL || !ftp_load_int(&h->active)) {
        return 0;
    }
    /* The engine cancels a timer once: of two threads cancelling it, one
     * gets True. */
    if (ftpool_timer_cancel(core->pool, h->timer_id) != FTPOOL_OK) {
        return 0;
    }
    /* No further run: inactive now, even if a run already queued or
     * running keeps the record until it ends. */
    ftp_store_int(&h->active, 0);
    return 1;
}

static PyObject *
handle_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) != 0
            || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "TimerObj() takes no arguments");
        return NULL;
    }
    /* An unbound handle: cancel() is a no-op that returns False. */
    return type->tp_alloc(type, 0);
}

static int
handle_traverse(ftp_timerobject *h, visitproc visit, void *arg)
{
    Py_VISIT(h->core);
    Py_VISIT(Py_TYPE(h));
    return 0;
}

static int
handle_clear(ftp_timerobject *h)
{
    Py_CLEAR(h->core);
    return 0;
}

static void
handle_dealloc(ftp_timerobject *h)
{
    PyTypeObject *tp = Py_TYPE(h);

    PyObject_GC_UnTrack(h);
    handle_clear(h);
    tp->tp_free((PyObject *)h);
    Py_DECREF(tp);
}

static PyObject *
handle_cancel(ftp_timerobject *h, PyObject *unused)
{
    if (h->core == NULL || !ftp_load_int(&h->active)) {
        Py_RETURN_FALSE;
    }
    return PyBool_FromLong(ftp_timer_cancel((ftp_core *)h->core, h));
}

static PyObject *
handle_get_id(ftp_timerobject *h, void *closure)
{
    if (h->timer_id == 0) {
        Py_RETURN_NONE;
    }
    return PyLong_FromUnsignedLongLong(h->timer_id);
}

static PyObject *
handle_get_active(ftp_timerobject *h, void *closure)
{
    return PyBool_FromLong(ftp_load_int(&h->active));
}

static PyObject *
handle_repr(ftp_timerobject *h)
{
    return PyUnicode_FromFormat("<TimerObj id=%llu %s>",
                                (unsigned long long)h->timer_id,
                                ftp_load_int(&h->active) ? "active"
                                                         : "inactive");
}

PyDoc_STRVAR(timer_doc,
"TimerObj()\n"
"--\n"
"\n"
"The handle of a delayed or periodic job, as returned by\n"
"Pool.submit_later(), Pool.schedule(), Pool.submit_at() and their _done\n"
"forms.\n"
"\n"
"timer_id identifies the timer, active tells whether it is armed, and\n"
"cancel() stops it.  A handle does not keep its Pool alive.  It may be\n"
"used from any number of threads: of several threads cancelling one\n"
"timer, exactly one gets True.  Made directly, TimerObj() is bound to no\n"
"timer: timer_id is None, active is False and cancel() returns False.");

PyDoc_STRVAR(timer_cancel_doc,
"cancel($self, /)\n"
"--\n"
"\n"
"Stop the timer: no further run is queued.\n"
"\n"
"Returns True if this call stopped an armed timer, False if the timer had\n"
"already run its last time, was cancelled, or is unbound.  A run that is\n"
"already queued or running completes.  Of several threads cancelling one\n"
"timer at once, exactly one gets True.  Pool.cancel(False, timer) does\n"
"the same.");

PyDoc_STRVAR(timer_id_doc,
"The timer's id (an int, unique in its pool), or None for an unbound\n"
"handle.\n"
"\n"
"It is also the job id of the timer's runs: with result_id=True their\n"
"results are stored as (timer_id, value).");

PyDoc_STRVAR(timer_active_doc,
"True while the timer is armed (a bool).\n"
"\n"
"False once the timer is cancelled, or once the run of a timer that runs\n"
"only once has ended.");

static PyMethodDef handle_methods[] = {
    {"cancel", (PyCFunction)handle_cancel, METH_NOARGS,
     timer_cancel_doc},
    {NULL, NULL, 0, NULL}
};

static PyGetSetDef handle_getset[] = {
    {"timer_id", (getter)handle_get_id, NULL,
     timer_id_doc, NULL},
    {"active", (getter)handle_get_active, NULL,
     timer_active_doc, NULL},
    {NULL, NULL, NULL, NULL, NULL}
};

static PyType_Slot handle_slots[] = {
    {Py_tp_new, handle_tp_new},
    {Py_tp_dealloc, handle_dealloc},
    {Py_tp_traverse, handle_traverse},
    {Py_tp_clear, handle_clear},
    {Py_tp_repr, handle_repr},
    {Py_tp_methods, handle_methods},
    {Py_tp_getset, handle_getset},
    {Py_tp_doc, (void *)timer_doc},
    {0, NULL}
};

static PyType_Spec handle_spec = {
    .name = "fastthreadpool.TimerObj",
    .basicsize = sizeof(ftp_timerobject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = handle_slots,
};

int
ftp_timer_init_type(PyObject *module, ftp_state *st)
{
    st->timer_type = (PyTypeObject *)PyType_FromModuleAndSpec(
        module, &handle_spec, NULL);
    if (st->timer_type == NULL) {
        return -1;
    }
    return PyModule_AddType(module, st->timer_type);
}

/* ------------------------------------------------------------------------ */
/* Arming                                                                   */
/* ------------------------------------------------------------------------ */

PyObject *
ftp_timer_arm(ftp_core *core, int kind, int64_t delay_ns,
              int64_t interval_ns, PyObject *fn, PyObject *const *argv,
              Py_ssize_t nargs, PyObject *kwargs, PyObject *done)
{
    ftp_timer *t = NULL;
    ftp_timerobject *h = NULL;
    PyObject *args = NULL;
    int rc;

    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "fn must be callable, not '%.100s'",
                     Py_TYPE(fn)->tp_name);
        goto fail;
    }
    if (ftp_callbacks_check(core) < 0) {
        goto fail;
    }
    args = PyTuple_New(nargs);
    if (args == NULL) {
        goto fail;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyTuple_SET_ITEM(args, i, Py_NewRef(argv[i]));
    }
    h = handle_new(core->st, core, kind);
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
    t->handle = (ftp_timerobject *)Py_NewRef((PyObject *)h);
    t->oneshot = interval_ns <= 0;
    atomic_init(&t->fired, 0);
    /* Everything a run touches is set before the timer is armed: without
     * the GIL it may run, and finish, before ftpool_timer_after()
     * returns. */
    ftp_store_int(&h->active, 1);
    timer_link(core, t);
    rc = ftpool_timer_after(core->pool, delay_ns > 0 ? delay_ns : 0,
                            interval_ns > 0 ? interval_ns : 0,
                            timer_fire, timer_drop, t, &h->timer_id);
    if (rc != FTPOOL_OK) {
        /* Never armed: no run, no drop. */
        timer_unlink(t);
        ftp_store_int(&h->active, 0);
        Py_DECREF(t->fn);
        Py_DECREF(t->handle);
        Py_DECREF(t->core);
        PyMem_RawFree(t);
        Py_DECREF(h);
        ftp_core_raise(core, rc);
        Py_XDECREF(args);
        Py_XDECREF(kwargs);
        Py_XDECREF(done);
        return NULL;
    }
    return (PyObject *)h;

fail:
    PyMem_RawFree(t);
    Py_XDECREF(h);
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    Py_XDECREF(done);
    return NULL;
}

int
ftp_timer_delay_until(PyObject *runat, int64_t *delay_ns)
{
    PyObject *tm = PyImport_ImportModule("time"), *v, *a, *b;
    double at, now_wall, now_mono;

    if (tm == NULL) {
        return -1;
    }
    if (PyTuple_Check(runat) && !PyFloat_Check(runat)) {
        /* time.struct_time (or a 9-tuple): local time. */
        PyObject *mktime = PyUnicode_FromString("mktime");
        v = mktime ? PyObject_CallMethodOneArg(tm, mktime, runat) : NULL;
        Py_XDECREF(mktime);
    }
    else {
        v = Py_NewRef(runat);
    }
    if (v == NULL) {
        Py_DECREF(tm);
        return -1;
    }
    if (!PyFloat_Check(v) && !PyLong_Check(v)) {
        PyErr_SetString(PyExc_TypeError,
                        "_runat must be a number (time.time()) or a "
                        "struct_time");
        Py_DECREF(v);
        Py_DECREF(tm);
        return -1;
    }
    at = PyFloat_AsDouble(v);
    Py_DECREF(v);
    a = ftp_call_method(tm, "time", NULL, 0);
    b = ftp_call_method(tm, "monotonic", NULL, 0);
    now_wall = a ? PyFloat_AsDouble(a) : 0;
    now_mono = b ? PyFloat_AsDouble(b) : 0;
    Py_XDECREF(a);
    Py_XDECREF(b);
    Py_DECREF(tm);
    if (PyErr_Occurred()) {
        return -1;
    }
    if (isnan(at)) {
        PyErr_SetString(PyExc_ValueError, "_runat has invalid value!");
        return -1;
    }
    /* Epoch seconds (time.time(), struct_time) as documented; a value far
     * below the epoch clock but near the monotonic one is accepted too
     * (code written against the original's clock).  A second of slack
     * covers struct_time's resolution. */
    if (at < now_wall - 1.0 && at >= now_mono - 1.0
            && at < now_mono + 1e8) {
        at = at - now_mono + now_wall;
    }
    if (at < now_wall - 1.0) {
        PyErr_SetString(PyExc_ValueError, "_runat has invalid value!");
        return -1;
    }
    if (at - now_wall > 9e9) {
        PyErr_SetString(PyExc_ValueError, "_runat is out of range");
        return -1;
    }
    *delay_ns = (int64_t)((at - now_wall) * FTP_NS_PER_SEC);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Listing                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct {
    void **items;
    size_t n, cap;
    int oom;
} queued_args;

static void
collect_queued(void *arg, uint64_t id, void *ctx_)
{
    queued_args *ctx = ctx_;

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

PyObject *
ftp_timer_handles(ftp_core *core, int kind)
{
    PyObject *list, *d;
    queued_args queued = {NULL, 0, 0, 0};
    ftp_timerobject **found = NULL;
    size_t nfound = 0, cap = 0;
    int oom = 0;

    /* A one-shot timer whose run is queued or has started will not run
     * again: it is no longer listed. */
    ftpool_foreach_queued(core->pool, collect_queued, &queued);
    ftp_lock(&core->timers_lock);
    for (ftp_timer *t = core->timers; t != NULL && !oom; t = t->next) {
        ftp_timerobject *h = t->handle;
        int fired = 0;
        if (h->kind != kind || !ftp_load_int(&h->active)) {
            continue;
        }
        if (t->oneshot) {
            fired = ftp_load_int(&t->fired);
            for (size_t i = 0; !fired && i < queued.n; i++) {
                fired = queued.items[i] == (void *)t;
            }
        }
        if (fired) {
            continue;
        }
        if (nfound == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            void *p = PyMem_RawRealloc(found, ncap * sizeof(*found));
            if (p == NULL) {
                oom = 1;
                break;
            }
            found = p;
            cap = ncap;
        }
        found[nfound++] = (ftp_timerobject *)Py_NewRef((PyObject *)h);
    }
    ftp_unlock(&core->timers_lock);
    PyMem_RawFree(queued.items);
    /* Newest first in the list: the deque lists them as they were
     * armed. */
    list = oom || queued.oom ? NULL : PyList_New((Py_ssize_t)nfound);
    for (size_t i = 0; i < nfound; i++) {
        if (list != NULL) {
            PyList_SET_ITEM(list, (Py_ssize_t)i,
                            (PyObject *)found[nfound - 1 - i]);
        }
        else {
            Py_DECREF(found[nfound - 1 - i]);
        }
    }
    PyMem_RawFree(found);
    if (list == NULL) {
        return (oom || queued.oom) ? PyErr_NoMemory() : NULL;
    }
    d = ftp_import_attr("collections", "deque");
    if (d != NULL) {
        Py_SETREF(d, PyObject_CallOneArg(d, list));
    }
    Py_DECREF(list);
    return d;
}
