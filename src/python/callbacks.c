/*
 * callbacks.c - the pool-level callback threads: ThreadPoolDone calls
 * done_callback(result) for each entry of Pool.done, ThreadPoolFailed
 * calls failed_callback(entry) (or logs it, with log_level) for each entry
 * of Pool.failed, in order, one thread each.  A thread holds what it needs
 * (ftp_cbctx) and no reference to the core, so it never keeps a dropped
 * pool alive; it exits once asked to and its queue is drained.
 */
#include "pool.h"

static void
log_failure(ftp_cbctx *ctx, PyObject *entry)
{
    PyObject *e = entry, *r;

    if (PyTuple_Check(entry) && PyTuple_GET_SIZE(entry) >= 2) {
        e = PyTuple_GET_ITEM(entry, ctx->fail.result_id ? 1 : 0);
    }
    if (PyExceptionInstance_Check(e)) {
        PyObject *kw = Py_BuildValue("{sO}", "exc_info", e);
        PyObject *meth = ftp_getattr(ctx->logger, "error");
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
run_callback(ftp_cbctx *ctx, int failed, PyObject *item)
{
    if (ctx->callback != NULL) {
        PyObject *r = PyObject_CallOneArg(ctx->callback, item);
        if (r == NULL) {
            if (!failed) {
                /* As in 1.8: a failing done callback is recorded as a
                 * failure of job 0. */
                ftp_record_failure(&ctx->fail, 0, NULL, NULL);
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
    Py_XDECREF(ctx->fail.failed);
    Py_XDECREF(ctx->fail.format_exception);
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
             * (ftp_callbacks_stop). */
            ftpool_sem_acquire(sem, -1);
            Py_END_ALLOW_THREADS
        }
        item = ftp_rq_popleft_counted(ctx->q);
        if (item != NULL) {
            run_callback(ctx, failed, item);
            Py_DECREF(item);
            continue;
        }
        if (atomic_load(&ctx->stop)) {
            break;
        }
    }
    cbctx_free(ctx);
    Py_RETURN_NONE;
}

static PyMethodDef callback_thread_def = {
    "_callback_thread", (PyCFunction)callback_thread_main, METH_O, NULL
};

/* Starts one callback thread; its context and Thread in *ctx_out and
 * *thread_out.  0 or -1. */
static int
start_thread(ftp_core *core, int failed, ftp_cbctx **ctx_out,
             PyObject **thread_out)
{
    static const char *names[2] = {"ThreadPoolDone", "ThreadPoolFailed"};
    ftp_cbctx *ctx;
    PyObject *capsule, *target, *kw, *t = NULL, *r, *args, *thread_type;

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
    ctx->fail = core->fail;
    Py_INCREF(ctx->fail.failed);
    Py_INCREF(ctx->fail.format_exception);
    atomic_init(&ctx->stop, 0);
    capsule = PyCapsule_New(ctx, NULL, NULL);
    if (capsule == NULL) {
        cbctx_free(ctx);
        return -1;
    }
    target = PyCFunction_New(&callback_thread_def, capsule);
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
    thread_type = kw ? ftp_getattr(core->st->threading, "Thread") : NULL;
    if (thread_type != NULL) {
        PyObject *empty = PyTuple_New(0);
        t = empty ? PyObject_Call(thread_type, empty, kw) : NULL;
        Py_XDECREF(empty);
        Py_DECREF(thread_type);
    }
    Py_XDECREF(kw);
    r = t ? ftp_call_method_obj(t, core->st->str_start, NULL, 0) : NULL;
    if (r == NULL) {
        Py_XDECREF(t);
        cbctx_free(ctx);
        return -1;
    }
    Py_DECREF(r);
    /* From here on the thread owns ctx. */
    *ctx_out = ctx;
    *thread_out = t;
    return 0;
}

/* Which callback threads the settings ask for: bit 0 done, bit 1 failed. */
static int
wanted(ftp_core *core)
{
    return (core->done_callback != NULL)
           | ((core->failed_callback != NULL || core->logger != NULL) << 1);
}

int
ftp_callbacks_start(ftp_core *core)
{
    int missing = 0, rc = 0;

    /* One thread starts them at a time (cb_busy); starting runs Python
     * code, so it happens outside the lock.  A submission that finds them
     * being started goes on: its result waits in the queue. */
    ftp_lock(&core->cb_lock);
    if (!core->cb_busy) {
        ftp_store_int(&core->cb_restart, 0);
        for (int i = 0; i < 2; i++) {
            if ((wanted(core) & (1 << i)) && core->cbctx[i] == NULL) {
                missing |= 1 << i;
            }
        }
        core->cb_busy = missing != 0;
    }
    ftp_unlock(&core->cb_lock);
    for (int i = 0; i < 2 && rc == 0; i++) {
        ftp_cbctx *ctx;
        PyObject *t, *old;
        if (!(missing & (1 << i))) {
            continue;
        }
        rc = start_thread(core, i, &ctx, &t);
        if (rc == 0) {
            ftp_lock(&core->cb_lock);
            core->cbctx[i] = ctx;
            old = core->cbthread[i];
            core->cbthread[i] = t;
            ftp_unlock(&core->cb_lock);
            Py_XDECREF(old);
        }
    }
    if (missing) {
        ftp_lock(&core->cb_lock);
        core->cb_busy = 0;
        ftp_unlock(&core->cb_lock);
    }
    return rc;
}

void
ftp_callbacks_stop(ftp_core *core)
{
    ftp_cbctx *ctx[2];
    ftpool_sem_t *sem[2] = {NULL, NULL};

    ftp_lock(&core->cb_lock);
    for (int i = 0; i < 2; i++) {
        ctx[i] = core->cbctx[i];
        core->cbctx[i] = NULL;
        if (ctx[i] != NULL) {
            /* The queue's counter belongs to the core too; ctx is the
             * thread's as soon as it sees `stop`. */
            sem[i] = ftp_rq_counter(ctx[i]->q);
        }
    }
    ftp_unlock(&core->cb_lock);
    for (int i = 0; i < 2; i++) {
        if (ctx[i] != NULL) {
            atomic_store(&ctx[i]->stop, 1);
            ftpool_sem_release(sem[i], 1);
        }
    }
}

int
ftp_callbacks_join(ftp_core *core, int64_t deadline)
{
    PyObject *t[2];

    ftp_lock(&core->cb_lock);
    t[0] = Py_XNewRef(core->cbthread[0]);
    t[1] = Py_XNewRef(core->cbthread[1]);
    ftp_unlock(&core->cb_lock);
    if (t[0] == NULL && t[1] == NULL) {
        return 1;
    }
    ftp_callbacks_stop(core);
    for (int i = 0; i < 2; i++) {
        PyObject *old = NULL;
        int rc;
        if (t[i] == NULL) {
            continue;
        }
        rc = ftp_join_thread(core->st, t[i], deadline);
        if (rc == 1) {
            ftp_lock(&core->cb_lock);
            if (core->cbthread[i] == t[i]) {
                old = core->cbthread[i];
                core->cbthread[i] = NULL;
            }
            ftp_unlock(&core->cb_lock);
        }
        Py_XDECREF(old);
        if (rc <= 0) {
            Py_XDECREF(t[0]);
            Py_XDECREF(t[1]);
            return rc;
        }
    }
    Py_XDECREF(t[0]);
    Py_XDECREF(t[1]);
    ftp_store_int(&core->cb_restart, 1);
    return 1;
}
