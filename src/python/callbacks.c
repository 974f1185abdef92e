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

/* Starts one callback thread.  0 or -1. */
static int
start_thread(ftp_core *core, int failed)
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
    core->cbctx[failed] = ctx;
    Py_XSETREF(core->cbthread[failed], t);
    return 0;
}

int
ftp_callbacks_start(ftp_core *core)
{
    core->cb_restart = 0;
    if (core->done_callback != NULL && core->cbctx[0] == NULL
            && start_thread(core, 0) < 0) {
        return -1;
    }
    if ((core->failed_callback != NULL || core->logger != NULL)
            && core->cbctx[1] == NULL
            && start_thread(core, 1) < 0) {
        return -1;
    }
    return 0;
}

void
ftp_callbacks_stop(ftp_core *core)
{
    for (int i = 0; i < 2; i++) {
        ftp_cbctx *ctx = core->cbctx[i];
        if (ctx != NULL) {
            /* The thread frees ctx once it sees `stop`: read what is needed
             * first.  The queue (and its counter) belong to the core too. */
            ftpool_sem_t *sem = ftp_rq_counter(ctx->q);
            core->cbctx[i] = NULL;
            atomic_store(&ctx->stop, 1);
            ftpool_sem_release(sem, 1);
        }
    }
}

int
ftp_callbacks_join(ftp_core *core, int64_t deadline)
{
    if (core->cbthread[0] == NULL && core->cbthread[1] == NULL) {
        return 1;
    }
    ftp_callbacks_stop(core);
    for (int i = 0; i < 2; i++) {
        PyObject *t = core->cbthread[i];
        int rc;
        if (t == NULL) {
            continue;
        }
        Py_INCREF(t);
        rc = ftp_join_thread(core->st, t, deadline);
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
