/*
 * jobs.c - the plain jobs of a pool (submit and its variants): a small C
 * struct per job, recycled through a free list, holding strong references
 * to the callable, its arguments and its done mode until the job has run
 * or been dropped.  Without the GIL there is no free list (see job_alloc).
 */
#include "pool.h"

static ftp_job *
job_alloc(ftp_core *core)
{
    ftp_job *job;

#if FTP_FREE_THREADED
    /* Made in the submitting thread, freed in a worker: the allocator's
     * per-thread heaps serve that better than a free list all threads
     * would share. */
    job = PyMem_Malloc(sizeof(ftp_job));
#else
    job = core->free_jobs;
    if (job != NULL) {
        core->free_jobs = job->next;
        core->nfree--;
        atomic_store_explicit(&job->refs, 1, memory_order_relaxed);
        return job;
    }
    job = PyMem_RawMalloc(sizeof(ftp_job));
#endif
    if (job == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    atomic_init(&job->refs, 1);
    return job;
}

/* Drops one reference to the job struct (see ftp_job.refs): the last one
 * recycles or frees it. */
static void
job_put(ftp_core *core, ftp_job *job)
{
    /* The common case, one reference, needs no read-modify-write. */
    if (atomic_load_explicit(&job->refs, memory_order_acquire) != 1
            && atomic_fetch_sub(&job->refs, 1) != 1) {
        return;
    }
#if FTP_FREE_THREADED
    PyMem_Free(job);
#else
    if (core->nfree < FTP_FREE_JOBS_MAX) {
        job->next = core->free_jobs;
        core->free_jobs = job;
        core->nfree++;
    }
    else {
        PyMem_RawFree(job);
    }
#endif
}

/* Drops the job's references and recycles it. */
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
    job_put(core, job);
    Py_DECREF(fn);
    Py_XDECREF(done);
    Py_XDECREF(kwargs);
    Py_XDECREF(args);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_DECREF(argv[i]);
    }
}

void
ftp_job_free_cache(ftp_core *core)
{
    while (core->free_jobs != NULL) {
        ftp_job *j = core->free_jobs;
        core->free_jobs = j->next;
        PyMem_RawFree(j);
    }
    core->nfree = 0;
}

static inline PyObject *const *
job_argv(ftp_job *job)
{
    return job->args ? &PyTuple_GET_ITEM(job->args, 0) : job->argv;
}

/* The job's positional arguments as a new tuple. */
static PyObject *
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

/* The engine runs a job: in a worker, attached. */
static void
job_run(void *arg)
{
    ftp_job *job = arg;
    ftp_core *core = job->core;
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
        gen = ftp_is_generator_function(core->st, job->fn);
    }
    if (r != NULL && !gen && job->done == NULL && !core->result_id) {
        /* The most common case: store the result. */
        ftp_store_result(core, r, job->id);
    }
    else if (r != NULL && !gen && job->done == NULL) {
        /* Store the result with its id. */
        ftp_deliver(core, NULL, r, job->id, 1, NULL, NULL);
    }
    else {
        /* The other paths may need the arguments as a tuple. */
        PyObject *args = job_args_tuple(job);
        if (args == NULL) {
            PyErr_Clear();
            args = PyTuple_New(0);
        }
        if (r == NULL) {
            ftp_record_failure(&core->fail, job->id, args, job->kwargs);
        }
        else if (gen) {
            ftp_deliver_generator(core, job->done, r, job->id,
                                  core->result_id, args, job->kwargs);
        }
        else {
            ftp_deliver(core, job->done, r, job->id, core->result_id, args,
                        job->kwargs);
        }
        Py_XDECREF(args);
    }
    job_release(job);
    ftp_core_job_finished(core);    /* last: may free the core */
    ftp_workers_job_done();
}

/* The engine drops a queued job (cancel, clear, shutdown): from any
 * thread, maybe the engine's timer thread, maybe not attached. */
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
    ftp_workers_enter_callback();
    job_release(job);
    ftp_core_job_finished(core);    /* last: may free the core */
    ftp_workers_leave_callback();
    PyGILState_Release(gs);
}

PyObject *
ftp_job_submit(ftp_core *core, PyObject *fn, PyObject *const *argv,
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
    if (ftp_callbacks_check(core) < 0) {
        goto fail;
    }
    job = job_alloc(core);
    if (job == NULL) {
        goto fail;
    }
    job->kind = FTP_KIND_JOB;
    job->core = core;
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
    if (core->result_id) {
        atomic_store_explicit(&job->refs, 2, memory_order_relaxed);
    }
    ftp_core_job_submitted(core);
    rc = ftpool_submit_ex(core->pool, job_run, job_drop, job, flags,
                          &job->id);
    if (rc == FTPOOL_OK || rc == FTPOOL_ESPAWN) {
        /* Our reference keeps the job from being recycled before its id
         * is read: it may have run already (without the GIL, or while the
         * spawn hook started a thread). */
        uint64_t id = job->id;
        if (core->result_id) {
            job_put(core, job);
        }
        if (rc == FTPOOL_ESPAWN && ftp_core_check_spawn(core) < 0) {
            return NULL;
        }
        if (core->result_id) {
            return PyLong_FromUnsignedLongLong(id);
        }
        Py_RETURN_NONE;
    }
    /* Never queued: ours is the only reference. */
    atomic_store_explicit(&job->refs, 1, memory_order_relaxed);
    job_release(job);
    ftp_core_job_finished(core);
    ftp_core_raise(core, rc);
    return NULL;

fail:
    Py_XDECREF(done);
    Py_XDECREF(kwargs);
    return NULL;
}
