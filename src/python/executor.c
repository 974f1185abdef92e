/*
 * executor.c - ThreadPoolExecutor: concurrent.futures on the engine.
 *
 * A heap type that subclasses concurrent.futures.ThreadPoolExecutor (asyncio
 * requires that of a default executor) and overrides __init__, submit and
 * shutdown; map() and the context manager come from the base class.
 *
 * Work is an engine job whose argument is the Future (future.c), which holds
 * the call.  Workers are threading.Thread objects that the engine asks for
 * through its spawn hook and that call ftpool_worker_run().  A worker holds
 * the GIL while it runs jobs and releases it only while it sleeps in the
 * engine (the before_wait/after_wait hooks), so a burst of work costs no GIL
 * hand-off per job.
 *
 * Lifetimes: the engine pool and what the workers need live in an
 * `exec_core`, a plain C struct counted by the executor and by each worker
 * thread, so that worker threads never keep the executor object alive.  As
 * in the standard library, an executor that is garbage collected without
 * shutdown() lets its workers finish the queued work and exit, and at
 * interpreter exit (threading._register_atexit) every executor stops taking
 * work and its workers exit once the queue is empty.
 *
 * Every field of exec_core and of the executor is guarded by the GIL.
 */
#include "ftp.h"
#include "executor.h"
#include "future.h"

#define BROKEN_MSG \
    "A thread initializer failed, the thread pool is not usable anymore"

typedef struct exec_core {
    ftpool_t *pool;
    int refs;                   /* the executor + each worker thread */
    int broken;                 /* an initializer failed */
    int exiting;                /* the interpreter is shutting down */
    unsigned nthreads;          /* threads started: the next name's index */
    PyTypeObject *future_type;
    PyObject *prefix;           /* str: thread names are prefix_N */
    PyObject *initializer;      /* callable or NULL */
    PyObject *initargs;         /* tuple */
    PyObject *threads;          /* set of threading.Thread */
    PyObject *spawn_error;      /* why the last spawn failed, or NULL */
    PyInterpreterState *interp;
    struct exec_core *next;     /* in `cores` */
    struct exec_core **prevp;
} exec_core;

/* Every live core, for the interpreter-exit hook. */
static exec_core *cores;
/* Set when the main interpreter starts to exit: no executor takes work. */
static int main_exiting;
/* Numbers the default thread name prefixes, as the standard library. */
static unsigned long prefix_counter;

/* The worker thread's saved thread state while it sleeps in the engine,
 * and the core whose worker the thread is. */
static FTP_THREAD_LOCAL PyThreadState *tls_tstate;
static FTP_THREAD_LOCAL exec_core *tls_core;

typedef struct {
    exec_core *core;            /* NULL before __init__ and after finalize */
    Py_ssize_t max_workers;
    int shutdown;
} exec_data;

/* Offset of exec_data in the object: the Python base's instance size. */
static Py_ssize_t exec_off = -1;

static inline exec_data *
ED(PyObject *self)
{
    return (exec_data *)((char *)self + exec_off);
}

/* ------------------------------------------------------------------------ */
/* The core                                                                 */
/* ------------------------------------------------------------------------ */

static void
core_decref(exec_core *core)
{
    if (--core->refs > 0) {
        return;
    }
    *core->prevp = core->next;
    if (core->next != NULL) {
        core->next->prevp = core->prevp;
    }
    if (core->pool != NULL) {
        /* Drop what is still queued (normally nothing) while we hold the
         * GIL, which drop_job() needs.  No worker is left (each holds a
         * reference), so destroying does not wait for jobs. */
        ftpool_cancel_all(core->pool);
        Py_BEGIN_ALLOW_THREADS
        ftpool_destroy(core->pool);
        Py_END_ALLOW_THREADS
    }
    Py_XDECREF(core->future_type);
    Py_XDECREF(core->prefix);
    Py_XDECREF(core->initializer);
    Py_XDECREF(core->initargs);
    Py_XDECREF(core->threads);
    Py_XDECREF(core->spawn_error);
    PyMem_Free(core);
}

static PyObject *
broken_error(void)
{
    PyObject *mod = PyImport_ImportModule("concurrent.futures.thread");
    if (mod == NULL) {
        return NULL;
    }
    PyObject *cls = ftp_getattr(mod, "BrokenThreadPool");
    Py_DECREF(mod);
    if (cls == NULL) {
        return NULL;
    }
    PyObject *exc = PyObject_CallFunction(cls, "s", BROKEN_MSG);
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

/* The engine job: runs with the GIL held, in a worker. */
static void
run_job(void *arg)
{
    PyObject *fut = arg;
    if (tls_core != NULL && tls_core->broken) {
        fail_broken(fut);
    }
    else {
        ftp_future_run(fut);
    }
    Py_DECREF(fut);
}

/* The engine drops a queued job: shutdown(cancel_futures=True), a broken
 * pool, or a core being freed.  The executor drops jobs only through
 * ftpool_cancel_all(), always with the GIL held, so this runs with it. */
static void
drop_job(void *arg)
{
    PyObject *fut = arg;
    if (tls_core != NULL && tls_core->broken) {
        fail_broken(fut);
    }
    else {
        ftp_future_drop(fut);
    }
    Py_DECREF(fut);
}

/* Worker hooks: a worker gives up the GIL only to sleep. */
static void
before_wait(void *arg)
{
    tls_tstate = PyEval_SaveThread();
}

static void
after_wait(void *arg)
{
    PyEval_RestoreThread(tls_tstate);
}

/* The body of a worker thread: runs the initializer, then serves the pool
 * until it retires. */
static PyObject *
worker_main(PyObject *capsule, PyObject *unused)
{
    exec_core *core = PyCapsule_GetPointer(capsule, NULL);
    if (core == NULL) {
        return NULL;
    }
    tls_core = core;
    if (core->initializer != NULL && !core->broken) {
        PyObject *r = PyObject_Call(core->initializer, core->initargs, NULL);
        if (r == NULL) {
            PyObject *exc = ftp_err_fetch();
            ftp_log_exception("critical", "Exception in initializer:", NULL,
                              exc);
            Py_XDECREF(exc);
            /* Fail the queued work now; later submissions are refused and
             * jobs other workers take fail in run_job(). */
            core->broken = 1;
            ftpool_cancel_all(core->pool);
        }
        Py_XDECREF(r);
    }
    /* Called even when broken: every spawn request must be answered. */
    ftpool_worker_run(core->pool);
    tls_core = NULL;
    core_decref(core);
    Py_RETURN_NONE;
}

static PyMethodDef worker_def = {
    "_worker", worker_main, METH_NOARGS, NULL
};

/* Starts a worker thread (the engine's spawn hook).  The engine calls it
 * in the thread that submits work (we use no timers and never change the
 * maximum), here always with the GIL held: PyGILState is not used because
 * it does not work in subinterpreters. */
static int
spawn_worker(ftpool_t *pool, void *arg)
{
    exec_core *core = arg;
    PyObject *threading = NULL, *capsule = NULL, *target = NULL;
    PyObject *name = NULL, *thread = NULL, *r = NULL;
    int ok = -1;

    threading = PyImport_ImportModule("threading");
    if (threading == NULL) {
        goto done;
    }
    capsule = PyCapsule_New(core, NULL, NULL);
    if (capsule == NULL) {
        goto done;
    }
    target = PyCFunction_New(&worker_def, capsule);
    name = PyUnicode_FromFormat("%U_%u", core->prefix, core->nthreads);
    if (target == NULL || name == NULL) {
        goto done;
    }
    {
        PyObject *targs[] = {Py_None, target, name};
        thread = ftp_call_method(threading, "Thread", targs, 3);
    }
    if (thread == NULL || PySet_Add(core->threads, thread) < 0) {
        goto done;
    }
    core->nthreads++;
    core->refs++;
    r = ftp_call_method(thread, "start", NULL, 0);
    if (r == NULL) {
        PyObject *exc = ftp_err_fetch();
        core->nthreads--;
        core->refs--;
        if (PySet_Discard(core->threads, thread) < 0) {
            PyErr_Clear();
        }
        ftp_err_restore(exc);
        goto done;
    }
    ok = 0;
done:
    if (ok < 0) {
        /* Kept for submit(), which raises it if no worker is left. */
        Py_XSETREF(core->spawn_error, ftp_err_fetch());
    }
    Py_XDECREF(r);
    Py_XDECREF(thread);
    Py_XDECREF(name);
    Py_XDECREF(target);
    Py_XDECREF(capsule);
    Py_XDECREF(threading);
    return ok;
}

/* threading's exit hook: no executor takes work any more, workers exit
 * once the queue is empty; threading joins them next. */
static PyObject *
python_exit(PyObject *mod, PyObject *unused)
{
    PyInterpreterState *interp = PyInterpreterState_Get();
    if (interp == PyInterpreterState_Main()) {
        main_exiting = 1;
    }
    for (exec_core *c = cores; c != NULL; c = c->next) {
        if (c->interp == interp) {
            c->exiting = 1;
            if (c->pool != NULL) {  /* NULL while __init__ makes it */
                ftpool_shutdown(c->pool, FTPOOL_SHUTDOWN_FINISH);
            }
        }
    }
    Py_RETURN_NONE;
}

static PyMethodDef python_exit_def = {
    "_python_exit", python_exit, METH_NOARGS, NULL
};

/* ------------------------------------------------------------------------ */
/* ThreadPoolExecutor                                                       */
/* ------------------------------------------------------------------------ */

/* Our Future type, stored on the executor type at module exec. */
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

static int
exec_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"max_workers", "thread_name_prefix",
                             "initializer", "initargs", NULL};
    PyObject *max_workers = Py_None, *prefix = NULL;
    PyObject *initializer = Py_None, *initargs = NULL;
    exec_data *d = ED(self);
    Py_ssize_t n;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OUOO:ThreadPoolExecutor",
                                     kwlist, &max_workers, &prefix,
                                     &initializer, &initargs)) {
        return -1;
    }
    if (d->core != NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "ThreadPoolExecutor is already initialized");
        return -1;
    }
    if (max_workers == Py_None) {
        /* As the standard library: at least 5 threads for I/O bound work,
         * at most 32 so that big machines do not get hundreds. */
        PyObject *os = PyImport_ImportModule("os");
        PyObject *cpus = os ? ftp_call_method(os, "cpu_count", NULL, 0)
                            : NULL;
        Py_XDECREF(os);
        if (cpus == NULL) {
            return -1;
        }
        n = cpus == Py_None ? 1 : PyLong_AsSsize_t(cpus);
        Py_DECREF(cpus);
        if (n == -1 && PyErr_Occurred()) {
            return -1;
        }
        n = n + 4 < 32 ? n + 4 : 32;
    }
    else {
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
    }
    if (initializer != Py_None && !PyCallable_Check(initializer)) {
        PyErr_SetString(PyExc_TypeError, "initializer must be a callable");
        return -1;
    }
    PyObject *argtuple = initargs ? PySequence_Tuple(initargs)
                                  : PyTuple_New(0);
    if (argtuple == NULL) {
        return -1;
    }
    exec_core *core = PyMem_Calloc(1, sizeof(*core));
    if (core == NULL) {
        Py_DECREF(argtuple);
        PyErr_NoMemory();
        return -1;
    }
    core->refs = 1;
    core->initargs = argtuple;
    core->initializer = initializer == Py_None ? NULL
                                               : Py_NewRef(initializer);
    core->interp = PyInterpreterState_Get();
    core->next = cores;
    core->prevp = &cores;
    if (cores != NULL) {
        cores->prevp = &core->next;
    }
    cores = core;
    if (prefix != NULL && PyUnicode_GET_LENGTH(prefix) > 0) {
        core->prefix = Py_NewRef(prefix);
    }
    else {
        core->prefix = PyUnicode_FromFormat("ThreadPoolExecutor-%lu",
                                            prefix_counter++);
    }
    if (core->prefix == NULL
        || (core->threads = PySet_New(NULL)) == NULL
        || (core->future_type = find_future_type(self)) == NULL) {
        core_decref(core);
        return -1;
    }
    ftpool_options o = {0};
    o.max_workers = (unsigned)n;
    o.spawn = spawn_worker;
    o.spawn_arg = core;
    o.before_wait = before_wait;
    o.after_wait = after_wait;
    int rc = ftpool_create(&o, &core->pool);
    if (rc < 0) {
        core->pool = NULL;
        core_decref(core);
        if (rc == FTPOOL_ENOMEM) {
            PyErr_NoMemory();
        }
        else {
            PyErr_SetString(PyExc_RuntimeError, ftpool_strerror(rc));
        }
        return -1;
    }
    d->core = core;
    d->max_workers = n;
    d->shutdown = 0;
    return 0;
}

/* Called once, from dealloc or by the garbage collector: the workers
 * finish the queued work and exit, as when a standard executor is
 * collected. */
static void
exec_finalize(PyObject *self)
{
    exec_data *d = ED(self);
    exec_core *core = d->core;
    if (core == NULL) {
        return;
    }
    PyObject *exc = ftp_err_fetch();
    d->core = NULL;
    ftpool_shutdown(core->pool, FTPOOL_SHUTDOWN_FINISH);
    core_decref(core);
    ftp_err_restore(exc);
}

static exec_core *
get_core(PyObject *self)
{
    exec_core *core = ED(self)->core;
    if (core == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "ThreadPoolExecutor.__init__() was not called");
    }
    return core;
}

static PyObject *
exec_submit(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    exec_data *d = ED(self);
    exec_core *core = get_core(self);
    if (core == NULL) {
        return NULL;
    }
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "submit() missing 1 required positional argument: "
                        "'fn'");
        return NULL;
    }
    if (core->broken) {
        PyObject *exc = broken_error();
        if (exc != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        return NULL;
    }
    if (d->shutdown) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot schedule new futures after shutdown");
        return NULL;
    }
    if (core->exiting || main_exiting) {
        PyErr_SetString(PyExc_RuntimeError,
                        "cannot schedule new futures after "
                        "interpreter shutdown");
        return NULL;
    }
    PyObject *argt = PyTuple_New(nargs - 1);
    if (argt == NULL) {
        return NULL;
    }
    int atomic = 1;
    for (Py_ssize_t i = 1; i < nargs; i++) {
        PyTuple_SET_ITEM(argt, i - 1, Py_NewRef(args[i]));
        if (PyObject_IS_GC(args[i])) {
            atomic = 0;
        }
    }
    if (atomic) {
        /* What the cyclic GC does to such a tuple at its first collection,
         * done now: the arguments of queued calls (ints, strings...) cost
         * the GC nothing while they wait. */
        PyObject_GC_UnTrack(argt);
    }
    PyObject *kw = NULL;
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        kw = PyDict_New();
        if (kw == NULL) {
            Py_DECREF(argt);
            return NULL;
        }
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            if (PyDict_SetItem(kw, PyTuple_GET_ITEM(kwnames, i),
                               args[nargs + i]) < 0) {
                Py_DECREF(kw);
                Py_DECREF(argt);
                return NULL;
            }
        }
    }
    PyObject *fut = ftp_future_new_call(core->future_type, args[0], argt,
                                        kw);
    Py_DECREF(argt);
    Py_XDECREF(kw);
    if (fut == NULL) {
        return NULL;
    }
    /* asyncio's run_in_executor() gets its asyncio future from us rather
     * than chaining one to `fut` (aiolink.c). */
    PyObject *afut = NULL;
    if ((kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0)
        && ftp_aio_link_caller(Py_TYPE(self), fut, &afut) < 0) {
        Py_DECREF(fut);
        return NULL;
    }
    /* The job owns one reference until it has run or been dropped. */
    Py_INCREF(fut);
    uint64_t id = 0;
    int rc = ftpool_submit_ex(core->pool, run_job, drop_job, fut, 0, &id);
    if (rc == FTPOOL_ESPAWN && ftpool_workers(core->pool) == 0) {
        /* Queued, but no thread will ever take it. */
        ftpool_cancel(core->pool, id);
        if (core->spawn_error != NULL) {
            PyObject *e = core->spawn_error;
            core->spawn_error = NULL;
            PyErr_SetObject((PyObject *)Py_TYPE(e), e);
            Py_DECREF(e);
        }
        else {
            PyErr_SetString(PyExc_RuntimeError, "can't start new thread");
        }
        Py_DECREF(fut);
        Py_XDECREF(afut);
        return NULL;
    }
    Py_CLEAR(core->spawn_error);
    if (rc < 0 && rc != FTPOOL_ESPAWN) {
        Py_DECREF(fut);
        Py_DECREF(fut);
        Py_XDECREF(afut);
        if (rc == FTPOOL_ENOMEM) {
            return PyErr_NoMemory();
        }
        PyErr_SetString(PyExc_RuntimeError, rc == FTPOOL_ESTOPPED
                        ? "cannot schedule new futures after shutdown"
                        : ftpool_strerror(rc));
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
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|p$p:shutdown", kwlist,
                                     &wait, &cancel_futures)) {
        return NULL;
    }
    exec_data *d = ED(self);
    exec_core *core = d->core;
    if (core == NULL) {
        Py_RETURN_NONE;
    }
    d->shutdown = 1;
    if (cancel_futures) {
        ftpool_cancel_all(core->pool);
    }
    ftpool_shutdown(core->pool, FTPOOL_SHUTDOWN_FINISH);
    if (!wait || ftpool_current_pool() == core->pool) {
        Py_RETURN_NONE;
    }
    /* Keep the core alive while the GIL is released below. */
    core->refs++;
    int rc;
    do {
        /* Waits in slices so that signal handlers run meanwhile. */
        Py_BEGIN_ALLOW_THREADS
        rc = ftpool_join(core->pool, 50 * 1000 * 1000);
        Py_END_ALLOW_THREADS
        if (rc == FTPOOL_ETIMEDOUT && PyErr_CheckSignals() < 0) {
            core_decref(core);
            return NULL;
        }
    } while (rc == FTPOOL_ETIMEDOUT);
    /* The workers have left the engine; let their threads end too. */
    PyObject *threads = PySequence_List(core->threads);
    core_decref(core);
    if (threads == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(threads); i++) {
        PyObject *r = ftp_call_method(PyList_GET_ITEM(threads, i), "join",
                                      NULL, 0);
        if (r == NULL) {
            Py_DECREF(threads);
            return NULL;
        }
        Py_DECREF(r);
    }
    Py_DECREF(threads);
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
    return PyBool_FromLong(ED(self)->shutdown);
}

static PyObject *
get_broken(PyObject *self, void *c)
{
    exec_core *core = ED(self)->core;
    if (core != NULL && core->broken) {
        return PyUnicode_FromString(BROKEN_MSG);
    }
    Py_RETURN_FALSE;
}

/* The other attributes the standard executor has, read from the core. */
static PyObject *
get_core_field(PyObject *self, void *which)
{
    exec_core *core = get_core(self);
    if (core == NULL) {
        return NULL;
    }
    PyObject *v = NULL;
    switch ((int)(intptr_t)which) {
    case 0: v = core->prefix; break;
    case 1: v = core->initializer; break;
    case 2: v = core->initargs; break;
    case 3: v = core->threads; break;
    }
    return Py_NewRef(v ? v : Py_None);
}

static PyGetSetDef exec_getset[] = {
    {"_max_workers", get_max_workers, NULL, NULL, NULL},
    {"_shutdown", get_shutdown, NULL, NULL, NULL},
    {"_broken", get_broken, NULL, NULL, NULL},
    {"_thread_name_prefix", get_core_field, NULL, NULL, (void *)0},
    {"_initializer", get_core_field, NULL, NULL, (void *)1},
    {"_initargs", get_core_field, NULL, NULL, (void *)2},
    {"_threads", get_core_field, NULL, "The worker threads started so far.",
     (void *)3},
    {NULL}
};

static PyMethodDef exec_methods[] = {
    {"submit", (PyCFunction)(void (*)(void))exec_submit,
     METH_FASTCALL | METH_KEYWORDS,
     "submit($self, fn, /, *args, **kwargs)\n--\n\n"
     "Schedules fn(*args, **kwargs) and returns a Future for its result."},
    {"shutdown", (PyCFunction)(void (*)(void))exec_shutdown,
     METH_VARARGS | METH_KEYWORDS,
     "shutdown($self, /, wait=True, *, cancel_futures=False)\n--\n\n"
     "Stops taking work; with wait, returns once the workers have "
     "finished the queued work and exited.  cancel_futures cancels the "
     "work that has not started."},
    {NULL}
};

int
ftp_executor_exec(PyObject *module)
{
    PyTypeObject *future_type = NULL, *type = NULL;
    PyObject *mod = NULL, *base = NULL, *bases = NULL;
    int res = -1;

    future_type = ftp_future_create_type(module);
    if (future_type == NULL) {
        goto done;
    }
    mod = PyImport_ImportModule("concurrent.futures.thread");
    if (mod == NULL) {
        goto done;
    }
    base = ftp_getattr(mod, "ThreadPoolExecutor");
    if (base == NULL) {
        goto done;
    }
    if (!PyType_Check(base)) {
        PyErr_SetString(PyExc_TypeError,
                        "concurrent.futures.ThreadPoolExecutor is not a "
                        "class");
        goto done;
    }
    Py_ssize_t off = ((PyTypeObject *)base)->tp_basicsize;
    if (exec_off >= 0 && exec_off != off) {
        PyErr_SetString(PyExc_ImportError,
                        "concurrent.futures.ThreadPoolExecutor changed its "
                        "layout");
        goto done;
    }
    exec_off = off;
    /* No dealloc/traverse/clear: inherited from the Python base (no object
     * fields here); the finalizer releases the core. */
    PyType_Slot slots[] = {
        {Py_tp_doc, "ThreadPoolExecutor(max_workers=None, "
                    "thread_name_prefix='', initializer=None, initargs=())"
                    "\n--\n\n"
                    "A concurrent.futures executor that runs calls in a "
                    "pool of threads."},
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
    /* Stop the workers at interpreter exit, before threading joins them. */
    PyObject *threading = PyImport_ImportModule("threading");
    if (threading == NULL) {
        goto done;
    }
    PyObject *hook = PyCFunction_New(&python_exit_def, NULL);
    PyObject *r = hook ? PyObject_CallMethod(threading, "_register_atexit",
                                             "O", hook)
                       : NULL;
    Py_XDECREF(hook);
    Py_DECREF(threading);
    if (r == NULL) {
        goto done;
    }
    Py_DECREF(r);
    res = 0;
done:
    Py_XDECREF(type);
    Py_XDECREF(bases);
    Py_XDECREF(base);
    Py_XDECREF(mod);
    Py_XDECREF(future_type);
    return res;
}
