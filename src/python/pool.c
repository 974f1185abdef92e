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
    else if (ftp_workers_forked(&self->core->workers->w)) {
        ftp_workers_forked_error("Pool");
        return NULL;
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

    if (core == NULL || ftp_workers_forked(&core->workers->w)) {
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
    rc = ftp_core_wait_idle(core, deadline);
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

/* ---- docstrings --------------------------------------------------------- */

PyDoc_STRVAR(pool_doc,
"Pool(max_children=-9999, child_name_prefix=None, init_callback=None, "
"init_args=None, finish_callback=None, done_callback=None, "
"failed_callback=None, log_level=0, result_id=False, exc_stack=False, "
"exc_args=False, done_max=0)\n"
"--\n"
"\n"
"A pool of worker threads that run jobs.\n"
"\n"
"A job is a call fn(*args, **kwargs), queued by submit() and its\n"
"variants, by map() or by a timer (submit_later(), schedule(),\n"
"submit_at()).  What it returns is stored in `done` and what it raises\n"
"(any BaseException) in `failed`, unless callbacks take them.  Workers\n"
"are daemon threads, started on demand up to max_children, and exit at\n"
"shutdown().  The parameters may also be given by position, in this\n"
"order; each can be read back as a read-only attribute of the same name.\n"
"\n"
"max_children\n"
"    The most worker threads running at once.  -9999 or less (the\n"
"    default) or None: the number of CPUs this process may use\n"
"    (os.process_cpu_count(), else the CPUs of os.sched_getaffinity(0),\n"
"    else os.cpu_count()); a positive number: that many; 0 or a negative\n"
"    number: that number of CPUs plus it.\n"
"\n"
"child_name_prefix\n"
"    Workers are named \"<prefix>-N\"; None or an empty str names them\n"
"    \"ThreadPool<id>-N\", where <id> is id() of the pool.\n"
"\n"
"init_callback\n"
"    None, or a callable called as init_callback(thread, *init_args) for\n"
"    every new worker, in the thread that starts it, before it starts:\n"
"    the place to attach per-thread state to the threading.Thread.  If it\n"
"    raises, the exception propagates from the submission that wanted the\n"
"    worker, and the job stays queued.\n"
"\n"
"init_args\n"
"    The extra arguments of init_callback: an iterable, or None for none.\n"
"\n"
"finish_callback\n"
"    None, or a callable called with no arguments in each worker thread\n"
"    as it exits.\n"
"\n"
"done_callback\n"
"    Where the results of submit() go: None or True stores them in\n"
"    `done`, False discards them, a callable receives each one, in order,\n"
"    in a thread of its own (ThreadPoolDone).\n"
"\n"
"failed_callback\n"
"    None, or a callable that receives each failure entry, in order, in a\n"
"    thread of its own (ThreadPoolFailed).\n"
"\n"
"log_level\n"
"    A logging level.  If positive, each failure is logged with its\n"
"    traceback on the logger named LOGGER_NAME, unless failed_callback is\n"
"    set; 0 and None: no logging.\n"
"\n"
"result_id\n"
"    If true, submit() and its variants return the job's id, and results\n"
"    are stored as (job_id, value).\n"
"\n"
"exc_stack\n"
"    If true, failures carry the formatted traceback (a str) instead of\n"
"    the exception.\n"
"\n"
"exc_args\n"
"    If true, failures also carry the job's args tuple and kwargs dict.\n"
"\n"
"done_max\n"
"    0 (the default): no limit.  Otherwise a worker that stored a result\n"
"    waits while `done` holds done_max results or more, until some are\n"
"    consumed.\n"
"\n"
"Raises TypeError for an argument of the wrong type, and ValueError if\n"
"max_children resolves to less than 1 or done_max is negative.\n"
"\n"
"A pool may be used from any number of threads, also on free-threaded\n"
"CPython: every accepted job either runs or is dropped (by cancel(),\n"
"clear() or a shutdown), exactly once.  As a context manager, the pool is\n"
"shut down when the block ends, after all its queued jobs have run.");

PyDoc_STRVAR(pool_submit_doc,
"submit($self, /, fn, *args, **kwargs)\n"
"--\n"
"\n"
"Queue the job fn(*args, **kwargs) at the back of the queue.\n"
"\n"
"Its result follows the pool's done_callback setting: by default it is\n"
"stored in `done`.  If fn is a generator function, the job runs the\n"
"generator to its end and each value it yields is one result.  A job\n"
"cannot receive a keyword argument named fn; wrap such a call in\n"
"functools.partial.\n"
"\n"
"Returns None, or the job's id (an int unique for the pool's lifetime) if\n"
"the pool was made with result_id=True.  Raises TypeError if fn is not\n"
"callable, PoolStopped after shutdown_children() or Shutdown() (until\n"
"clear()), and what init_callback raises if a worker is started for the\n"
"job (the job stays queued).  Safe to call from any thread, also from a\n"
"job of the same pool.");

PyDoc_STRVAR(pool_submit_done_doc,
"submit_done($self, /, fn, done_callback, *args, **kwargs)\n"
"--\n"
"\n"
"Queue fn(*args, **kwargs) at the back, with a done mode of its own.\n"
"\n"
"done_callback decides where the job's results go, whatever the pool's\n"
"setting: True or None stores them in `done`, False discards them, and a\n"
"callable receives each one as done_callback(result) in the worker\n"
"thread, right after the job.  Such a callback runs concurrently with\n"
"other workers, so it must be thread-safe; if it raises, the exception is\n"
"recorded in `failed` as a failure of the job.  A job cannot receive\n"
"keyword arguments named fn or done_callback.\n"
"\n"
"Returns None, or the job's id with result_id=True.  Raises TypeError if\n"
"fn is not callable or done_callback is neither True, False, None nor a\n"
"callable, and PoolStopped after shutdown_children() or Shutdown().");

PyDoc_STRVAR(pool_submit_first_doc,
"submit_first($self, /, fn, *args, **kwargs)\n"
"--\n"
"\n"
"Queue fn(*args, **kwargs) at the front of the queue, to run next.\n"
"\n"
"Several submit_first() calls run in reverse order (last in, first out).\n"
"The result is stored in `done` (and so reaches a pool-level\n"
"done_callback) even in a Pool(done_callback=False), as in fastthreadpool\n"
"1.x.\n"
"\n"
"Returns None, or the job's id with result_id=True.  Raises TypeError if\n"
"fn is not callable, and PoolStopped after shutdown_children() or\n"
"Shutdown().");

PyDoc_STRVAR(pool_submit_done_first_doc,
"submit_done_first($self, /, fn, done_callback, *args, **kwargs)\n"
"--\n"
"\n"
"Queue fn(*args, **kwargs) at the front of the queue, with a done mode.\n"
"\n"
"As submit_first(), the job runs next, before the jobs already queued; as\n"
"submit_done(), done_callback decides where its results go: True or None\n"
"stores them in `done`, False discards them, and a callable receives each\n"
"one in the worker thread.\n"
"\n"
"Returns None, or the job's id with result_id=True.  Raises TypeError if\n"
"fn is not callable or done_callback is not a valid done mode, and\n"
"PoolStopped after shutdown_children() or Shutdown().");

PyDoc_STRVAR(pool_submit_later_doc,
"submit_later($self, /, delay, fn, *args, **kwargs)\n"
"--\n"
"\n"
"Run fn(*args, **kwargs) once, delay seconds from now.\n"
"\n"
"delay is a number of seconds (0 or negative: at once).  When the timer\n"
"fires, the job is queued at the front of the queue and runs on a worker\n"
"like any other; its result is stored in `done`, even in a\n"
"Pool(done_callback=False), as (timer_id, value) with result_id=True.\n"
"Armed timers keep running after shutdown(): cancel them first.\n"
"\n"
"Returns a TimerObj, listed in `delayed` until the job is queued; stop it\n"
"with its cancel() method or with cancel(False, timer).  Raises TypeError\n"
"if delay is not a number or fn is not callable, ValueError if delay is\n"
"NaN or out of range, and PoolStopped after shutdown_children() or\n"
"Shutdown().");

PyDoc_STRVAR(pool_submit_done_later_doc,
"submit_done_later($self, /, delay, fn, done_callback, *args, **kwargs)\n"
"--\n"
"\n"
"Run fn(*args, **kwargs) once, delay seconds from now, with a done mode.\n"
"\n"
"As submit_later(): delay is a number of seconds (0 or negative: at\n"
"once), and the job is queued at the front when the timer fires.\n"
"done_callback decides where the results go: True or None stores them in\n"
"`done`, False discards them, and a callable receives each one in the\n"
"worker thread.\n"
"\n"
"Returns a TimerObj, listed in `delayed` until the job is queued.  Raises\n"
"TypeError if delay is not a number, fn is not callable or done_callback\n"
"is not a valid done mode, ValueError if delay is NaN or out of range,\n"
"and PoolStopped after shutdown_children() or Shutdown().");

PyDoc_STRVAR(pool_submit_at_doc,
"submit_at($self, /, _runat, interval, fn, *args, **kwargs)\n"
"--\n"
"\n"
"Run fn(*args, **kwargs) at a wall-clock time, then every interval\n"
"seconds.\n"
"\n"
"_runat is a time as time.time() returns it (seconds since the epoch) or\n"
"a time.struct_time in local time (as time.localtime() returns it); a\n"
"time up to one second in the past runs at once.  With interval 0 or less\n"
"the job runs once; otherwise it runs again every interval seconds, each\n"
"run due one interval after the previous due time, so that late runs do\n"
"not shift the later ones, and a run still queued when the next falls due\n"
"is not queued twice.  Each run is queued at the front of the queue and\n"
"its result stored in `done`, as with submit_later().\n"
"\n"
"Returns a TimerObj, listed in `scheduled` while it is armed.  Raises\n"
"TypeError if _runat or interval is not a number or fn is not callable,\n"
"ValueError if _runat is more than one second in the past, or a value is\n"
"NaN or out of range, and PoolStopped after shutdown_children() or\n"
"Shutdown().");

PyDoc_STRVAR(pool_submit_done_at_doc,
"submit_done_at($self, /, _runat, interval, fn, done_callback, *args, "
"**kwargs)\n"
"--\n"
"\n"
"Run fn(*args, **kwargs) at a wall-clock time, then every interval\n"
"seconds, with a done mode.\n"
"\n"
"As submit_at(): the job runs at _runat (a time.time() value or a\n"
"time.struct_time), then every interval seconds if interval is positive.\n"
"done_callback decides where the results go: True or None stores them in\n"
"`done`, False discards them, and a callable receives each one in the\n"
"worker thread.\n"
"\n"
"Returns a TimerObj, listed in `scheduled` while it is armed.  Raises\n"
"TypeError, ValueError and PoolStopped as submit_at() does, and TypeError\n"
"if done_callback is not a valid done mode.");

PyDoc_STRVAR(pool_schedule_doc,
"schedule($self, /, interval, fn, *args, **kwargs)\n"
"--\n"
"\n"
"Run fn(*args, **kwargs) every interval seconds, the first time interval\n"
"seconds from now.\n"
"\n"
"With interval 0 or less the job runs once, at once.  Runs do not drift:\n"
"each is due one interval after the previous due time, and a run still\n"
"queued when the next falls due is not queued twice.  Each run is queued\n"
"at the front of the queue and its result stored in `done`, as with\n"
"submit_later().  A schedule keeps running after shutdown(); stop it with\n"
"its cancel() method.\n"
"\n"
"Returns a TimerObj, listed in `scheduled` while it is armed.  Raises\n"
"TypeError if interval is not a number or fn is not callable, ValueError\n"
"if interval is NaN or out of range, and PoolStopped after\n"
"shutdown_children() or Shutdown().");

PyDoc_STRVAR(pool_schedule_done_doc,
"schedule_done($self, /, interval, fn, done_callback, *args, **kwargs)\n"
"--\n"
"\n"
"Run fn(*args, **kwargs) every interval seconds, with a done mode.\n"
"\n"
"As schedule(): the job runs every interval seconds, the first time\n"
"interval seconds from now (once, at once, if interval is 0 or less).\n"
"done_callback decides where the results go: True or None stores them in\n"
"`done`, False discards them, and a callable receives each one in the\n"
"worker thread.\n"
"\n"
"Returns a TimerObj, listed in `scheduled` while it is armed.  Raises\n"
"TypeError, ValueError and PoolStopped as schedule() does, and TypeError\n"
"if done_callback is not a valid done mode.");

PyDoc_STRVAR(pool_map_doc,
"map($self, /, fn, itr, done_callback=True, direct=True, unpack_args=None)\n"
"--\n"
"\n"
"Call fn for every item of itr on the pool's workers; return None at\n"
"once.\n"
"\n"
"A few pool jobs (at most max_children) share one iterator over itr and\n"
"draw items from it in small batches, one worker at a time: itr may be\n"
"any iterable, a generator too (it is never resumed by two threads at\n"
"once), and it is consumed as the work proceeds.  Wait for the results\n"
"with wait_idle(), shutdown(), join() or as_completed().\n"
"\n"
"unpack_args decides how an item is passed: None (the default) calls\n"
"fn(*item) if the item is a tuple and fn(item) otherwise; True always\n"
"calls fn(*item), False always fn(item).  If fn is a generator function,\n"
"each value it yields is one result.\n"
"\n"
"done_callback is the done mode of the results: True or None stores them\n"
"in `done` (never with a job id, even with result_id=True), False\n"
"discards them, and a callable receives each one in the worker thread.\n"
"The pool's own done_callback setting is not consulted.  direct is\n"
"accepted for compatibility with fastthreadpool 1.x and changes nothing.\n"
"\n"
"A failing item is recorded in `failed` with job id 0 and the item as its\n"
"args, and the other items go on; an exception raised by the iterator\n"
"itself ends the map and is recorded the same way.  Raises TypeError if\n"
"fn is not callable or done_callback is not a valid done mode,\n"
"PoolStopped after shutdown_children() or Shutdown(), and what iter(itr)\n"
"raises.");

PyDoc_STRVAR(pool_as_completed_doc,
"as_completed($self, /, wait=None, cnt_max=0)\n"
"--\n"
"\n"
"Return an iterator over the results and failures, as jobs complete.\n"
"\n"
"Each entry is taken out of `done` or `failed` (which decrements done_cnt\n"
"or failed_cnt and lets workers held by done_max go on) and yielded as it\n"
"was stored: results and failures come in one stream, to be told apart by\n"
"their type or shape.  Within one pass the results available come before\n"
"the failures.  The iterator waits for events; it does not poll.\n"
"\n"
"wait\n"
"    None or True (the default): stop once nothing is queued or running\n"
"    and both queues are empty.  False, 0 or a negative number: stop\n"
"    after one pass over what is stored now.  A positive number of\n"
"    seconds: stop when the time is up, or earlier once everything was\n"
"    consumed.\n"
"\n"
"cnt_max\n"
"    If positive, stop after that many entries; a later call goes on from\n"
"    there.\n"
"\n"
"Timers that have not fired are not waited for.  One iterator may be\n"
"shared by several threads: each entry goes to exactly one of them, and\n"
"together they get at most cnt_max entries.\n"
"\n"
"Raises TypeError if wait is not a number, and ValueError if it is NaN.\n"
"The first next() raises PoolCallback if the pool has a pool-level\n"
"done_callback, failed_callback or log_level (they consume the queues),\n"
"and RuntimeError if wait sets no time limit and it runs in a job of the\n"
"same pool, which would wait for itself forever.");

PyDoc_STRVAR(pool_cancel_doc,
"cancel($self, /, job_id=None, timer=None)\n"
"--\n"
"\n"
"Remove queued jobs, and stop timers.\n"
"\n"
"job_id\n"
"    The id of a job, as submit() and its variants return it with\n"
"    result_id=True: remove that job if it is still queued, and return\n"
"    True if it was, False if it has started, ended or never existed.\n"
"    None (the default): remove every queued job and return True.  False:\n"
"    remove none and return True.  True or anything else: remove none and\n"
"    return False.\n"
"\n"
"timer\n"
"    A TimerObj of this pool: stop it (one of another pool is ignored).\n"
"    True: stop every timer of the pool.  None or False (the default):\n"
"    stop none.  The return value does not tell whether a timer was\n"
"    stopped; TimerObj.cancel() does.\n"
"\n"
"A removed job never runs and stores nothing.  Running jobs cannot be\n"
"cancelled.  Beware: as in fastthreadpool 1.x, the default job_id=None\n"
"clears the whole queue, and submit() returns None without result_id, so\n"
"pool.cancel(pool.submit(...)) clears everything; to stop a timer only,\n"
"call cancel(False, timer).  Raises TypeError if timer is of another\n"
"type.");

PyDoc_STRVAR(pool_clear_doc,
"clear($self, /)\n"
"--\n"
"\n"
"Drop the queued jobs and the stored results, and reopen the pool.\n"
"\n"
"The queued jobs are removed without running, and `done` and `failed` are\n"
"emptied (done_cnt and failed_cnt go to 0), except a queue that a\n"
"pool-level callback consumes: its entries still reach the callback.  A\n"
"pool closed by shutdown_children() or Shutdown() accepts jobs again.\n"
"Running jobs go on (their results arrive afterwards), timers are not\n"
"cancelled, and nothing is waited for.");

PyDoc_STRVAR(pool_shutdown_doc,
"shutdown($self, /, timeout=None, soon=False)\n"
"--\n"
"\n"
"Let the workers end and wait for them.\n"
"\n"
"With soon=False (the default) the workers run the queue until it is\n"
"empty, including the jobs that running jobs submit meanwhile, then exit.\n"
"With soon=True they exit after their current job, and the queued jobs\n"
"stay queued (see `jobs`).  timeout is the most seconds to wait (None: no\n"
"limit).\n"
"\n"
"Returns True once no worker is alive and the pool-level callbacks have\n"
"received every entry, False if timeout ran out first (the shutdown goes\n"
"on).  From a job of the same pool, which cannot wait for its own pool,\n"
"it returns False at once.  Raises TypeError if timeout is not a number,\n"
"and ValueError if it is NaN.\n"
"\n"
"The pool stays usable: `is_shutdown` becomes True and the next\n"
"submission starts workers again.  Armed timers are not cancelled: they\n"
"keep running and start workers for their runs; stop them first with\n"
"cancel(False, True), or use Shutdown().");

PyDoc_STRVAR(pool_shutdown_children_doc,
"shutdown_children($self, /)\n"
"--\n"
"\n"
"Close the pool: refuse new jobs, and let the workers exit after their\n"
"current job; do not wait.\n"
"\n"
"Submissions raise PoolStopped until clear().  The queued jobs stay\n"
"queued (see `jobs`): nothing is dropped.  Workers held by done_max are\n"
"released.");

PyDoc_STRVAR(pool_cleanup_children_doc,
"cleanup_children($self, /)\n"
"--\n"
"\n"
"Remove from `children` the worker threads that are no longer alive.\n"
"\n"
"A worker that exits removes itself from `children`, so this is seldom\n"
"needed; it is kept for compatibility with fastthreadpool 1.x.");

PyDoc_STRVAR(pool_join_doc,
"join($self, /, timeout=None)\n"
"--\n"
"\n"
"Same as shutdown(timeout, soon=False): let the workers run the queue\n"
"until it is empty, then exit, and wait for them.\n"
"\n"
"timeout is the most seconds to wait (None: no limit).  Returns True once\n"
"no worker is alive, False if timeout ran out first or when called from a\n"
"job of the same pool.  Raises TypeError if timeout is not a number, and\n"
"ValueError if it is NaN.");

PyDoc_STRVAR(pool_wait_idle_doc,
"wait_idle($self, /, timeout=None)\n"
"--\n"
"\n"
"Wait until no job is queued or running; the workers stay.\n"
"\n"
"timeout is the most seconds to wait (None: no limit).  Returns True once\n"
"the pool is idle (at once on a fresh pool), False if timeout ran out\n"
"first.  Timers that have not fired are not waited for.  Raises\n"
"RuntimeError when called from a job of the same pool, which would wait\n"
"for itself forever, TypeError if timeout is not a number, and ValueError\n"
"if it is NaN.");

PyDoc_STRVAR(pool_enter_doc,
"__enter__($self, /)\n"
"--\n"
"\n"
"Return the pool itself, for a with statement.\n"
"\n"
"When the block ends, __exit__() shuts the pool down after all its queued\n"
"jobs have run.");

PyDoc_STRVAR(pool_exit_doc,
"__exit__($self, /, *args)\n"
"--\n"
"\n"
"Shut the pool down at the end of a with block, as shutdown() does\n"
"without a timeout.\n"
"\n"
"All queued jobs run first; the call returns once the workers have\n"
"exited.  args (the exception type, value and traceback, or three Nones)\n"
"are ignored: an exception raised in the block propagates after the\n"
"shutdown.");

PyDoc_STRVAR(pool_alive_doc,
"The number of worker threads alive (an int), counted among `children`.");

PyDoc_STRVAR(pool_busy_doc,
"The number of workers running a job right now (an int).");

PyDoc_STRVAR(pool_pending_doc,
"The number of jobs running plus jobs queued (an int).\n"
"\n"
"Timers are not counted until their runs are queued; a map() counts as\n"
"the few pool jobs that share its iterator, not as its items.");

PyDoc_STRVAR(pool_jobs_doc,
"A snapshot of the queued jobs: a new collections.deque of (fn,\n"
"done_mode, args, kwargs) tuples, in queue order.\n"
"\n"
"done_mode is True (store), False (discard) or a callable; a map()\n"
"appears as one entry per pool job it uses, with empty args.  Safe to\n"
"read while the pool runs; changing the deque does not change the queue.");

PyDoc_STRVAR(pool_done_doc,
"The results: a ResultQueue (a thread-safe, deque-like FIFO), in the\n"
"order the jobs completed.\n"
"\n"
"An entry is what a job returned, or (job_id, value) with result_id=True\n"
"(map() results never carry an id).  Take entries out with popleft() or\n"
"as_completed(): each is removed by exactly one consumer, however many\n"
"threads consume at once.  The same object for the pool's lifetime.");

PyDoc_STRVAR(pool_done_cnt_doc,
"A Semaphore whose value is the number of entries of `done` not consumed\n"
"yet.\n"
"\n"
"Every entry stored releases one permit, and every removal (popleft(),\n"
"pop(), clear(), as_completed()) takes one.  Read its value: acquiring it\n"
"yourself before a popleft() would take a second permit for one entry.");

PyDoc_STRVAR(pool_failed_doc,
"The failures: a ResultQueue (a thread-safe, deque-like FIFO), in the\n"
"order they happened.\n"
"\n"
"An entry is E; (E, args, kwargs) with exc_args=True; (job_id, E) with\n"
"result_id=True; or (job_id, E, args, kwargs) with both.  E is the\n"
"exception, or with exc_stack=True its formatted traceback (a str).\n"
"job_id is 0 for a map() item and for an exception raised by a pool-level\n"
"done_callback.  Each entry is removed by exactly one consumer.");

PyDoc_STRVAR(pool_failed_cnt_doc,
"A Semaphore whose value is the number of entries of `failed` not\n"
"consumed yet.\n"
"\n"
"Every failure stored releases one permit, and every removal (popleft(),\n"
"pop(), clear(), as_completed()) takes one.  Read its value: acquiring it\n"
"yourself before a popleft() would take a second permit for one entry.");

PyDoc_STRVAR(pool_children_doc,
"A tuple of the worker threads (threading.Thread objects) started and not\n"
"yet ended.\n"
"\n"
"Inside a job, threading.current_thread() is one of them, with a tnum\n"
"attribute (the N of its name) and what init_callback attached to it.");

PyDoc_STRVAR(pool_child_cnt_doc,
"The number of worker threads started and not yet ended (an int): the\n"
"length of `children`.");

PyDoc_STRVAR(pool_delayed_doc,
"A snapshot collections.deque of the TimerObj handles of the armed\n"
"submit_later() and submit_done_later() timers, oldest first.\n"
"\n"
"A timer leaves it once its job is queued or it is cancelled.");

PyDoc_STRVAR(pool_scheduled_doc,
"A snapshot collections.deque of the TimerObj handles of the armed\n"
"schedule() and submit_at() timers (and their _done forms), oldest first.\n"
"\n"
"A timer leaves it once it is cancelled; a timer that runs once leaves it\n"
"when its job is queued.");

PyDoc_STRVAR(pool_is_shutdown_doc,
"True once shutdown() or join() was called (also by Shutdown() or at the\n"
"end of a with block); a bool, never reset.\n"
"\n"
"shutdown_children() does not set it.");

PyDoc_STRVAR(pool_max_children_doc,
"The most worker threads the pool runs at once (an int): the\n"
"constructor's max_children, resolved (the default gives the number of\n"
"CPUs).");

PyDoc_STRVAR(pool_child_name_prefix_doc,
"The child_name_prefix given to the constructor (a str, or None).\n"
"\n"
"Workers are named \"<prefix>-N\", or \"ThreadPool<id>-N\" (where <id> is\n"
"id() of the pool) if it is None or empty.");

PyDoc_STRVAR(pool_init_callback_doc,
"The init_callback given to the constructor (a callable, or None), called\n"
"as init_callback(thread, *init_args) for every new worker before it\n"
"starts.");

PyDoc_STRVAR(pool_init_args_doc,
"The init_args given to the constructor, as given (an empty tuple for\n"
"None): the extra arguments of init_callback.");

PyDoc_STRVAR(pool_finish_callback_doc,
"The finish_callback given to the constructor (a callable, or None),\n"
"called with no arguments in each worker thread as it exits.");

PyDoc_STRVAR(pool_done_callback_doc,
"The pool-level done mode given to the constructor: None (the results of\n"
"submit() are stored in `done`; True reads back as None), False\n"
"(discarded) or a callable that receives each result in the\n"
"ThreadPoolDone thread.");

PyDoc_STRVAR(pool_failed_callback_doc,
"The failed_callback given to the constructor (a callable, or None),\n"
"which receives each failure entry in the ThreadPoolFailed thread.");

PyDoc_STRVAR(pool_log_level_doc,
"The log_level given to the constructor (an int; 0 for None).\n"
"\n"
"If it is positive and no failed_callback is set, each failure is logged\n"
"with its traceback on the logger named LOGGER_NAME.");

PyDoc_STRVAR(pool_result_id_doc,
"True if the pool was made with result_id=True (a bool): submissions\n"
"return job ids, and results are stored as (job_id, value).");

PyDoc_STRVAR(pool_exc_stack_doc,
"True if the pool was made with exc_stack=True (a bool): failures carry\n"
"the formatted traceback, a str, instead of the exception.");

PyDoc_STRVAR(pool_exc_args_doc,
"True if the pool was made with exc_args=True (a bool): failures also\n"
"carry the job's args tuple and kwargs dict.");

PyDoc_STRVAR(pool_done_max_doc,
"The done_max given to the constructor (an int): 0 for no limit,\n"
"otherwise workers pause while `done` holds that many results or more.");

#define FASTMETH(name, fn, doc) \
    {name, (PyCFunction)(void (*)(void))fn, METH_FASTCALL | METH_KEYWORDS, \
     doc}
#define KWMETH(name, fn, doc) \
    {name, (PyCFunction)(void (*)(void))fn, METH_VARARGS | METH_KEYWORDS, \
     doc}

static PyMethodDef pool_methods[] = {
    FASTMETH("submit", pool_submit, pool_submit_doc),
    FASTMETH("submit_done", pool_submit_done, pool_submit_done_doc),
    FASTMETH("submit_first", pool_submit_first, pool_submit_first_doc),
    FASTMETH("submit_done_first", pool_submit_done_first,
             pool_submit_done_first_doc),
    FASTMETH("submit_later", pool_submit_later, pool_submit_later_doc),
    FASTMETH("submit_done_later", pool_submit_done_later,
             pool_submit_done_later_doc),
    FASTMETH("submit_at", pool_submit_at, pool_submit_at_doc),
    FASTMETH("submit_done_at", pool_submit_done_at, pool_submit_done_at_doc),
    FASTMETH("schedule", pool_schedule, pool_schedule_doc),
    FASTMETH("schedule_done", pool_schedule_done, pool_schedule_done_doc),
    KWMETH("map", pool_map, pool_map_doc),
    KWMETH("as_completed", pool_as_completed, pool_as_completed_doc),
    KWMETH("cancel", pool_cancel, pool_cancel_doc),
    {"clear", (PyCFunction)pool_clear_meth, METH_NOARGS,
     pool_clear_doc},
    KWMETH("shutdown", pool_shutdown, pool_shutdown_doc),
    {"shutdown_children", (PyCFunction)pool_shutdown_children, METH_NOARGS,
     pool_shutdown_children_doc},
    {"cleanup_children", (PyCFunction)pool_cleanup_children, METH_NOARGS,
     pool_cleanup_children_doc},
    KWMETH("join", pool_join, pool_join_doc),
    KWMETH("wait_idle", pool_wait_idle, pool_wait_idle_doc),
    {"__enter__", (PyCFunction)pool_enter, METH_NOARGS, pool_enter_doc},
    {"__exit__", (PyCFunction)pool_exit, METH_VARARGS, pool_exit_doc},
    {NULL, NULL, 0, NULL}
};

#define GETTER(name, fn, doc) {name, (getter)fn, NULL, doc, NULL}

static PyGetSetDef pool_getset[] = {
    GETTER("alive", get_alive, pool_alive_doc),
    GETTER("busy", get_busy, pool_busy_doc),
    GETTER("pending", get_pending, pool_pending_doc),
    GETTER("jobs", get_jobs, pool_jobs_doc),
    GETTER("done", get_done, pool_done_doc),
    GETTER("done_cnt", get_done_cnt, pool_done_cnt_doc),
    GETTER("failed", get_failed, pool_failed_doc),
    GETTER("failed_cnt", get_failed_cnt, pool_failed_cnt_doc),
    GETTER("children", get_children, pool_children_doc),
    GETTER("child_cnt", get_child_cnt, pool_child_cnt_doc),
    GETTER("delayed", get_delayed, pool_delayed_doc),
    GETTER("scheduled", get_scheduled, pool_scheduled_doc),
    GETTER("is_shutdown", get_is_shutdown, pool_is_shutdown_doc),
    GETTER("max_children", get_max_children, pool_max_children_doc),
    GETTER("child_name_prefix", get_child_name_prefix,
           pool_child_name_prefix_doc),
    GETTER("init_callback", get_init_callback, pool_init_callback_doc),
    GETTER("init_args", get_init_args, pool_init_args_doc),
    GETTER("finish_callback", get_finish_callback, pool_finish_callback_doc),
    GETTER("done_callback", get_done_callback, pool_done_callback_doc),
    GETTER("failed_callback", get_failed_callback, pool_failed_callback_doc),
    GETTER("log_level", get_log_level, pool_log_level_doc),
    GETTER("result_id", get_result_id, pool_result_id_doc),
    GETTER("exc_stack", get_exc_stack, pool_exc_stack_doc),
    GETTER("exc_args", get_exc_args, pool_exc_args_doc),
    GETTER("done_max", get_done_max, pool_done_max_doc),
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
    {Py_tp_doc, (void *)pool_doc},
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
