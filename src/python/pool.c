/*
 * pool.c - fastthreadpool.Pool, the object users hold: argument parsing,
 * the public methods and attributes.  What they drive lives in the core
 * (core.c) and the files of each feature (jobs.c, map.c, timers.c,
 * callbacks.c, ascompleted.c); see pool.h.
 */
#include "pool.h"

#include <string.h>

/* Validates a done_callback argument: True/None -> NULL (store), False ->
 * Py_False (discard), a callable -> itself.  New reference or NULL. */
static int
parse_done(PyObject *cb, PyObject **out)
{
    if (cb == Py_True || cb == Py_None) {
        *out = NULL;
        return 0;
    }
    if (cb == Py_False) {
        *out = Py_NewRef(Py_False);
        return 0;
    }
    if (PyCallable_Check(cb)) {
        *out = Py_NewRef(cb);
        return 0;
    }
    PyErr_Format(PyExc_TypeError,
                 "done_callback must be True, False, None or a callable, "
                 "not '%.100s'", Py_TYPE(cb)->tp_name);
    return -1;
}

/* Splits a vectorcall argument list into the leading named parameters
 * (fn, done_callback, delay...) and the job's own arguments.  `names`
 * lists the leading parameters; `lead` receives them (borrowed).  The job
 * arguments are args[*pos_start:nargs] plus the remaining keywords, which
 * go to a new dict in *kwargs (or NULL). */
static int
split_args(const char *func, const char *const *names, int nnames,
           PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
           PyObject **lead, Py_ssize_t *pos_start, PyObject **kwargs)
{
    Py_ssize_t npos = nargs < nnames ? nargs : nnames;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;

    for (int i = 0; i < nnames; i++) {
        lead[i] = i < npos ? args[i] : NULL;
    }
    *pos_start = npos;
    *kwargs = NULL;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        int taken = 0;
        for (int i = 0; i < nnames; i++) {
            if (PyUnicode_CompareWithASCIIString(key, names[i]) == 0) {
                if (lead[i] != NULL) {
                    PyErr_Format(PyExc_TypeError,
                                 "%s() got multiple values for argument "
                                 "'%s'", func, names[i]);
                    Py_CLEAR(*kwargs);
                    return -1;
                }
                if (nargs > npos) {
                    /* A keyword for an early parameter while later ones
                     * were passed positionally: ambiguous, as in
                     * Python. */
                    PyErr_Format(PyExc_TypeError,
                                 "%s() got multiple values for argument "
                                 "'%s'", func, names[i]);
                    Py_CLEAR(*kwargs);
                    return -1;
                }
                lead[i] = args[nargs + k];
                taken = 1;
                break;
            }
        }
        if (!taken) {
            if (*kwargs == NULL && (*kwargs = PyDict_New()) == NULL) {
                return -1;
            }
            if (PyDict_SetItem(*kwargs, key, args[nargs + k]) < 0) {
                Py_CLEAR(*kwargs);
                return -1;
            }
        }
    }
    for (int i = 0; i < nnames; i++) {
        if (lead[i] == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "%s() missing required argument '%s'", func,
                         names[i]);
            Py_CLEAR(*kwargs);
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Pool object                                                              */
/* ------------------------------------------------------------------------ */

/* The "fastthreadpool" logger with its one handler, made once: more
 * handlers would repeat every line.  A new reference, or NULL. */
static PyObject *
make_logger(void)
{
    PyObject *logging, *logger, *handler = NULL, *fmt = NULL, *r = NULL;

    logging = PyImport_ImportModule("logging");
    if (logging == NULL) {
        return NULL;
    }
    logger = PyObject_CallMethod(logging, "getLogger", "s", FTP_LOGGER_NAME);
    if (logger != NULL) {
        handler = ftp_call_method(logging, "StreamHandler", NULL, 0);
        fmt = PyObject_CallMethod(logging, "Formatter", "s",
                                  FTP_DEFAULT_LOGGING_FORMAT);
    }
    if (handler != NULL && fmt != NULL) {
        r = PyObject_CallMethod(handler, "setFormatter", "O", fmt);
        Py_XDECREF(r);
        r = r ? PyObject_CallMethod(logger, "addHandler", "O", handler)
              : NULL;
        Py_XDECREF(r);
    }
    Py_XDECREF(handler);
    Py_XDECREF(fmt);
    Py_DECREF(logging);
    if (r == NULL
            || PyObject_SetAttrString(logger, "propagate", Py_False) < 0) {
        Py_XDECREF(logger);
        return NULL;
    }
    return logger;
}

/* The module's logger at `level`, in *out (a new reference).  0 or -1. */
static int
setup_logger(ftp_state *st, long level, PyObject **out)
{
    PyObject *logger, *r;

    /* Held while the logging module runs: two pools made at once in two
     * threads must not both add a handler. */
    ftp_lock_detached(st->logger_lock);
    if (st->logger == NULL) {
        st->logger = make_logger();
    }
    logger = Py_XNewRef(st->logger);
    PyThread_release_lock(st->logger_lock);
    if (logger == NULL) {
        return -1;
    }
    r = PyObject_CallMethod(logger, "setLevel", "l", level);
    if (r == NULL) {
        Py_DECREF(logger);
        return -1;
    }
    Py_DECREF(r);
    *out = logger;
    return 0;
}

static int
as_long(PyObject *o, const char *what, long *out)
{
    PyObject *n;

    if (PyFloat_Check(o)) {
        n = PyNumber_Long(o);   /* truncates, like the original C int */
    }
    else {
        n = PyNumber_Index(o);
    }
    if (n == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Format(PyExc_TypeError, "%s must be an integer", what);
        }
        return -1;
    }
    *out = PyLong_AsLong(n);
    Py_DECREF(n);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static PyObject *
pool_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {
        "max_children", "child_name_prefix", "init_callback", "init_args",
        "finish_callback", "done_callback", "failed_callback", "log_level",
        "result_id", "exc_stack", "exc_args", "done_max", NULL};
    ftp_state *st = ftp_state_from_type(type);
    PyObject *max_children = NULL, *prefix = Py_None, *init_cb = Py_None;
    PyObject *init_args = Py_None, *finish_cb = Py_None, *done_cb = Py_None;
    PyObject *failed_cb = Py_None, *log_level = NULL;
    int result_id = 0, exc_stack = 0, exc_args = 0;
    PyObject *done_max_obj = NULL;
    long maxc = -9999, level = 0, done_max = 0;
    ftp_core_config cfg;
    ftp_poolobject *self = NULL;

    if (st == NULL) {
        return NULL;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOOOOOOOpppO:Pool",
                                     kwlist, &max_children, &prefix,
                                     &init_cb, &init_args, &finish_cb,
                                     &done_cb, &failed_cb, &log_level,
                                     &result_id, &exc_stack, &exc_args,
                                     &done_max_obj)) {
        return NULL;
    }
    if (max_children != NULL && max_children != Py_None
            && as_long(max_children, "max_children", &maxc) < 0) {
        return NULL;
    }
    if (maxc <= -9999) {
        maxc = ftp_cpu_count();
    }
    else if (maxc <= 0) {
        maxc = ftp_cpu_count() + maxc;
    }
    if (maxc <= 0) {
        PyErr_SetString(PyExc_ValueError,
                        "Number of child threads must be greater than 0");
        return NULL;
    }
    if (maxc > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "max_children is too large");
        return NULL;
    }
    if (log_level != NULL && log_level != Py_None
            && as_long(log_level, "log_level", &level) < 0) {
        return NULL;
    }
    if (done_max_obj != NULL && done_max_obj != Py_None
            && as_long(done_max_obj, "done_max", &done_max) < 0) {
        return NULL;
    }
    if (done_max < 0) {
        PyErr_SetString(PyExc_ValueError, "done_max must not be negative");
        return NULL;
    }
    if (prefix != Py_None && !PyUnicode_Check(prefix)) {
        PyErr_SetString(PyExc_TypeError,
                        "child_name_prefix must be a str or None");
        return NULL;
    }
    if (init_cb != Py_None && !PyCallable_Check(init_cb)) {
        PyErr_SetString(PyExc_TypeError,
                        "init_callback must be callable or None");
        return NULL;
    }
    if (failed_cb != Py_None && failed_cb != Py_False
            && !PyCallable_Check(failed_cb)) {
        PyErr_SetString(PyExc_TypeError,
                        "failed_callback must be callable or None");
        return NULL;
    }

    memset(&cfg, 0, sizeof(cfg));
    self = (ftp_poolobject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->child_name_prefix = Py_NewRef(prefix);
    self->log_level = PyLong_FromLong(level);
    if (self->log_level == NULL) {
        goto error;
    }
    cfg.max_children = (unsigned)maxc;
    if (prefix == Py_None || PyUnicode_GET_LENGTH(prefix) == 0) {
        cfg.prefix = PyUnicode_FromFormat("ThreadPool%zu",
                                          (size_t)(uintptr_t)self);
    }
    else {
        cfg.prefix = Py_NewRef(prefix);
    }
    cfg.init_args = init_args == Py_None ? PyTuple_New(0)
                                         : PySequence_Tuple(init_args);
    if (cfg.prefix == NULL || cfg.init_args == NULL) {
        goto error;
    }
    /* The attribute shows what was given, () for None. */
    self->init_args = Py_NewRef(init_args == Py_None ? cfg.init_args
                                                     : init_args);
    if (init_cb != Py_None) {
        cfg.init_callback = init_cb;
    }
    if (finish_cb != Py_None && PyCallable_Check(finish_cb)) {
        cfg.finish_callback = finish_cb;
    }
    if (done_cb == Py_False) {
        cfg.store_nothing = 1;
    }
    else if (done_cb != Py_None && PyCallable_Check(done_cb)) {
        cfg.done_callback = done_cb;
    }
    if (failed_cb != Py_None && failed_cb != Py_False) {
        cfg.failed_callback = failed_cb;
    }
    else if (level > 0 && setup_logger(st, level, &cfg.logger) < 0) {
        goto error;
    }
    cfg.result_id = result_id;
    cfg.exc_stack = exc_stack;
    cfg.exc_args = exc_args;
    cfg.done_max = done_max > 0 ? done_max : 0;
    self->core = ftp_core_new(st, &cfg);
    if (self->core == NULL) {
        goto error;
    }
    Py_DECREF(cfg.prefix);
    Py_DECREF(cfg.init_args);
    Py_XDECREF(cfg.logger);
    return (PyObject *)self;

error:
    Py_XDECREF(cfg.prefix);
    Py_XDECREF(cfg.init_args);
    Py_XDECREF(cfg.logger);
    Py_XDECREF(self);
    return NULL;
}

/* Shared by dealloc and tp_clear: lets the core wind down on its own. */
static void
pool_release_core(ftp_poolobject *self)
{
    ftp_core *core = self->core;

    if (core == NULL) {
        return;
    }
    self->core = NULL;
    if (core->pool != NULL) {
        /* Nobody can consume results any more: no done_max throttling.
         * Queued jobs and armed timers hold the core until they have run;
         * then the core's dealloc lets the idle workers go. */
        ftp_rq_unthrottle(core->done, 1);
    }
    Py_DECREF(core);
}

static int
pool_traverse(ftp_poolobject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->core);
    Py_VISIT(self->child_name_prefix);
    Py_VISIT(self->init_args);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int
pool_clear(ftp_poolobject *self)
{
    pool_release_core(self);
    Py_CLEAR(self->child_name_prefix);
    Py_CLEAR(self->init_args);
    Py_CLEAR(self->log_level);
    return 0;
}

static void
pool_dealloc(ftp_poolobject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    pool_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static inline ftp_core *
pool_core(ftp_poolobject *self)
{
    if (self->core == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the Pool has been cleared");
    }
    return self->core;
}

/* ---- submit family ------------------------------------------------------ */

static const char *const names_fn[] = {"fn"};
static const char *const names_fn_done[] = {"fn", "done_callback"};
static const char *const names_delay_fn[] = {"delay", "fn"};
static const char *const names_delay_fn_done[] = {"delay", "fn",
                                                  "done_callback"};
static const char *const names_interval_fn[] = {"interval", "fn"};
static const char *const names_interval_fn_done[] = {"interval", "fn",
                                                     "done_callback"};
static const char *const names_at_fn[] = {"_runat", "interval", "fn"};
static const char *const names_at_fn_done[] = {"_runat", "interval", "fn",
                                               "done_callback"};

static PyObject *
pool_submit(ftp_poolobject *self, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    ftp_core *core = self->core;
    PyObject *lead[1], *kwargs;
    Py_ssize_t start;

    if (core == NULL) {
        return (PyObject *)pool_core(self);
    }
    /* Fast path: submit(fn, *args). */
    if (kwnames == NULL && nargs >= 1) {
        return ftp_job_submit(core, args[0], args + 1, nargs - 1, NULL,
                           Py_XNewRef(core->default_done), 0);
    }
    if (split_args("submit", names_fn, 1, args, nargs, kwnames, lead,
                   &start, &kwargs) < 0) {
        return NULL;
    }
    return ftp_job_submit(core, lead[0], args + start, nargs - start, kwargs,
                       Py_XNewRef(core->default_done), 0);
}

static PyObject *
submit_done_common(ftp_poolobject *self, const char *name,
                   PyObject *const *args, Py_ssize_t nargs,
                   PyObject *kwnames, unsigned flags)
{
    ftp_core *core = pool_core(self);
    PyObject *lead[2], *kwargs, *done;
    Py_ssize_t start;

    if (core == NULL) {
        return NULL;
    }
    if (split_args(name, names_fn_done, 2, args, nargs, kwnames, lead,
                   &start, &kwargs) < 0) {
        return NULL;
    }
    if (parse_done(lead[1], &done) < 0) {
        Py_XDECREF(kwargs);
        return NULL;
    }
    return ftp_job_submit(core, lead[0], args + start, nargs - start, kwargs,
                       done, flags);
}

static PyObject *
pool_submit_done(ftp_poolobject *self, PyObject *const *args,
                 Py_ssize_t nargs, PyObject *kwnames)
{
    return submit_done_common(self, "submit_done", args, nargs, kwnames, 0);
}

static PyObject *
pool_submit_first(ftp_poolobject *self, PyObject *const *args,
                  Py_ssize_t nargs, PyObject *kwnames)
{
    ftp_core *core = pool_core(self);
    PyObject *lead[1], *kwargs;
    Py_ssize_t start;

    if (core == NULL) {
        return NULL;
    }
    if (split_args("submit_first", names_fn, 1, args, nargs, kwnames, lead,
                   &start, &kwargs) < 0) {
        return NULL;
    }
    /* submit_first always stores, as in the original. */
    return ftp_job_submit(core, lead[0], args + start, nargs - start, kwargs,
                       NULL, FTPOOL_FRONT);
}

static PyObject *
pool_submit_done_first(ftp_poolobject *self, PyObject *const *args,
                       Py_ssize_t nargs, PyObject *kwnames)
{
    return submit_done_common(self, "submit_done_first", args, nargs,
                              kwnames, FTPOOL_FRONT);
}

/* The timer-based entry points share one parser: `nlead` leading
 * parameters, the last ones being fn and (if has_done) done_callback. */
static PyObject *
timer_common(ftp_poolobject *self, const char *name,
             const char *const *names, int nlead, int has_done, int what,
             PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    ftp_core *core = pool_core(self);
    PyObject *lead[4], *kwargs, *done = NULL, *fn;
    Py_ssize_t start;
    int64_t delay = 0, interval = 0;
    int kind = FTP_TIMER_SCHEDULE;

    if (core == NULL) {
        return NULL;
    }
    if (split_args(name, names, nlead, args, nargs, kwnames, lead, &start,
                   &kwargs) < 0) {
        return NULL;
    }
    fn = lead[what == 2 ? 2 : 1];
    if (has_done && parse_done(lead[nlead - 1], &done) < 0) {
        goto fail;
    }
    if (what == 0) {            /* submit_later(delay, fn) */
        kind = FTP_TIMER_LATER;
        if (ftp_seconds_to_ns(lead[0], "delay", &delay) < 0) {
            goto fail;
        }
    }
    else if (what == 1) {       /* schedule(interval, fn) */
        if (ftp_seconds_to_ns(lead[0], "interval", &interval) < 0) {
            goto fail;
        }
        delay = interval > 0 ? interval : 0;
    }
    else {                      /* submit_at(_runat, interval, fn) */
        if (ftp_timer_delay_until(lead[0], &delay) < 0
                || ftp_seconds_to_ns(lead[1], "interval", &interval) < 0) {
            goto fail;
        }
    }
    if (!has_done) {
        done = NULL;    /* the timer variants without _done store */
    }
    return ftp_timer_arm(core, kind, delay, interval, fn, args + start,
                         nargs - start, kwargs, done);

fail:
    Py_XDECREF(done);
    Py_XDECREF(kwargs);
    return NULL;
}

static PyObject *
pool_submit_later(ftp_poolobject *self, PyObject *const *args,
                  Py_ssize_t nargs, PyObject *kwnames)
{
    return timer_common(self, "submit_later", names_delay_fn, 2, 0, 0,
                        args, nargs, kwnames);
}

static PyObject *
pool_submit_done_later(ftp_poolobject *self, PyObject *const *args,
                       Py_ssize_t nargs, PyObject *kwnames)
{
    return timer_common(self, "submit_done_later", names_delay_fn_done, 3,
                        1, 0, args, nargs, kwnames);
}

static PyObject *
pool_schedule(ftp_poolobject *self, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames)
{
    return timer_common(self, "schedule", names_interval_fn, 2, 0, 1, args,
                        nargs, kwnames);
}

static PyObject *
pool_schedule_done(ftp_poolobject *self, PyObject *const *args,
                   Py_ssize_t nargs, PyObject *kwnames)
{
    return timer_common(self, "schedule_done", names_interval_fn_done, 3, 1,
                        1, args, nargs, kwnames);
}

static PyObject *
pool_submit_at(ftp_poolobject *self, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    return timer_common(self, "submit_at", names_at_fn, 3, 0, 2, args,
                        nargs, kwnames);
}

static PyObject *
pool_submit_done_at(ftp_poolobject *self, PyObject *const *args,
                    Py_ssize_t nargs, PyObject *kwnames)
{
    return timer_common(self, "submit_done_at", names_at_fn_done, 4, 1, 2,
                        args, nargs, kwnames);
}

/* ---- map ---------------------------------------------------------------- */

static PyObject *
pool_map(ftp_poolobject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fn", "itr", "done_callback", "direct",
                             "unpack_args", NULL};
    ftp_core *core = pool_core(self);
    PyObject *fn, *itr, *done_cb = Py_True, *direct = Py_True;
    PyObject *unpack = Py_None, *done;
    int unpack_mode = -1;

    if (core == NULL) {
        return NULL;
    }
    /* `direct` is accepted for compatibility: both of the original's modes
     * run as pool jobs sharing one iterator. */
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|OOO:map", kwlist, &fn,
                                     &itr, &done_cb, &direct, &unpack)) {
        return NULL;
    }
    if (ftpool_is_closed(core->pool)) {
        PyErr_SetString(core->st->PoolStopped, "Pool not running");
        return NULL;
    }
    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "fn must be callable, not '%.100s'",
                     Py_TYPE(fn)->tp_name);
        return NULL;
    }
    if (unpack != Py_None) {
        unpack_mode = PyObject_IsTrue(unpack);
        if (unpack_mode < 0) {
            return NULL;
        }
    }
    if (parse_done(done_cb, &done) < 0) {
        return NULL;
    }
    return ftp_map_submit(core, fn, itr, done, unpack_mode);
}

/* ---- as_completed ------------------------------------------------------- */

static PyObject *
pool_as_completed(ftp_poolobject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"wait", "cnt_max", NULL};
    ftp_core *core = pool_core(self);
    PyObject *wait = Py_None;
    Py_ssize_t cnt_max = 0;

    if (core == NULL) {
        return NULL;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|On:as_completed", kwlist,
                                     &wait, &cnt_max)) {
        return NULL;
    }
    return ftp_ac_new(core, wait, cnt_max);
}

/* ---- cancel / clear / shutdown ------------------------------------------ */

static PyObject *
pool_cancel(ftp_poolobject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"job_id", "timer", NULL};
    ftp_core *core = pool_core(self);
    PyObject *job_id = Py_None, *timer = Py_None;

    if (core == NULL) {
        return NULL;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:cancel", kwlist,
                                     &job_id, &timer)) {
        return NULL;
    }
    if (timer == Py_True) {
        ftpool_timer_cancel_all(core->pool);
    }
    else if (PyObject_TypeCheck(timer, core->st->timer_type)) {
        ftp_timerobject *h = (ftp_timerobject *)timer;
        if (h->core == (PyObject *)core) {
            ftp_timer_cancel(core, h);
        }
    }
    else if (timer != Py_None && timer != Py_False) {
        PyErr_Format(PyExc_TypeError,
                     "timer must be None, True, False or a TimerObj, "
                     "not '%.100s'", Py_TYPE(timer)->tp_name);
        return NULL;
    }
    if (job_id == Py_False) {
        Py_RETURN_TRUE;
    }
    if (job_id == Py_None) {
        ftpool_cancel_all(core->pool);
        Py_RETURN_TRUE;
    }
    if (job_id == Py_True) {
        Py_RETURN_FALSE;
    }
    if (PyLong_Check(job_id)) {
        unsigned long long id = PyLong_AsUnsignedLongLong(job_id);
        if (id == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            Py_RETURN_FALSE;
        }
        return PyBool_FromLong(ftpool_cancel(core->pool, id) == FTPOOL_OK);
    }
    /* Anything else names no queued job, as in the original. */
    Py_RETURN_FALSE;
}

static PyObject *
pool_clear_meth(ftp_poolobject *self, PyObject *unused)
{
    ftp_core *core = pool_core(self);

    if (core == NULL) {
        return NULL;
    }
    ftpool_open(core->pool);
    ftp_rq_unthrottle(core->done, 0);
    ftpool_cancel_all(core->pool);
    if (atomic_exchange(&core->children_stopped, 0)
            && ftp_core_resume(core) < 0) {
        return NULL;
    }
    /* Entries on their way to a pool-level callback are not taken away
     * from it (every result reaches its callback): only a queue nobody
     * consumes is emptied. */
    if (core->done_callback == NULL) {
        ftp_rq_clear(core->done);
    }
    if (core->failed_callback == NULL && core->logger == NULL) {
        ftp_rq_clear(core->failed);
    }
    Py_RETURN_NONE;
}

static PyObject *
pool_shutdown_children(ftp_poolobject *self, PyObject *unused)
{
    ftp_core *core = pool_core(self);

    if (core == NULL) {
        return NULL;
    }
    /* Refuse new jobs; workers leave after their current job and the
     * queued ones stay queued (nothing is dropped silently). */
    ftpool_close(core->pool);
    ftpool_shutdown(core->pool, FTPOOL_SHUTDOWN_SOON);
    ftp_rq_unthrottle(core->done, 1);
    ftp_store_int(&core->children_stopped, 1);
    Py_RETURN_NONE;
}

/* shutdown(timeout, soon) and join(timeout) = shutdown(timeout, False). */
static PyObject *
shutdown_until(ftp_poolobject *self, PyObject *timeout, int soon)
{
    ftp_core *core = pool_core(self);
    int64_t deadline;
    int rc;

    if (core == NULL || ftp_parse_deadline(timeout, &deadline) < 0) {
        return NULL;
    }
    rc = ftp_core_shutdown(core, deadline, soon);
    if (rc < 0) {
        return NULL;
    }
    return PyBool_FromLong(rc);
}

static PyObject *
pool_shutdown(ftp_poolobject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timeout", "soon", NULL};
    PyObject *timeout = Py_None, *soon = Py_False;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:shutdown", kwlist,
                                     &timeout, &soon)) {
        return NULL;
    }
    return shutdown_until(self, timeout, soon == Py_True);
}

static PyObject *
pool_join(ftp_poolobject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timeout", NULL};
    PyObject *timeout = Py_None;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:join", kwlist,
                                     &timeout)) {
        return NULL;
    }
    return shutdown_until(self, timeout, 0);
}

static PyObject *
pool_wait_idle(ftp_poolobject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timeout", NULL};
    ftp_core *core = pool_core(self);
    PyObject *timeout = Py_None;
    int64_t deadline;
    int rc;

    if (core == NULL) {
        return NULL;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:wait_idle", kwlist,
                                     &timeout)) {
        return NULL;
    }
    if (ftp_parse_deadline(timeout, &deadline) < 0) {
        return NULL;
    }
    rc = ftp_core_wait(core, 0, deadline);
    if (rc == -2) {
        PyErr_SetString(PyExc_RuntimeError,
                        "wait_idle() from a job of the same pool would "
                        "wait forever");
        return NULL;
    }
    if (rc < 0) {
        return NULL;
    }
    return PyBool_FromLong(rc);
}

static PyObject *
pool_cleanup_children(ftp_poolobject *self, PyObject *unused)
{
    ftp_core *core = pool_core(self);

    if (core == NULL
            || ftp_forget_ended_threads(core->st, core->workers->w.threads)
               < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
pool_enter(ftp_poolobject *self, PyObject *unused)
{
    return Py_NewRef((PyObject *)self);
}

static PyObject *
pool_exit(ftp_poolobject *self, PyObject *args)
{
    ftp_core *core = pool_core(self);

    if (core == NULL) {
        return NULL;
    }
    if (ftp_core_shutdown(core, -1, 0) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}
/* ---- properties --------------------------------------------------------- */

#define CORE_OR_NULL(self) \
    ftp_core *core = pool_core(self); \
    if (core == NULL) { \
        return NULL; \
    }

static PyObject *
get_alive(ftp_poolobject *self, void *c)
{
    PyObject *threads;
    Py_ssize_t n = 0;
    CORE_OR_NULL(self)

    threads = PySequence_Tuple(core->workers->w.threads);
    if (threads == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(threads); i++) {
        int a = ftp_thread_is_alive(core->st, PyTuple_GET_ITEM(threads, i));
        if (a < 0) {
            Py_DECREF(threads);
            return NULL;
        }
        n += a;
    }
    Py_DECREF(threads);
    return PyLong_FromSsize_t(n);
}

static PyObject *
get_busy(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return PyLong_FromUnsignedLong(ftpool_busy(core->pool));
}

static PyObject *
get_pending(ftp_poolobject *self, void *c)
{
    ftpool_stats s;
    CORE_OR_NULL(self)
    ftpool_get_stats(core->pool, &s);
    return PyLong_FromSize_t(s.busy + s.pending);
}

/* A queued job as Pool.jobs shows it: (fn, done mode, args, kwargs).
 * Copied with new references while the engine holds its queue lock, so
 * that the job may run and go meanwhile. */
typedef struct {
    PyObject *fn, *done, *args, *kwargs;    /* done, args, kwargs: or NULL */
    PyObject *argv[FTP_INLINE_ARGS];        /* args inline when NULL */
    Py_ssize_t nargs;
} queued_job;

typedef struct {
    queued_job *jobs;
    size_t n, cap;
    int oom;
} queued_jobs;

/* Visits a queued job (engine queue lock held): no Python code here, only
 * new references. */
static void
copy_queued(void *arg, uint64_t id, void *ctx_)
{
    queued_jobs *ctx = ctx_;
    int kind = *(int *)arg;
    queued_job *q;

    if (ctx->oom) {
        return;
    }
    if (ctx->n == ctx->cap) {
        size_t cap = ctx->cap ? ctx->cap * 2 : 64;
        void *p = PyMem_RawRealloc(ctx->jobs, cap * sizeof(queued_job));
        if (p == NULL) {
            ctx->oom = 1;
            return;
        }
        ctx->jobs = p;
        ctx->cap = cap;
    }
    q = &ctx->jobs[ctx->n++];
    q->args = q->kwargs = NULL;
    q->nargs = 0;
    if (kind == FTP_KIND_JOB) {
        ftp_job *j = arg;
        q->fn = j->fn;
        q->done = j->done;
        q->kwargs = j->kwargs;
        q->args = j->args;
        if (j->args == NULL) {
            q->nargs = j->nargs;
            for (Py_ssize_t i = 0; i < j->nargs; i++) {
                q->argv[i] = Py_NewRef(j->argv[i]);
            }
        }
    }
    else if (kind == FTP_KIND_MAP) {
        ftp_map *m = arg;
        q->fn = m->fn;
        q->done = m->done;
    }
    else {
        ftp_timer *t = arg;
        q->fn = t->fn;
        q->done = t->done;
        q->args = t->args;
        q->kwargs = t->kwargs;
    }
    Py_INCREF(q->fn);
    Py_XINCREF(q->done);
    Py_XINCREF(q->args);
    Py_XINCREF(q->kwargs);
}

/* The entry of a copied job; drops the copy's references. */
static PyObject *
queued_entry(queued_job *q)
{
    PyObject *args = q->args, *kwargs, *entry = NULL;

    if (args == NULL) {
        args = PyTuple_New(q->nargs);
        for (Py_ssize_t i = 0; i < q->nargs; i++) {
            if (args != NULL) {
                PyTuple_SET_ITEM(args, i, q->argv[i]);
            }
            else {
                Py_DECREF(q->argv[i]);
            }
        }
    }
    kwargs = q->kwargs ? PyDict_Copy(q->kwargs) : PyDict_New();
    if (args != NULL && kwargs != NULL) {
        entry = PyTuple_Pack(4, q->fn, q->done ? q->done : Py_True, args,
                             kwargs);
    }
    Py_DECREF(q->fn);
    Py_XDECREF(q->done);
    Py_XDECREF(q->kwargs);
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    return entry;
}

static PyObject *
get_jobs(ftp_poolobject *self, void *c)
{
    queued_jobs ctx = {NULL, 0, 0, 0};
    PyObject *list, *d;
    CORE_OR_NULL(self)

    ftpool_foreach_queued(core->pool, copy_queued, &ctx);
    list = ctx.oom ? PyErr_NoMemory() : PyList_New(0);
    for (size_t i = 0; i < ctx.n; i++) {
        PyObject *entry = queued_entry(&ctx.jobs[i]);
        if (list != NULL && (entry == NULL
                             || PyList_Append(list, entry) < 0)) {
            Py_CLEAR(list);
        }
        Py_XDECREF(entry);
    }
    PyMem_RawFree(ctx.jobs);
    if (list == NULL) {
        return NULL;
    }
    d = ftp_import_attr("collections", "deque");
    if (d != NULL) {
        Py_SETREF(d, PyObject_CallOneArg(d, list));
    }
    Py_DECREF(list);
    return d;
}

static PyObject *
get_done(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return Py_NewRef((PyObject *)core->done);
}

static PyObject *
get_failed(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return Py_NewRef((PyObject *)core->failed);
}

static PyObject *
get_done_cnt(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return Py_NewRef(ftp_rq_counter_obj(core->done));
}

static PyObject *
get_failed_cnt(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return Py_NewRef(ftp_rq_counter_obj(core->failed));
}

static PyObject *
get_children(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return PySequence_Tuple(core->workers->w.threads);
}

static PyObject *
get_child_cnt(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return PyLong_FromSsize_t(PyList_GET_SIZE(core->workers->w.threads));
}

static PyObject *
get_delayed(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return ftp_timer_handles(core, FTP_TIMER_LATER);
}

static PyObject *
get_scheduled(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return ftp_timer_handles(core, FTP_TIMER_SCHEDULE);
}

static PyObject *
get_is_shutdown(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return PyBool_FromLong(ftp_load_int(&core->is_shutdown));
}

static PyObject *
get_max_children(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return PyLong_FromUnsignedLong(core->max_children);
}

static PyObject *
get_child_name_prefix(ftp_poolobject *self, void *c)
{
    return Py_NewRef(self->child_name_prefix ? self->child_name_prefix
                                             : Py_None);
}

static PyObject *
get_init_args(ftp_poolobject *self, void *c)
{
    return Py_NewRef(self->init_args ? self->init_args : Py_None);
}

static PyObject *
get_log_level(ftp_poolobject *self, void *c)
{
    return Py_NewRef(self->log_level ? self->log_level : Py_None);
}

static PyObject *
opt_obj(PyObject *o)
{
    return Py_NewRef(o ? o : Py_None);
}

static PyObject *
get_init_callback(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return opt_obj(core->workers->init_callback);
}

static PyObject *
get_finish_callback(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return opt_obj(core->workers->finish_callback);
}

static PyObject *
get_done_callback(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    if (core->done_callback == NULL && core->default_done == Py_False) {
        Py_RETURN_FALSE;
    }
    return opt_obj(core->done_callback);
}

static PyObject *
get_failed_callback(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return opt_obj(core->failed_callback);
}

static PyObject *
get_result_id(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return PyBool_FromLong(core->result_id);
}

static PyObject *
get_exc_stack(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return PyBool_FromLong(core->fail.exc_stack);
}

static PyObject *
get_exc_args(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return PyBool_FromLong(core->fail.exc_args);
}

static PyObject *
get_done_max(ftp_poolobject *self, void *c)
{
    CORE_OR_NULL(self)
    return PyLong_FromSsize_t(core->done_max);
}

#define FASTMETH(name, fn, doc) \
    {name, (PyCFunction)(void (*)(void))fn, METH_FASTCALL | METH_KEYWORDS, \
     doc}
#define KWMETH(name, fn, doc) \
    {name, (PyCFunction)(void (*)(void))fn, METH_VARARGS | METH_KEYWORDS, \
     doc}

static PyMethodDef pool_methods[] = {
    FASTMETH("submit", pool_submit,
             "submit(fn, *args, **kwargs) -> None | int\n\n"
             "Queue fn(*args, **kwargs); its result goes to `done`."),
    FASTMETH("submit_done", pool_submit_done,
             "submit_done(fn, done_callback, *args, **kwargs)"),
    FASTMETH("submit_first", pool_submit_first,
             "submit_first(fn, *args, **kwargs): queue at the front."),
    FASTMETH("submit_done_first", pool_submit_done_first,
             "submit_done_first(fn, done_callback, *args, **kwargs)"),
    FASTMETH("submit_later", pool_submit_later,
             "submit_later(delay, fn, *args, **kwargs) -> TimerObj"),
    FASTMETH("submit_done_later", pool_submit_done_later,
             "submit_done_later(delay, fn, done_callback, *args, **kwargs)"
             " -> TimerObj"),
    FASTMETH("submit_at", pool_submit_at,
             "submit_at(_runat, interval, fn, *args, **kwargs) -> TimerObj"
             "\n\n_runat: time.time() seconds or a time.struct_time."),
    FASTMETH("submit_done_at", pool_submit_done_at,
             "submit_done_at(_runat, interval, fn, done_callback, *args, "
             "**kwargs) -> TimerObj"),
    FASTMETH("schedule", pool_schedule,
             "schedule(interval, fn, *args, **kwargs) -> TimerObj"),
    FASTMETH("schedule_done", pool_schedule_done,
             "schedule_done(interval, fn, done_callback, *args, **kwargs)"
             " -> TimerObj"),
    KWMETH("map", pool_map,
           "map(fn, itr, done_callback=True, direct=True, "
           "unpack_args=None)"),
    KWMETH("as_completed", pool_as_completed,
           "as_completed(wait=None, cnt_max=0): yield results and failures"
           " as they come."),
    KWMETH("cancel", pool_cancel,
           "cancel(job_id=None, timer=None) -> bool"),
    {"clear", (PyCFunction)pool_clear_meth, METH_NOARGS,
     "Reopen after shutdown_children(); drop queued jobs and results."},
    KWMETH("shutdown", pool_shutdown,
           "shutdown(timeout=None, soon=False) -> bool"),
    {"shutdown_children", (PyCFunction)pool_shutdown_children, METH_NOARGS,
     "Refuse new jobs (PoolStopped); workers leave after their job."},
    {"cleanup_children", (PyCFunction)pool_cleanup_children, METH_NOARGS,
     "Forget worker threads that have ended."},
    KWMETH("join", pool_join, "join(timeout=None) -> bool"),
    KWMETH("wait_idle", pool_wait_idle, "wait_idle(timeout=None) -> bool"),
    {"__enter__", (PyCFunction)pool_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)pool_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL}
};

#define GETTER(name, fn, doc) {name, (getter)fn, NULL, doc, NULL}

static PyGetSetDef pool_getset[] = {
    GETTER("alive", get_alive, "Worker threads alive."),
    GETTER("busy", get_busy, "Workers running a job."),
    GETTER("pending", get_pending, "Jobs running plus jobs queued."),
    GETTER("jobs", get_jobs,
           "Snapshot deque of the queued jobs (fn, done_mode, args, "
           "kwargs)."),
    GETTER("done", get_done, "The results (deque-like)."),
    GETTER("done_cnt", get_done_cnt,
           "Semaphore counting the results not consumed yet."),
    GETTER("failed", get_failed, "The failures (deque-like)."),
    GETTER("failed_cnt", get_failed_cnt,
           "Semaphore counting the failures not consumed yet."),
    GETTER("children", get_children, "Tuple of the worker threads."),
    GETTER("child_cnt", get_child_cnt, "Number of worker threads."),
    GETTER("delayed", get_delayed, "Deque of pending submit_later timers."),
    GETTER("scheduled", get_scheduled,
           "Deque of active schedule/submit_at timers."),
    GETTER("is_shutdown", get_is_shutdown,
           "True once shutdown()/join() was called."),
    GETTER("max_children", get_max_children, NULL),
    GETTER("child_name_prefix", get_child_name_prefix, NULL),
    GETTER("init_callback", get_init_callback, NULL),
    GETTER("init_args", get_init_args, NULL),
    GETTER("finish_callback", get_finish_callback, NULL),
    GETTER("done_callback", get_done_callback, NULL),
    GETTER("failed_callback", get_failed_callback, NULL),
    GETTER("log_level", get_log_level, NULL),
    GETTER("result_id", get_result_id, NULL),
    GETTER("exc_stack", get_exc_stack, NULL),
    GETTER("exc_args", get_exc_args, NULL),
    GETTER("done_max", get_done_max, NULL),
    {NULL, NULL, NULL, NULL, NULL}
};

static PyMemberDef pool_members[] = {
    {"__weaklistoffset__", T_PYSSIZET,
     offsetof(ftp_poolobject, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL}
};

static PyType_Slot pool_slots[] = {
    {Py_tp_new, pool_new},
    {Py_tp_dealloc, pool_dealloc},
    {Py_tp_traverse, pool_traverse},
    {Py_tp_clear, pool_clear},
    {Py_tp_methods, pool_methods},
    {Py_tp_getset, pool_getset},
    {Py_tp_members, pool_members},
    {Py_tp_doc,
     "Pool(max_children=-9999, child_name_prefix='', init_callback=None, "
     "init_args=None, finish_callback=None, done_callback=None, "
     "failed_callback=None, log_level=0, result_id=False, "
     "exc_stack=False, exc_args=False, done_max=0)\n\n"
     "A pool of worker threads."},
    {0, NULL}
};

static PyType_Spec pool_spec = {
    .name = "fastthreadpool.Pool",
    .basicsize = sizeof(ftp_poolobject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = pool_slots,
};

int
ftp_pool_init_types(PyObject *module, ftp_state *st)
{
    if (ftp_core_init_type(module, st) < 0
            || ftp_timer_init_type(module, st) < 0
            || ftp_ac_init_type(module, st) < 0) {
        return -1;
    }
    st->pool_type = (PyTypeObject *)PyType_FromModuleAndSpec(module,
                                                             &pool_spec,
                                                             NULL);
    if (st->pool_type == NULL) {
        return -1;
    }
    return PyModule_AddType(module, st->pool_type);
}
