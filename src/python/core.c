/*
 * core.c - _PoolCore, the internal half of fastthreadpool.Pool: its
 * settings, result queues and worker group, how it ends, and the waits and
 * shutdowns of the pool (see pool.h for why a pool is two objects).
 */
#include "pool.h"

#include <string.h>

/* ------------------------------------------------------------------------ */
/* The pool's worker group                                                  */
/* ------------------------------------------------------------------------ */

/* Before a worker thread starts, in the thread that asked for it: its
 * number as `tnum`, then init_callback(thread, *init_args). */
static int
pool_workers_prepare(ftp_workers *w, PyObject *thread, unsigned long n)
{
    ftp_pool_workers *pw = (ftp_pool_workers *)w;
    PyObject *tnum = PyLong_FromUnsignedLong(n), *args, *r;
    int rc = tnum ? PyObject_SetAttr(thread, w->st->str_tnum, tnum) : -1;

    Py_XDECREF(tnum);
    if (rc < 0 || pw->init_callback == NULL) {
        return rc;
    }
    args = PyTuple_New(1 + PyTuple_GET_SIZE(pw->init_args));
    if (args == NULL) {
        return -1;
    }
    PyTuple_SET_ITEM(args, 0, Py_NewRef(thread));
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(pw->init_args); i++) {
        PyTuple_SET_ITEM(args, i + 1,
                         Py_NewRef(PyTuple_GET_ITEM(pw->init_args, i)));
    }
    r = PyObject_Call(pw->init_callback, args, NULL);
    Py_DECREF(args);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* In a worker that stops serving: finish_callback(). */
static void
pool_workers_ended(ftp_workers *w)
{
    ftp_pool_workers *pw = (ftp_pool_workers *)w;
    PyObject *fin = pw->finish_callback, *r;

    if (fin == NULL) {
        return;
    }
    Py_INCREF(fin);
    r = PyObject_CallNoArgs(fin);
    if (r == NULL) {
        PyErr_WriteUnraisable(fin);
    }
    Py_XDECREF(r);
    Py_DECREF(fin);
}

static void
pool_workers_free(ftp_workers *w)
{
    ftp_pool_workers *pw = (ftp_pool_workers *)w;

    Py_CLEAR(pw->init_callback);
    Py_CLEAR(pw->init_args);
    Py_CLEAR(pw->finish_callback);
}

static const ftp_workers_ops pool_workers_ops = {
    .prepare = pool_workers_prepare,
    .ended = pool_workers_ended,
    .free = pool_workers_free,
};

/* ------------------------------------------------------------------------ */
/* Counting jobs, waiting                                                   */
/* ------------------------------------------------------------------------ */

/* The jobs in flight hold one reference to the core between them, taken
 * by the first and dropped by the last: without the GIL, a reference per
 * job made the core's reference count a cache line that the submitting
 * thread and every worker wrote on every job.  (With the GIL the count
 * changes only with the GIL held, which also orders it with the
 * notify_waiters handshake of as_completed(); without it, ftp_add_llong
 * is sequentially consistent.) */
void
ftp_core_job_submitted(ftp_core *core)
{
    if (ftp_add_llong(&core->inflight, 1) == 1) {
        Py_INCREF(core);
    }
}

void
ftp_core_job_finished(ftp_core *core)
{
    long long left = ftp_add_llong(&core->inflight, -1);

    ftp_notify(core->notify, &core->notify_waiters);
    if (left == 0) {
        Py_DECREF(core);        /* last: may free the core */
    }
}

int
ftp_core_idle(ftp_core *core)
{
    return atomic_load(&core->inflight) == 0
           && ftpool_pending(core->pool) == 0;
}

int
ftp_core_raise(ftp_core *core, int rc)
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

int
ftp_core_check_spawn(ftp_core *core)
{
    /* init_callback (or Thread.start) failed: the job stays queued, the
     * exception goes to the caller. */
    PyObject *exc = ftp_workers_take_spawn_error(&core->workers->w);

    if (exc == NULL) {
        return 0;
    }
    ftp_err_restore(exc);
    return -1;
}

int
ftp_core_wait_idle(ftp_core *core, int64_t deadline)
{
    return ftp_workers_wait_idle(&core->workers->w, deadline);
}

/* ------------------------------------------------------------------------ */
/* Shutdown                                                                 */
/* ------------------------------------------------------------------------ */

/* After a shutdown the engine starts no worker by itself - for the jobs a
 * SOON shutdown left, or for timer runs - until a submission finds no
 * worker alive.  Timers armed across shutdown()/clear() must still run (a
 * schedule outlives shutdown()), and what shutdown_children() left must
 * run after clear(): resume ends the shutdown now, whatever workers are
 * still on their way out. */
int
ftp_core_resume(ftp_core *core)
{
    if (ftpool_resume(core->pool) == FTPOOL_ESPAWN) {
        return ftp_core_check_spawn(core);
    }
    return 0;
}

int
ftp_core_shutdown(ftp_core *core, int64_t deadline, int soon)
{
    ftpool_mark mark;
    int rc;

    ftp_store_int(&core->is_shutdown, 1);
    if (!soon) {
        /* First let the queue run dry while the pool is fully running, so
         * that jobs submitted meanwhile by running jobs (an accept loop)
         * still get new workers - also the jobs an earlier SOON shutdown
         * left - then let the workers go. */
        if (ftp_core_resume(core) < 0) {
            return -1;
        }
        rc = ftp_core_wait_idle(core, deadline);
        if (rc == -1) {
            return -1;
        }
    }
    ftpool_mark_now(core->pool, &mark);
    ftpool_shutdown(core->pool,
                    soon ? FTPOOL_SHUTDOWN_SOON : FTPOOL_SHUTDOWN_FINISH);
    rc = ftp_workers_join(&core->workers->w, &mark, deadline);
    if (rc == -2) {
        return 0;       /* from one of our own workers: cannot wait */
    }
    if (rc <= 0) {
        return rc;
    }
    /* The engine is done with the threads; wait for them to end too, so
     * that finish_callback has run and `children` is up to date. */
    rc = ftp_workers_join_ended(&core->workers->w, deadline);
    if (rc <= 0) {
        return rc;
    }
    rc = ftp_callbacks_join(core, deadline);
    if (rc == 1 && !ftpool_is_closed(core->pool)) {
        ftpool_stats stats;
        ftpool_get_stats(core->pool, &stats);
        if (stats.timers > 0 && ftp_core_resume(core) < 0) {
            return -1;
        }
    }
    return rc;
}

int
ftp_core_stop(ftp_core *core, int now)
{
    int rc;

    ftpool_timer_cancel_all(core->pool);
    if (now) {
        ftpool_close(core->pool);
        ftp_rq_unthrottle(core->done, 1);
        ftpool_cancel_all(core->pool);
    }
    rc = ftp_core_shutdown(core, -1, now);
    /* Either way the pool refuses new jobs afterwards (until clear()). */
    ftpool_close(core->pool);
    ftp_store_int(&core->children_stopped, 1);
    return rc < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* The core object                                                          */
/* ------------------------------------------------------------------------ */

static int
core_traverse(ftp_core *core, visitproc visit, void *arg)
{
    Py_VISIT(core->module);
    Py_VISIT(core->done_callback);
    Py_VISIT(core->failed_callback);
    Py_VISIT(core->logger);
    Py_VISIT(core->done);
    Py_VISIT(core->failed);
    Py_VISIT(core->cbthread[0]);
    Py_VISIT(core->cbthread[1]);
    if (core->workers != NULL) {
        /* Only the core references its worker group from Python's side:
         * what the group holds can form cycles through the core. */
        ftp_pool_workers *pw = core->workers;
        Py_VISIT(pw->init_callback);
        Py_VISIT(pw->init_args);
        Py_VISIT(pw->finish_callback);
        Py_VISIT(pw->w.threads);
        Py_VISIT(pw->w.ended);
    }
    Py_VISIT(Py_TYPE(core));
    return 0;
}

static int
core_clear(ftp_core *core)
{
    /* Only the references that can form cycles through user objects; the
     * queues stay valid until dealloc.  Nothing runs jobs on an
     * unreachable core (a queued job holds a reference to it). */
    if (core->workers != NULL) {
        Py_CLEAR(core->workers->init_callback);
        Py_CLEAR(core->workers->finish_callback);
    }
    Py_CLEAR(core->cbthread[0]);
    Py_CLEAR(core->cbthread[1]);
    return 0;
}

static void
core_dealloc(ftp_core *core)
{
    PyTypeObject *tp = Py_TYPE(core);

    PyObject_GC_UnTrack(core);
    if (core->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)core);
    }
    if (core->workers != NULL && ftp_workers_forked(&core->workers->w)) {
        /* The parent's, inherited through fork(): its worker and callback
         * threads do not exist here and may have held its locks at the
         * fork.  Left as it is. */
        ftp_workers_release(&core->workers->w, 1);
        core->workers = NULL;
        core->pool = NULL;
        core->notify = NULL;
    }
    else {
        ftp_callbacks_stop(core);
    }
    if (core->workers != NULL) {
        /* No job is left (each holds a reference): the idle workers go. */
        ftp_workers_release(&core->workers->w, 1);
        core->workers = NULL;
        core->pool = NULL;
    }
    ftp_job_free_cache(core);
    if (core->notify != NULL) {
        ftpool_sem_destroy(core->notify);
    }
    core_clear(core);
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

/* A result queue with its counting Semaphore. */
static ftp_rqobject *
new_queue(ftp_state *st)
{
    PyObject *cnt = ftp_semaphore_new(st, 0);
    ftp_rqobject *q;

    if (cnt == NULL) {
        return NULL;
    }
    q = ftp_rq_new(st, cnt);
    Py_DECREF(cnt);
    return q;
}

static int
start_workers(ftp_core *core, const ftp_core_config *cfg)
{
    ftp_pool_workers *pw = PyMem_RawCalloc(1, sizeof(*pw));

    if (pw == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    pw->init_callback = Py_XNewRef(cfg->init_callback);
    pw->init_args = Py_NewRef(cfg->init_args);
    pw->finish_callback = Py_XNewRef(cfg->finish_callback);
    if (ftp_workers_init(&pw->w, core->st, (PyObject *)core,
                         FTP_WORKERS_POOL, &pool_workers_ops,
                         cfg->max_children, cfg->prefix, '-', 1) < 0) {
        return -1;
    }
    core->workers = pw;
    core->pool = pw->w.pool;
    return 0;
}

ftp_core *
ftp_core_new(ftp_state *st, const ftp_core_config *cfg)
{
    ftp_core *core = PyObject_GC_New(ftp_core, st->core_type);

    if (core == NULL) {
        return NULL;
    }
    /* Zero everything after the object header before anything can fail. */
    memset((char *)core + sizeof(PyObject), 0,
           sizeof(*core) - sizeof(PyObject));
    core->module = Py_NewRef(PyType_GetModule(st->core_type));
    core->st = st;
    core->max_children = cfg->max_children;
    core->result_id = cfg->result_id;
    core->done_max = cfg->done_max;
    core->done_callback = Py_XNewRef(cfg->done_callback);
    core->failed_callback = Py_XNewRef(cfg->failed_callback);
    core->logger = Py_XNewRef(cfg->logger);
    if (cfg->store_nothing) {
        core->default_done = Py_NewRef(Py_False);
    }
    atomic_init(&core->notify_waiters, 0);
    atomic_init(&core->inflight, 0);
    atomic_init(&core->cb_restart, 0);
    atomic_init(&core->is_shutdown, 0);
    atomic_init(&core->children_stopped, 0);
    PyObject_GC_Track(core);

    core->done = new_queue(st);
    core->failed = new_queue(st);
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
    core->fail.result_id = cfg->result_id;
    core->fail.exc_stack = cfg->exc_stack;
    core->fail.exc_args = cfg->exc_args;
    core->fail.format_exception = st->format_exception;
    core->fail.failed = core->failed;
    if (start_workers(core, cfg) < 0 || ftp_callbacks_start(core) < 0) {
        goto error;
    }
    return core;

error:
    Py_DECREF(core);
    return NULL;
}

int
ftp_core_init_type(PyObject *module, ftp_state *st)
{
    st->core_type = (PyTypeObject *)PyType_FromModuleAndSpec(module,
                                                             &core_spec,
                                                             NULL);
    if (st->core_type == NULL) {
        return -1;
    }
#if PY_VERSION_HEX < 0x030A0000
    /* No Py_TPFLAGS_DISALLOW_INSTANTIATION before 3.10. */
    st->core_type->tp_new = NULL;
#endif
    return 0;
}
