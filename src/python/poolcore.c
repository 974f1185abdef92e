/*
 * poolcore.c - _PoolCore, the internal half of fastthreadpool.Pool.
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
#include "poolcore.h"

#include <math.h>
#include <string.h>

/* The argument of the no-op job that restarts the engine (see clear()). */
static int ftp_nop_arg = FTP_KIND_NOP;

static void
nop_run(void *arg)
{
    (void)arg;
}

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
    core_inflight_add(core, -1);
    ftp_notify(core->notify, &core->notify_waiters);
}

/* inspect.isgeneratorfunction(): unwraps bound methods and partials. */
int
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
            PyObject *inner = ftp_getattr(fn, "func");
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
int
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
int
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

int64_t
time_left(int64_t deadline)
{
    int64_t left;

    if (deadline < 0) {
        return -1;
    }
    left = deadline - ftpool_now_ns();
    return left > 0 ? left : 0;
}

int
forget_ended_threads(PyObject *threads)
{
    PyObject *seen = PySequence_Tuple(threads);

    if (seen == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(seen); i++) {
        PyObject *t = PyTuple_GET_ITEM(seen, i);
        PyObject *r = ftp_call_method(t, "is_alive", NULL, 0);
        int alive = r != NULL ? PyObject_IsTrue(r) : -1;
        Py_XDECREF(r);
        if (alive < 0) {
            Py_DECREF(seen);
            return -1;
        }
        for (Py_ssize_t j = 0; !alive && j < PyList_GET_SIZE(threads); j++) {
            if (PyList_GET_ITEM(threads, j) == t) {
                if (PySequence_DelItem(threads, j) < 0) {
                    Py_DECREF(seen);
                    return -1;
                }
                break;
            }
        }
    }
    Py_DECREF(seen);
    return 0;
}

/* Runs an engine wait (join or wait_idle) with the GIL released, in slices
 * so that signal handlers run.  1: done, 0: timed out, -1: exception,
 * -2: called from one of the pool's own workers. */
int
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
        if (!PyErr_ExceptionMatches(PyExc_RuntimeError)) {
            return -1;
        }
        PyErr_Clear();
        if (deadline >= 0 && ftpool_now_ns() >= deadline) {
            return 0;   /* not even started, so not ended: a timeout */
        }
        ftp_nap_ms(1);
    }
    Py_DECREF(r);
    alive = ftp_call_method(thread, "is_alive", NULL, 0);
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
PyObject *
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

    if (job->kwargs == NULL) {
        r = PyObject_Vectorcall(job->fn, job_argv(job), job->nargs, NULL);
    }
    else {
        r = PyObject_VectorcallDict(job->fn, job_argv(job), job->nargs,
                                    job->kwargs);
    }
    if (r == NULL) {
        gen = 0;
    }
    else if (PyFunction_Check(job->fn)) {
        /* The common case, inline. */
        PyCodeObject *code = (PyCodeObject *)PyFunction_GET_CODE(job->fn);
        gen = (code->co_flags & CO_GENERATOR) != 0;
    }
    else {
        gen = is_generator_function(core->st, job->fn);
    }
    if (r != NULL && !gen && job->done == NULL && !core->result_id) {
        /* The most common case, deliver() inline: store the result. */
        if (ftp_rq_push(core->done, r) < 0) {
            record_failure(&core->shape, job->id, NULL, NULL);
        }
        else if (core->done_max > 0) {
            ftp_rq_throttle(core->done);
        }
    }
    else if (r != NULL && !gen && job->done == NULL) {
        /* Store the result with its id. */
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
    if (me != NULL && core->ended != NULL) {
        /* The thread still runs Python for a moment: keep it for the joins
         * of shutdown(), and forget the ones that are over. */
        if (forget_ended_threads(core->ended) < 0) {
            PyErr_Clear();
        }
        PyList_Append(core->ended, me);
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

int
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

int
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
    Py_VISIT(core->ended);
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
    Py_CLEAR(core->ended);
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
                    PyMem_RawFree(shell);
        }
    }
    else if (shell != NULL) {
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

int
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

/* Queues fn(*args, **kwargs) with the given done mode (a new reference,
 * stolen) and flags.  Returns the result of submit*(): None or the id. */
PyObject *
core_submit(ftp_core *core, PyObject *fn, PyObject *const *argv,
            Py_ssize_t nargs, PyObject *kwargs, PyObject *done,
            unsigned flags)
{
    ftp_job *job;
    int rc;

    if (Py_TYPE(fn)->tp_call == NULL) {     /* PyCallable_Check() */
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
    core_inflight_add(core, 1);
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
    core_inflight_add(core, -1);
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
PyObject *
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

void
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

void
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

void
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


int
core_idle(ftp_core *core)
{
    return atomic_load(&core->inflight) == 0
           && ftpool_pending(core->pool) == 0;
}

/* After a shutdown the engine starts workers again only for a submission,
 * not for timer runs.  Timers armed across shutdown()/clear() must still
 * run (Part B 7.6: a schedule outlives shutdown()), so a no-op submission
 * restarts the pool.  0, or -1 with an exception (init_callback). */
int
core_kick(ftp_core *core)
{
    int rc = ftpool_submit(core->pool, nop_run, &ftp_nop_arg, NULL);

    if (rc == FTPOOL_ESPAWN && PyErr_Occurred()) {
        return -1;
    }
    return 0;
}

/* shutdown(timeout, soon): 1 if everything ended in time, 0 if not, -1 on
 * an exception. */
int
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
    threads = PySequence_List(core->children);
    if (threads == NULL || PyList_SetSlice(threads, PY_SSIZE_T_MAX,
                                           PY_SSIZE_T_MAX, core->ended) < 0) {
        Py_XDECREF(threads);
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(threads); i++) {
        rc = join_thread(core, PyList_GET_ITEM(threads, i), deadline);
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

/* Creates the shell and the engine pool of a new core.  0 or -1. */
int
core_start_engine(ftp_core *core)
{
    ftpool_options opts;
    int rc;

    core->shell = PyMem_RawCalloc(1, sizeof(ftp_shell));
    if (core->shell == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    core->shell->core = core;
    core->capsule = PyCapsule_New(core->shell, NULL, NULL);
    if (core->capsule == NULL) {
        return -1;
    }
    memset(&opts, 0, sizeof(opts));
    opts.max_workers = core->max_children;
    opts.spawn = core_spawn;
    opts.spawn_arg = core->shell;
    opts.before_wait = hook_before_wait;
    opts.after_wait = hook_after_wait;
    opts.worker_end = hook_worker_end;
    opts.hook_arg = core->shell;
    rc = ftpool_create(&opts, &core->shell->pool);
    if (rc != FTPOOL_OK) {
        core->shell->pool = NULL;
        raise_engine_error(core, rc);
        return -1;
    }
    core->pool = core->shell->pool;
    return 0;
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
