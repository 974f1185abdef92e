/*
 * workers.c - the worker layer: an engine pool whose workers are
 * threading.Thread objects, shared by Pool and ThreadPoolExecutor (see
 * "The worker layer" in ftp.h).  It owns how workers start, sleep, give
 * the GIL away and end, how callers wait, the default number of workers,
 * and what happens at interpreter exit.
 *
 * A worker thread attaches its thread state once and keeps it while it
 * has jobs to run: the engine's before_wait hook detaches it just before
 * the worker sleeps, after_wait attaches it again.  A burst of jobs
 * therefore costs no GIL hand-off per job; and a sleeping worker never
 * holds up another thread, nor a stop-the-world collection of the
 * free-threaded build.
 */
#include "ftp.h"

#include <string.h>

/* Blocking waits wake at least this often to run signal handlers. */
#define FTP_WAIT_SLICE_NS 50000000LL
/* A worker passes the interpreter's checkpoint once per this many jobs
 * (a power of two). */
#define FTP_CHECKPOINT_JOBS 64

/* Per worker thread: the thread state it gave up to sleep, jobs run, and
 * its group. */
static FTP_THREAD_LOCAL PyThreadState *tls_tstate;
static FTP_THREAD_LOCAL unsigned tls_jobs;
static FTP_THREAD_LOCAL ftp_workers *tls_group;
/* Depth of engine callbacks (drop callbacks, the spawn hook) running in
 * this thread. */
static FTP_THREAD_LOCAL int tls_in_callback;

ftp_workers *
ftp_workers_current(void)
{
    return tls_group;
}

void
ftp_workers_enter_callback(void)
{
    tls_in_callback++;
}

void
ftp_workers_leave_callback(void)
{
    tls_in_callback--;
}

int
ftp_workers_in_callback(void)
{
    return tls_in_callback > 0;
}

/* ------------------------------------------------------------------------ */
/* Sleeping and yielding                                                    */
/* ------------------------------------------------------------------------ */

static void
hook_before_wait(void *arg)
{
    tls_tstate = PyEval_SaveThread();
}

static void
hook_after_wait(void *arg)
{
    PyEval_RestoreThread(tls_tstate);
}

/* A thread that wants the GIL waits one switch interval, then asks the
 * holder to let go, unless the GIL changed hands meanwhile; the holder
 * honours the request where the interpreter checks for such events, at
 * the start of a Python function among other places, and waits until the
 * other thread has the GIL.  A worker whose jobs are C functions never
 * gets there, so every so many jobs it calls an empty Python function.
 * Releasing and retaking the GIL instead would not do: nobody takes it in
 * the instant it is free, yet it "changed hands", so a waiting thread
 * never asks and starves.  Without the GIL the same check lets a
 * stop-the-world pause of the free-threaded build proceed. */
void
ftp_workers_job_done(void)
{
    if ((++tls_jobs & (FTP_CHECKPOINT_JOBS - 1)) == 0 && tls_group != NULL) {
        PyObject *fn = tls_group->st->checkpoint, *r;
        if (fn != NULL) {
            r = PyObject_CallNoArgs(fn);
            if (r == NULL) {
                /* An asynchronous exception (PyThreadState_SetAsyncExc)
                 * that arrived between two jobs. */
                PyErr_WriteUnraisable(fn);
            }
            Py_XDECREF(r);
        }
    }
}

int
ftp_workers_checkpoint_init(ftp_state *st)
{
    PyObject *code, *ns, *r;

    code = Py_CompileString("def checkpoint():\n    pass\n",
                            "<fastthreadpool>", Py_file_input);
    ns = PyDict_New();
    r = code && ns ? PyEval_EvalCode(code, ns, ns) : NULL;
    Py_XDECREF(code);
    if (r != NULL) {
        Py_DECREF(r);
        st->checkpoint = Py_XNewRef(PyDict_GetItemString(ns, "checkpoint"));
    }
    Py_XDECREF(ns);
    return st->checkpoint != NULL ? 0 : -1;
}

int
ftp_wait_sliced(int (*wait)(void *obj, int64_t ns), void *obj,
                int64_t deadline)
{
    for (;;) {
        int64_t left = ftp_time_left(deadline), slice = FTP_WAIT_SLICE_NS;
        int rc;

        if (left >= 0 && left < slice) {
            slice = left;
        }
        Py_BEGIN_ALLOW_THREADS
        rc = wait(obj, slice);
        Py_END_ALLOW_THREADS
        if (rc == FTPOOL_OK) {
            return 1;
        }
        if (rc == FTPOOL_EBUSY) {
            return -2;
        }
        /* This slice ran out: run signal handlers (which may raise
         * KeyboardInterrupt), then go on with what is left. */
        if (PyErr_CheckSignals() < 0) {
            return -1;
        }
        if (deadline >= 0 && ftpool_now_ns() >= deadline) {
            return 0;
        }
    }
}

/* A wait in slices on one engine state: the mark keeps an instant that
 * falls between two slices from being missed. */
typedef struct {
    ftpool_t *pool;
    ftpool_mark since;
} state_wait;

static int
join_for(void *arg, int64_t ns)
{
    state_wait *sw = arg;

    return ftpool_join_since(sw->pool, &sw->since, ns);
}

static int
wait_idle_for(void *arg, int64_t ns)
{
    state_wait *sw = arg;

    return ftpool_wait_idle_since(sw->pool, &sw->since, ns);
}

int
ftp_workers_join(ftp_workers *w, const ftpool_mark *since, int64_t deadline)
{
    state_wait sw = {w->pool, *since};

    return ftp_wait_sliced(join_for, &sw, deadline);
}

int
ftp_workers_wait_idle(ftp_workers *w, int64_t deadline)
{
    state_wait sw = {w->pool, {0, 0}};

    ftpool_mark_now(w->pool, &sw.since);
    return ftp_wait_sliced(wait_idle_for, &sw, deadline);
}

long
ftp_cpu_count(void)
{
    /* The CPUs this process may use (affinity, cpusets), not those of the
     * machine: os.process_cpu_count() (3.13+), then the affinity mask,
     * then os.cpu_count(). */
    static const char *const ways[] = {"process_cpu_count",
                                       "sched_getaffinity", "cpu_count"};
    PyObject *os = PyImport_ImportModule("os");
    long n = -1;

    if (os == NULL) {
        PyErr_Clear();
        return 1;
    }
    for (size_t i = 0; i < sizeof(ways) / sizeof(ways[0]) && n < 1; i++) {
        PyObject *fn = ftp_getattr(os, ways[i]), *r = NULL;
        if (fn != NULL) {
            if (i == 1) {
                PyObject *zero = PyLong_FromLong(0);
                r = zero ? PyObject_CallOneArg(fn, zero) : NULL;
                Py_XDECREF(zero);
            }
            else {
                r = PyObject_CallNoArgs(fn);
            }
            Py_DECREF(fn);
        }
        if (r != NULL && r != Py_None) {
            n = i == 1 ? (long)PyObject_Size(r) : PyLong_AsLong(r);
        }
        Py_XDECREF(r);
        PyErr_Clear();
    }
    Py_DECREF(os);
    return n > 0 ? n : 1;
}

/* ------------------------------------------------------------------------ */
/* Lifetime                                                                 */
/* ------------------------------------------------------------------------ */

/* Destroys the engine pool, detached: idle workers wake, run their end
 * hook and leave. */
static void
destroy_pool(ftp_workers *w)
{
    ftpool_t *pool = w->pool;

    Py_BEGIN_ALLOW_THREADS
    ftpool_destroy(pool);
    Py_END_ALLOW_THREADS
    w->pool = NULL;
}

/* Not in one of the group's workers nor in an engine callback (maybe on
 * the engine's own timer thread), where the pool cannot be destroyed. */
static int
may_destroy_here(ftp_workers *w)
{
    return ftpool_current_pool() != w->pool && !ftp_workers_in_callback();
}

static void
free_group(ftp_workers *w)
{
    ftp_state *st = w->st;
    PyObject *module = w->module;

    ftp_lock(&st->live_lock);
    if (w->prev_live != NULL) {
        *w->prev_live = w->next_live;
        if (w->next_live != NULL) {
            w->next_live->prev_live = w->prev_live;
        }
    }
    ftp_unlock(&st->live_lock);
    if (w->ops->free != NULL) {
        w->ops->free(w);
    }
    Py_XDECREF(w->prefix);
    Py_XDECREF(w->daemon);
    Py_XDECREF(w->target);
    Py_XDECREF(w->threads);
    Py_XDECREF(w->ended);
    Py_XDECREF(w->spawn_error);
    Py_XDECREF(w->owner_ref);
    PyMem_RawFree(w);
    Py_XDECREF(module);     /* last: st may go with it */
}

/* Pending call: the last reference went away where the pool could not be
 * destroyed. */
static int
destroy_later(void *arg)
{
    ftp_workers *w = arg;

    destroy_pool(w);
    free_group(w);
    return 0;
}

static void
workers_decref(ftp_workers *w)
{
    if (atomic_fetch_sub(&w->refs, 1) != 1 || ftp_workers_forked(w)) {
        /* A group of the parent is left as it is (ftp_workers_forked). */
        return;
    }
    if (w->pool != NULL) {
        if (!may_destroy_here(w)) {
            if (Py_AddPendingCall(destroy_later, w) < 0) {
                /* The interpreter is going away: leak the idle pool. */
            }
            return;
        }
        destroy_pool(w);
    }
    free_group(w);
}

/* A reference for the exit hook, unless the group is being freed. */
static int
workers_try_incref(ftp_workers *w)
{
    int n = atomic_load(&w->refs);

    while (n > 0) {
        if (atomic_compare_exchange_weak(&w->refs, &n, n + 1)) {
            return 1;
        }
    }
    return 0;
}

void
ftp_workers_release(ftp_workers *w, int wait)
{
    if (w->pool != NULL && !ftp_workers_forked(w)) {
        if (wait && may_destroy_here(w)) {
            destroy_pool(w);
        }
        else {
            ftpool_shutdown(w->pool, FTPOOL_SHUTDOWN_FINISH);
        }
    }
    workers_decref(w);
}

/* ------------------------------------------------------------------------ */
/* Worker threads                                                           */
/* ------------------------------------------------------------------------ */

/* The target of every worker thread, bound to a capsule that points to the
 * group: the thread holds a reference to the group, never to its owner. */
static PyObject *
worker_main(PyObject *capsule, PyObject *unused)
{
    ftp_workers *w = PyCapsule_GetPointer(capsule, NULL);

    if (w == NULL) {
        return NULL;
    }
    tls_group = w;
    if (w->ops->started != NULL) {
        w->ops->started(w);
    }
    /* Called whatever happened above: every spawn request is answered. */
    ftpool_worker_run(w->pool);
    tls_group = NULL;
    workers_decref(w);
    Py_RETURN_NONE;
}

static PyMethodDef worker_main_def = {
    "_worker", (PyCFunction)worker_main, METH_NOARGS, NULL
};

/* Engine hook, in the worker, attached, once it has stopped serving: the
 * owner's end callback, and the thread moves from `threads` to `ended`
 * (it still runs Python for a moment; ftp_workers_join_ended joins
 * it). */
static void
hook_worker_end(void *arg)
{
    ftp_workers *w = arg;
    PyObject *exc = ftp_err_fetch(), *me;

    if (w->ops->ended != NULL) {
        w->ops->ended(w);
    }
    me = PyObject_CallNoArgs(w->st->current_thread);
    if (me != NULL) {
        ftp_list_remove(w->threads, me);
        if (ftp_forget_ended_threads(w->st, w->ended) < 0) {
            PyErr_Clear();
        }
        PyList_Append(w->ended, me);
        Py_DECREF(me);
    }
    PyErr_Clear();
    ftp_err_restore(exc);
}

/* Gives the thread number n back if no later one was handed out, so that a
 * thread that could not start leaves no gap in the names. */
static void
give_back_number(ftp_workers *w, unsigned long n)
{
    unsigned long expected = n + 1;

    atomic_compare_exchange_strong(&w->next_n, &expected, n);
}

/* Creates, prepares and starts one worker thread.  0 or -1. */
static int
start_worker(ftp_workers *w)
{
    ftp_state *st = w->st;
    unsigned long n = atomic_fetch_add(&w->next_n, 1);
    PyObject *thread_type, *name, *thread = NULL, *r;
    int listed = 0;

    atomic_fetch_add(&w->refs, 1);      /* the new thread's */
    /* Looked up each time, as the standard library's executor does, so
     * that a replaced threading.Thread is used. */
    thread_type = ftp_getattr(st->threading, "Thread");
    name = PyUnicode_FromFormat("%U%c%lu", w->prefix, w->sep, n);
    if (thread_type != NULL && name != NULL) {
        PyObject *args[] = {w->target, name, w->daemon};
        thread = PyObject_Vectorcall(thread_type, args, 0,
                                     st->thread_kwnames);
    }
    Py_XDECREF(thread_type);
    Py_XDECREF(name);
    if (thread == NULL) {
        goto fail;
    }
    if (w->ops->prepare != NULL && w->ops->prepare(w, thread, n) < 0) {
        goto fail;
    }
    if (PyList_Append(w->threads, thread) < 0) {
        goto fail;
    }
    listed = 1;
    r = ftp_call_method_obj(thread, st->str_start, NULL, 0);
    if (r == NULL) {
        goto fail;
    }
    Py_DECREF(r);
    Py_DECREF(thread);
    return 0;

fail:
    if (listed) {
        PyObject *exc = ftp_err_fetch();
        ftp_list_remove(w->threads, thread);
        ftp_err_restore(exc);
    }
    Py_XDECREF(thread);
    give_back_number(w, n);
    atomic_fetch_sub(&w->refs, 1);      /* never 0: the asker holds one */
    return -1;
}

/* The engine asks for one more worker: in the thread that submitted
 * (attached), or in the engine's timer thread (not attached). */
static int
workers_spawn(ftpool_t *pool, void *arg)
{
    ftp_workers *w = arg;
    PyGILState_STATE gs = PyGILState_LOCKED;
    int attached = PyGILState_Check();
    int rc;

    if (!attached) {
        if (ftp_is_finalizing()) {
            return -1;
        }
        gs = PyGILState_Ensure();
    }
    /* The owner's prepare() runs user code (init_callback) that may drop
     * the last reference to the owner, here. */
    ftp_workers_enter_callback();
    rc = start_worker(w);
    ftp_workers_leave_callback();
    if (rc < 0) {
        if (!attached) {
            /* Nobody to raise to in the timer thread. */
            PyErr_WriteUnraisable(NULL);
        }
        else {
            /* Kept for the submission that asked (take_spawn_error). */
            PyObject *exc = ftp_err_fetch(), *old;
            ftp_lock(&w->lock);
            old = w->spawn_error;
            w->spawn_error = exc;
            ftp_unlock(&w->lock);
            Py_XDECREF(old);
        }
    }
    if (!attached) {
        PyGILState_Release(gs);
    }
    return rc;
}

PyObject *
ftp_workers_take_spawn_error(ftp_workers *w)
{
    PyObject *exc;

    ftp_lock(&w->lock);
    exc = w->spawn_error;
    w->spawn_error = NULL;
    ftp_unlock(&w->lock);
    return exc;
}

int
ftp_workers_join_ended(ftp_workers *w, int64_t deadline)
{
    /* A worker moves to `ended` in its end hook, before the engine stops
     * counting it: once the engine has seen no worker alive, every thread
     * that served before is there.  A thread still in `threads` was
     * started after that instant (a submission racing the shutdown
     * started the pool again) and is not waited for. */
    PyObject *ended = PySequence_Tuple(w->ended);
    int rc = 1;

    if (ended == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; rc == 1 && i < PyTuple_GET_SIZE(ended); i++) {
        rc = ftp_join_thread(w->st, PyTuple_GET_ITEM(ended, i), deadline);
    }
    Py_DECREF(ended);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Creation                                                                 */
/* ------------------------------------------------------------------------ */

int
ftp_workers_init(ftp_workers *w, ftp_state *st, PyObject *owner, int kind,
                 const ftp_workers_ops *ops, unsigned max_workers,
                 PyObject *prefix, char sep, int daemon)
{
    ftpool_options opts;
    PyObject *capsule;
    int rc;

    w->ops = ops;
    w->st = st;
    w->kind = kind;
    w->sep = sep;
    w->born_gen = atomic_load(&st->fork_gen);
    atomic_init(&w->refs, 1);
    atomic_init(&w->next_n, 0);
    w->module = PyType_GetModule(st->pool_type);
    Py_XINCREF(w->module);
    w->prefix = Py_NewRef(prefix);
    w->daemon = Py_NewRef(daemon ? Py_True : Py_None);
    w->threads = PyList_New(0);
    w->ended = PyList_New(0);
    w->owner_ref = PyWeakref_NewRef(owner, NULL);
    capsule = PyCapsule_New(w, NULL, NULL);
    w->target = capsule ? PyCFunction_New(&worker_main_def, capsule) : NULL;
    Py_XDECREF(capsule);
    if (w->module == NULL || w->threads == NULL || w->ended == NULL
            || w->owner_ref == NULL || w->target == NULL) {
        goto fail;
    }
    memset(&opts, 0, sizeof(opts));
    opts.max_workers = max_workers;
    opts.spawn = workers_spawn;
    opts.spawn_arg = w;
    opts.before_wait = hook_before_wait;
    opts.after_wait = hook_after_wait;
    opts.worker_end = hook_worker_end;
    opts.hook_arg = w;
    rc = ftpool_create(&opts, &w->pool);
    if (rc != FTPOOL_OK) {
        w->pool = NULL;
        if (rc == FTPOOL_ENOMEM) {
            PyErr_NoMemory();
        }
        else {
            PyErr_SetString(PyExc_RuntimeError, ftpool_strerror(rc));
        }
        goto fail;
    }
    ftp_lock(&st->live_lock);
    w->next_live = st->live;
    w->prev_live = &st->live;
    if (st->live != NULL) {
        st->live->prev_live = &w->next_live;
    }
    st->live = w;
    ftp_unlock(&st->live_lock);
    return 0;

fail:
    /* Not registered, no pool: free_group releases what was made. */
    free_group(w);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Interpreter exit                                                         */
/* ------------------------------------------------------------------------ */

PyObject *
ftp_workers_live_owners(ftp_state *st, int kind)
{
    PyObject *refs = PyList_New(0), *owners;
    int err = 0;

    if (refs == NULL) {
        return NULL;
    }
    ftp_lock(&st->live_lock);
    for (ftp_workers *w = st->live; w != NULL && !err; w = w->next_live) {
        if (w->kind == kind && atomic_load(&w->refs) > 0) {
            err = PyList_Append(refs, w->owner_ref);
        }
    }
    ftp_unlock(&st->live_lock);
    owners = err ? NULL : PyList_New(0);
    for (Py_ssize_t i = 0; owners != NULL && i < PyList_GET_SIZE(refs);
         i++) {
        PyObject *o = ftp_weakref_get(PyList_GET_ITEM(refs, i));
        if (o != NULL) {
            err = PyList_Append(owners, o);
            Py_DECREF(o);
            if (err) {
                Py_CLEAR(owners);
            }
        }
    }
    Py_DECREF(refs);
    return owners;
}

/* threading's exit hook, before it joins the threads that are not
 * daemons: executors refuse work from now on, and their workers finish
 * the queue and exit, as the standard library's do.  Pools are stopped
 * later, by Shutdown() at atexit.  Executor groups are only destroyed by
 * their last reference, which the reference taken here holds off. */
static PyObject *
threading_exit(PyObject *module, PyObject *unused)
{
    ftp_state *st = ftp_get_state(module);
    ftp_workers *todo = NULL;

    atomic_store(&st->exiting, 1);
    ftp_lock(&st->live_lock);
    for (ftp_workers *w = st->live; w != NULL; w = w->next_live) {
        if (w->kind == FTP_WORKERS_EXECUTOR && workers_try_incref(w)) {
            w->exit_next = todo;
            todo = w;
        }
    }
    ftp_unlock(&st->live_lock);
    while (todo != NULL) {
        ftp_workers *w = todo;
        todo = w->exit_next;
        if (w->pool != NULL) {
            /* Closed first: a submission racing this (st->exiting is
             * checked before submitting) is refused, not run by a worker
             * started after the others left. */
            ftpool_close(w->pool);
            ftpool_shutdown(w->pool, FTPOOL_SHUTDOWN_FINISH);
        }
        workers_decref(w);
    }
    Py_RETURN_NONE;
}

static PyMethodDef threading_exit_def = {
    "_threading_exit", threading_exit, METH_NOARGS, NULL
};

int
ftp_workers_forked_error(const char *what)
{
    PyErr_Format(PyExc_RuntimeError,
                 "this %s was created before the process forked: its "
                 "worker threads stayed in the parent; create a new one "
                 "in the child", what);
    return -1;
}

/* os.register_at_fork(after_in_child=...): only the thread that forked
 * lives on in the child.  Every group so far becomes the parent's
 * (ftp_workers_forked): the exit hooks forget them rather than wait for
 * workers that do not exist here, and the list's lock, which one of the
 * parent's threads may have held, starts afresh. */
static PyObject *
after_fork_in_child(PyObject *module, PyObject *unused)
{
    ftp_state *st = ftp_get_state(module);

    atomic_fetch_add(&st->fork_gen, 1);
    st->live = NULL;
    memset(&st->live_lock, 0, sizeof(st->live_lock));
    Py_RETURN_NONE;
}

static PyMethodDef after_fork_def = {
    "_after_fork_in_child", after_fork_in_child, METH_NOARGS, NULL
};

int
ftp_workers_exit_init(PyObject *module, ftp_state *st)
{
    PyObject *hook, *shutdown, *r;

    hook = PyCFunction_New(&threading_exit_def, module);
    r = hook ? PyObject_CallMethod(st->threading, "_register_atexit", "O",
                                   hook)
             : NULL;
    Py_XDECREF(hook);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    r = ftp_import_attr("os", "register_at_fork");
    if (r == NULL) {
        /* Not on Windows: no fork() there. */
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return -1;
        }
        PyErr_Clear();
    }
    else {
        PyObject *noargs = PyTuple_New(0);
        PyObject *kw = Py_BuildValue("{s:N}", "after_in_child",
                                     PyCFunction_New(&after_fork_def,
                                                     module));
        Py_SETREF(r, noargs && kw ? PyObject_Call(r, noargs, kw) : NULL);
        Py_XDECREF(noargs);
        Py_XDECREF(kw);
        if (r == NULL) {
            return -1;
        }
        Py_DECREF(r);
    }
    /* Pools stop at atexit, after the threads that are not daemons have
     * been joined: Shutdown() drops what is queued and waits for what
     * runs. */
    shutdown = ftp_getattr(module, "Shutdown");
    r = shutdown ? ftp_import_attr("atexit", "register") : NULL;
    if (r != NULL) {
        Py_SETREF(r, PyObject_CallOneArg(r, shutdown));
    }
    Py_XDECREF(shutdown);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}
