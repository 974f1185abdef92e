/*
 * executor.c - fastthreadpool.ThreadPoolExecutor: concurrent.futures on
 * the worker layer.
 *
 * A heap type that subclasses concurrent.futures.ThreadPoolExecutor (asyncio
 * requires that of a default executor) and overrides __init__, submit and
 * shutdown; map() and the context manager come from the base class.  Work
 * is an engine job whose argument is the Future (future.c), which holds the
 * call.  The workers are a worker group (workers.c): threads named
 * prefix_N, daemons only if the submitting thread is one, as in the
 * standard library.
 *
 * Lifetimes: the group is counted by the executor and by each worker
 * thread, so worker threads never keep the executor object alive.  As in
 * the standard library, an executor that is garbage collected without
 * shutdown() lets its workers finish the queued work and exit, and at
 * interpreter exit every executor stops taking work and its workers exit
 * once the queue is empty (the worker layer's exit hook).
 */
#include "executor.h"

#define BROKEN_MSG \
    "A thread initializer failed, the thread pool is not usable anymore"

/* The executor's worker group and what its workers need. */
typedef struct {
    ftp_workers w;
    PyTypeObject *future_type;
    PyObject *initializer;      /* callable or NULL */
    PyObject *initargs;         /* tuple */
    atomic_int broken;          /* an initializer failed */
} exec_workers;

/* What the executor object holds, after the base class's fields. */
typedef struct {
    /* NULL before __init__ and after finalize; set once by __init__. */
    _Atomic(exec_workers *) ew;
    Py_ssize_t max_workers;
    atomic_int shutdown;
} exec_data;

/* Offset of exec_data in the object: the Python base's instance size, a
 * property of the CPython build (the same in every interpreter), set when
 * the type is made. */
static Py_ssize_t exec_off = -1;

static inline exec_data *
ED(PyObject *self)
{
    return (exec_data *)((char *)self + exec_off);
}

static inline exec_workers *
workers_of(PyObject *self)
{
    return atomic_load_explicit(&ED(self)->ew, memory_order_acquire);
}

/* ------------------------------------------------------------------------ */
/* Jobs                                                                     */
/* ------------------------------------------------------------------------ */

static PyObject *
broken_error(void)
{
    PyObject *cls = ftp_import_attr("concurrent.futures.thread",
                                    "BrokenThreadPool"), *exc;

    if (cls == NULL) {
        return NULL;
    }
    exc = PyObject_CallFunction(cls, "s", BROKEN_MSG);
    Py_DECREF(cls);
    return exc;
}

static void
fail_broken(PyObject *fut)
{
    PyObject *exc = broken_error();

    if (exc == NULL) {
        PyErr_WriteUnraisable(fut);
        ftp_future_drop(fut);
        return;
    }
    ftp_future_fail(fut, exc);
    Py_DECREF(exc);
}

/* In a thread of a broken executor: its work fails. */
static int
in_broken_worker(void)
{
    exec_workers *ew = (exec_workers *)ftp_workers_current();

    return ew != NULL && ew->w.kind == FTP_WORKERS_EXECUTOR
           && atomic_load(&ew->broken);
}

/* The engine job: runs in a worker, attached. */
static void
run_job(void *arg)
{
    PyObject *fut = arg;

    if (in_broken_worker()) {
        fail_broken(fut);
    }
    else {
        ftp_future_run(fut);
    }
    Py_DECREF(fut);
    ftp_workers_job_done();
}

/* The engine drops a queued job: shutdown(cancel_futures=True), a broken
 * pool, or a group being freed.  The executor drops jobs only through
 * ftpool_cancel_all(), always attached, so this runs attached. */
static void
drop_job(void *arg)
{
    PyObject *fut = arg;

    if (in_broken_worker()) {
        fail_broken(fut);
    }
    else {
        ftp_future_drop(fut);
    }
    Py_DECREF(fut);
}

/* ------------------------------------------------------------------------ */
/* The worker group                                                         */
/* ------------------------------------------------------------------------ */

/* In a new worker: the initializer.  If it fails, the executor is broken:
 * the queued work fails now, later submissions are refused, and jobs
 * other workers take fail in run_job(). */
static void
exec_workers_started(ftp_workers *w)
{
    exec_workers *ew = (exec_workers *)w;
    PyObject *r;

    if (ew->initializer == NULL || atomic_load(&ew->broken)) {
        return;
    }
    r = PyObject_Call(ew->initializer, ew->initargs, NULL);
    if (r == NULL) {
        PyObject *exc = ftp_err_fetch();
        ftp_log_exception("critical", "Exception in initializer:", NULL, exc);
        Py_XDECREF(exc);
        atomic_store(&ew->broken, 1);
        ftpool_cancel_all(w->pool);
    }
    Py_XDECREF(r);
}

static void
exec_workers_free(ftp_workers *w)
{
    exec_workers *ew = (exec_workers *)w;

    if (w->pool != NULL) {
        /* Drop what is still queued (normally nothing) while attached,
         * which drop_job() needs: no worker is left to run it. */
        ftpool_cancel_all(w->pool);
    }
    Py_CLEAR(ew->future_type);
    Py_CLEAR(ew->initializer);
    Py_CLEAR(ew->initargs);
}

static const ftp_workers_ops exec_workers_ops = {
    .started = exec_workers_started,
    .free = exec_workers_free,
};

/* ------------------------------------------------------------------------ */
/* ThreadPoolExecutor                                                       */
/* ------------------------------------------------------------------------ */

/* Our Future type, stored on the executor type when it is made. */
static PyTypeObject *
find_future_type(PyObject *self)
{
    PyObject *ft = ftp_getattr(self, "_ftp_future");

    if (ft == NULL) {
        return NULL;
    }
    if (!ftp_future_check_type(ft)) {
        Py_DECREF(ft);
        PyErr_SetString(PyExc_TypeError,
                        "_ftp_future must be fastthreadpool.Future or a "
                        "subclass");
        return NULL;
    }
    return (PyTypeObject *)ft;
}

/* max_workers: None -> the standard library's default, or a positive
 * integer.  0 or -1. */
static int
parse_max_workers(PyObject *max_workers, Py_ssize_t *out)
{
    Py_ssize_t n;

    if (max_workers == Py_None) {
        /* At least 5 threads for I/O bound work, at most 32 so that big
         * machines do not get hundreds. */
        n = ftp_cpu_count() + 4;
        *out = n < 32 ? n : 32;
        return 0;
    }
    n = PyLong_AsSsize_t(max_workers);
    if (n == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (n <= 0) {
        PyErr_SetString(PyExc_ValueError,
                        "max_workers must be greater than 0");
        return -1;
    }
    if ((size_t)n > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "max_workers is too big");
        return -1;
    }
    *out = n;
    return 0;
}

static int
exec_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"max_workers", "thread_name_prefix",
                             "initializer", "initargs", NULL};
    PyObject *max_workers = Py_None, *prefix = NULL;
    PyObject *initializer = Py_None, *initargs = NULL;
    exec_data *d = ED(self);
    ftp_state *st = ftp_state_from_type(Py_TYPE(self));
    exec_workers *ew;
    Py_ssize_t n;
    int rc;

    if (st == NULL) {
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OUOO:ThreadPoolExecutor",
                                     kwlist, &max_workers, &prefix,
                                     &initializer, &initargs)) {
        return -1;
    }
    if (workers_of(self) != NULL) {
        goto initialized;
    }
    if (parse_max_workers(max_workers, &n) < 0) {
        return -1;
    }
    if (initializer != Py_None && !PyCallable_Check(initializer)) {
        PyErr_SetString(PyExc_TypeError, "initializer must be a callable");
        return -1;
    }
    ew = PyMem_RawCalloc(1, sizeof(*ew));
    if (ew == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    ew->initargs = initargs ? PySequence_Tuple(initargs) : PyTuple_New(0);
    ew->initializer = initializer == Py_None ? NULL
                                             : Py_NewRef(initializer);
    ew->future_type = find_future_type(self);
    if (prefix != NULL && PyUnicode_GET_LENGTH(prefix) > 0) {
        prefix = Py_NewRef(prefix);
    }
    else {
        prefix = PyUnicode_FromFormat(
            "ThreadPoolExecutor-%lu",
            (unsigned long)atomic_fetch_add(&st->executor_counter, 1));
    }
    if (ew->initargs == NULL || ew->future_type == NULL || prefix == NULL) {
        exec_workers_free(&ew->w);
        PyMem_RawFree(ew);
        Py_XDECREF(prefix);
        return -1;
    }
    rc = ftp_workers_init(&ew->w, st, self, FTP_WORKERS_EXECUTOR,
                          &exec_workers_ops, (unsigned)n, prefix, '_', 0);
    Py_DECREF(prefix);
    if (rc < 0) {
        return -1;
    }
    d->max_workers = n;
    atomic_store(&d->shutdown, 0);
    {
        exec_workers *none = NULL;
        if (atomic_compare_exchange_strong(&d->ew, &none, ew)) {
            return 0;
        }
    }
    /* Another thread's __init__ came first. */
    ftp_workers_release(&ew->w, 0);
initialized:
    PyErr_SetString(PyExc_RuntimeError,
                    "ThreadPoolExecutor is already initialized");
    return -1;
}

/* Called once, from dealloc or by the garbage collector: the workers
 * finish the queued work and exit, as when a standard executor is
 * collected. */
static void
exec_finalize(PyObject *self)
{
    exec_workers *ew = atomic_exchange(&ED(self)->ew, NULL);
    PyObject *exc;

    if (ew == NULL) {
        return;
    }
    exc = ftp_err_fetch();
    ftp_workers_release(&ew->w, 0);
    ftp_err_restore(exc);
}

static exec_workers *
get_workers(PyObject *self)
{
    exec_workers *ew = workers_of(self);

    if (ew == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "ThreadPoolExecutor.__init__() was not called");
    }
    else if (ftp_workers_forked(&ew->w)) {
        ftp_workers_forked_error("ThreadPoolExecutor");
        return NULL;
    }
    return ew;
}

/* The submission was refused (-1 returned): fut was never queued. */
static int
submit_refused(exec_workers *ew, int rc)
{
    if (rc == FTPOOL_ENOMEM) {
        PyErr_NoMemory();
    }
    else {
        PyErr_SetString(PyExc_RuntimeError, rc == FTPOOL_ESTOPPED
                        ? "cannot schedule new futures after shutdown"
                        : ftpool_strerror(rc));
    }
    return -1;
}

/* Queues fut (a reference is taken for the job).  0 or -1. */
static int
queue_future(exec_workers *ew, PyObject *fut)
{
    uint64_t id = 0;
    int rc;

    Py_INCREF(fut);
    rc = ftpool_submit_ex(ew->w.pool, run_job, drop_job, fut, 0, &id);
    if (rc == FTPOOL_ESPAWN) {
        PyObject *exc = ftp_workers_take_spawn_error(&ew->w);
        if (ftpool_workers(ew->w.pool) > 0) {
            /* A worker that is there runs it. */
            Py_XDECREF(exc);
            return 0;
        }
        /* Queued, but no thread will ever take it (the job's reference
         * goes with the cancellation). */
        ftpool_cancel(ew->w.pool, id);
        if (exc != NULL) {
            ftp_err_restore(exc);
        }
        else {
            PyErr_SetString(PyExc_RuntimeError, "can't start new thread");
        }
        return -1;
    }
    if (rc < 0) {
        Py_DECREF(fut);
        return submit_refused(ew, rc);
    }
    return 0;
}

static PyObject *
exec_submit(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    exec_data *d = ED(self);
    exec_workers *ew = get_workers(self);
    PyObject *argt, *kw = NULL, *fut, *afut = NULL, *loop = NULL;
    int atomic = 1;

    if (ew == NULL) {
        return NULL;
    }
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "submit() missing 1 required positional argument: "
                        "'fn'");
        return NULL;
    }
    if (atomic_load(&ew->broken)) {
        PyObject *exc = broken_error();
        if (exc != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        return NULL;
    }
    if (atomic_load(&d->shutdown)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot schedule new futures after shutdown");
        return NULL;
    }
    if (atomic_load(&ew->w.st->exiting)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot schedule new futures after "
                        "interpreter shutdown");
        return NULL;
    }
    argt = PyTuple_New(nargs - 1);
    if (argt == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 1; i < nargs; i++) {
        PyTuple_SET_ITEM(argt, i - 1, Py_NewRef(args[i]));
        if (PyObject_IS_GC(args[i])) {
            atomic = 0;
        }
    }
    if (atomic && !FTP_FREE_THREADED) {
        /* What the cyclic GC does to such a tuple at its first collection,
         * done now: the arguments of queued calls (ints, strings...) cost
         * the GC nothing while they wait.  (Not without the GIL: see "GC
         * tracking" in future.c.) */
        PyObject_GC_UnTrack(argt);
    }
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        kw = PyDict_New();
        for (Py_ssize_t i = 0; kw && i < PyTuple_GET_SIZE(kwnames); i++) {
            if (PyDict_SetItem(kw, PyTuple_GET_ITEM(kwnames, i),
                               args[nargs + i]) < 0) {
                Py_CLEAR(kw);
            }
        }
        if (kw == NULL) {
            Py_DECREF(argt);
            return NULL;
        }
    }
    fut = ftp_future_new_call(ew->future_type, args[0], argt, kw);
    Py_DECREF(argt);
    Py_XDECREF(kw);
    if (fut == NULL) {
        return NULL;
    }
    /* asyncio's run_in_executor() gets its asyncio future from us rather
     * than chaining one to `fut` (aiolink.c). */
    if (kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0) {
        int linked = ftp_aio_caller_future(Py_TYPE(self), &afut, &loop);
        if (linked < 0) {
            Py_DECREF(fut);
            return NULL;
        }
        if (linked) {
            ftp_future_link_aio(fut, afut, loop);
            Py_DECREF(loop);
        }
    }
    if (queue_future(ew, fut) < 0) {
        Py_DECREF(fut);
        Py_XDECREF(afut);
        return NULL;
    }
    if (afut != NULL) {
        Py_DECREF(fut);
        return afut;
    }
    return fut;
}

static PyObject *
exec_shutdown(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"wait", "cancel_futures", NULL};
    int wait = 1, cancel_futures = 0;
    exec_data *d = ED(self);
    exec_workers *ew = workers_of(self);
    ftpool_mark mark;
    ftpool_t *pool;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|p$p:shutdown", kwlist,
                                     &wait, &cancel_futures)) {
        return NULL;
    }
    if (ew == NULL || ftp_workers_forked(&ew->w)) {
        /* Nothing to stop in a child: its workers are the parent's. */
        Py_RETURN_NONE;
    }
    pool = ew->w.pool;
    atomic_store(&d->shutdown, 1);
    /* Closed: a submit() that checked `shutdown` just before is refused by
     * the engine rather than run by a worker started after the others
     * left (without the GIL the two race). */
    ftpool_close(pool);
    if (cancel_futures) {
        ftpool_cancel_all(pool);
    }
    ftpool_mark_now(pool, &mark);
    ftpool_shutdown(pool, FTPOOL_SHUTDOWN_FINISH);
    if (!wait || ftpool_current_pool() == pool) {
        Py_RETURN_NONE;
    }
    /* The group lives while `self` does: the caller holds it.  The
     * workers leave the engine, then their threads end. */
    if (ftp_workers_join(&ew->w, &mark, -1) < 0
            || ftp_workers_join_ended(&ew->w, -1) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
get_max_workers(PyObject *self, void *c)
{
    return PyLong_FromSsize_t(ED(self)->max_workers);
}

static PyObject *
get_shutdown(PyObject *self, void *c)
{
    return PyBool_FromLong(atomic_load(&ED(self)->shutdown));
}

static PyObject *
get_broken(PyObject *self, void *c)
{
    exec_workers *ew = workers_of(self);

    if (ew != NULL && atomic_load(&ew->broken)) {
        return PyUnicode_FromString(BROKEN_MSG);
    }
    Py_RETURN_FALSE;
}

/* _threads: the worker threads started, serving or ended (the standard
 * library keeps them all in a set). */
static PyObject *
get_threads(PyObject *self, void *c)
{
    exec_workers *ew = get_workers(self);
    PyObject *all, *set;

    if (ew == NULL) {
        return NULL;
    }
    all = PySequence_Concat(ew->w.threads, ew->w.ended);
    set = all ? PySet_New(all) : NULL;
    Py_XDECREF(all);
    return set;
}

/* The other attributes the standard executor has. */
static PyObject *
get_setting(PyObject *self, void *which)
{
    exec_workers *ew = get_workers(self);
    PyObject *v = NULL;

    if (ew == NULL) {
        return NULL;
    }
    switch ((int)(intptr_t)which) {
    case 0: v = ew->w.prefix; break;
    case 1: v = ew->initializer; break;
    case 2: v = ew->initargs; break;
    }
    return Py_NewRef(v ? v : Py_None);
}

static PyGetSetDef exec_getset[] = {
    {"_max_workers", get_max_workers, NULL, NULL, NULL},
    {"_shutdown", get_shutdown, NULL, NULL, NULL},
    {"_broken", get_broken, NULL, NULL, NULL},
    {"_thread_name_prefix", get_setting, NULL, NULL, (void *)0},
    {"_initializer", get_setting, NULL, NULL, (void *)1},
    {"_initargs", get_setting, NULL, NULL, (void *)2},
    {"_threads", get_threads, NULL, "The worker threads started so far.",
     NULL},
    {NULL}
};

PyDoc_STRVAR(exec_doc,
"ThreadPoolExecutor(max_workers=None, thread_name_prefix='', "
"initializer=None, initargs=())\n"
"--\n"
"\n"
"A concurrent.futures executor that runs calls in a pool of threads.\n"
"\n"
"A subclass of concurrent.futures.ThreadPoolExecutor, with the same\n"
"constructor and methods, on the engine of Pool: it can replace the\n"
"standard executor, also as asyncio's default executor.  map() and the\n"
"context manager are inherited; submit() returns a Future.\n"
"\n"
"max_workers\n"
"    The most threads running at once.  None (the default): min(32,\n"
"    cpus + 4), cpus being the CPUs this process may use\n"
"    (os.process_cpu_count(), else the CPUs of os.sched_getaffinity(0),\n"
"    else os.cpu_count()), as the standard library since 3.13.\n"
"\n"
"thread_name_prefix\n"
"    Threads are named \"<prefix>_N\"; '' (the default) names them\n"
"    \"ThreadPoolExecutor-K_N\".\n"
"\n"
"initializer\n"
"    None, or a callable called as initializer(*initargs) in each new\n"
"    worker thread before it runs any call.  If it raises, the executor\n"
"    is broken: its pending futures fail with\n"
"    concurrent.futures.thread.BrokenThreadPool, and so do later\n"
"    submissions.\n"
"\n"
"initargs\n"
"    The arguments of initializer (a tuple).\n"
"\n"
"Raises ValueError if max_workers is 0 or less, and TypeError if\n"
"initializer is not callable.  An executor may be used from any number of\n"
"threads, also on free-threaded CPython; each future completes exactly\n"
"once.");

PyDoc_STRVAR(exec_submit_doc,
"submit($self, fn, /, *args, **kwargs)\n"
"--\n"
"\n"
"Schedule fn(*args, **kwargs) to run in a worker thread, and return a\n"
"Future for its outcome.\n"
"\n"
"The future is a concurrent.futures.Future: concurrent.futures.wait(),\n"
"as_completed() and asyncio.wrap_future() accept it.  When asyncio's\n"
"loop.run_in_executor() (and so asyncio.to_thread()) calls submit(), it\n"
"returns asyncio's own future, completed from the worker, instead.\n"
"\n"
"Raises RuntimeError after shutdown() or at interpreter exit, and\n"
"BrokenThreadPool if an initializer failed.  Safe to call from any\n"
"thread.");

PyDoc_STRVAR(exec_shutdown_doc,
"shutdown($self, /, wait=True, *, cancel_futures=False)\n"
"--\n"
"\n"
"Stop taking work, and let the workers exit once the queue is empty.\n"
"\n"
"wait\n"
"    If true (the default), return only once the workers have run the\n"
"    queued calls and exited (at once when called from one of them).\n"
"\n"
"cancel_futures\n"
"    If true, cancel the futures whose calls have not started instead of\n"
"    running them.\n"
"\n"
"Later submit() calls raise RuntimeError.  Calling shutdown() again does\n"
"no harm.");

static PyMethodDef exec_methods[] = {
    {"submit", (PyCFunction)(void (*)(void))exec_submit,
     METH_FASTCALL | METH_KEYWORDS,
     exec_submit_doc},
    {"shutdown", (PyCFunction)(void (*)(void))exec_shutdown,
     METH_VARARGS | METH_KEYWORDS,
     exec_shutdown_doc},
    {NULL}
};

int
ftp_executor_init_types(PyObject *module, ftp_state *st)
{
    PyTypeObject *future_type = NULL, *type = NULL;
    PyObject *base = NULL, *bases = NULL;
    Py_ssize_t off;
    int res = -1;

    future_type = ftp_future_create_type(module);
    if (future_type == NULL) {
        goto done;
    }
    base = ftp_import_attr("concurrent.futures.thread", "ThreadPoolExecutor");
    if (base == NULL) {
        goto done;
    }
    if (!PyType_Check(base)) {
        PyErr_SetString(PyExc_TypeError,
                        "concurrent.futures.ThreadPoolExecutor is not a "
                        "class");
        goto done;
    }
    off = ((PyTypeObject *)base)->tp_basicsize;
    if (exec_off >= 0 && exec_off != off) {
        PyErr_SetString(PyExc_ImportError,
                        "concurrent.futures.ThreadPoolExecutor changed its "
                        "layout");
        goto done;
    }
    exec_off = off;
    /* No dealloc/traverse/clear: inherited from the Python base (no object
     * fields here); the finalizer releases the group. */
    PyType_Slot slots[] = {
        {Py_tp_doc, (void *)exec_doc},
        {Py_tp_init, exec_init},
        {Py_tp_finalize, exec_finalize},
        {Py_tp_methods, exec_methods},
        {Py_tp_getset, exec_getset},
        {0, NULL}
    };
    PyType_Spec spec = {
        .name = "fastthreadpool.ThreadPoolExecutor",
        .basicsize = (int)(off + sizeof(exec_data)),
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
    if (type->tp_basicsize != spec.basicsize) {
        PyErr_SetString(PyExc_ImportError,
                        "unexpected ThreadPoolExecutor layout");
        goto done;
    }
    /* The type of the futures submit() makes (find_future_type). */
    if (PyObject_SetAttrString((PyObject *)type, "_ftp_future",
                               (PyObject *)future_type) < 0
        || PyModule_AddObjectRef(module, "ThreadPoolExecutor",
                                 (PyObject *)type) < 0) {
        goto done;
    }
    res = 0;
done:
    Py_XDECREF(type);
    Py_XDECREF(bases);
    Py_XDECREF(base);
    Py_XDECREF(future_type);
    return res;
}
