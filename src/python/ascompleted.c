/*
 * ascompleted.c - Pool.as_completed() and the iterator it returns
 * (_AsCompleted): hands out results and failures as they arrive.
 */
#include "pool.h"

#include <math.h>

/* Several threads may consume one iterator: each item goes to one of
 * them, and together they get at most cnt_max. */
typedef struct {
    PyObject_HEAD
    ftp_core *core;
    atomic_int started;         /* the first next() has done its checks */
    atomic_int finished;
    int mode;                   /* 0: one pass, 1: until idle, 2: until
                                   the deadline */
    double wait;
    int64_t deadline;           /* set by the first next() */
    Py_ssize_t cnt_max;
    atomic_llong yielded;       /* counted only with cnt_max > 0 */
} ftp_acobject;

enum { AC_ONE_PASS = 0, AC_UNTIL_IDLE = 1, AC_UNTIL_DEADLINE = 2 };

PyObject *
ftp_ac_new(ftp_core *core, PyObject *wait, Py_ssize_t cnt_max)
{
    ftp_acobject *ac;
    int mode = AC_ONE_PASS;
    double w = 0;

    if (wait == Py_None || wait == Py_True) {
        mode = AC_UNTIL_IDLE;       /* wait for all */
    }
    else if (wait != Py_False) {
        w = PyFloat_AsDouble(wait);
        if (w == -1.0 && PyErr_Occurred()) {
            return NULL;
        }
        if (isnan(w)) {
            PyErr_SetString(PyExc_ValueError, "wait must not be NaN");
            return NULL;
        }
        mode = w > 0 ? AC_UNTIL_DEADLINE : AC_ONE_PASS;
    }
    ac = PyObject_GC_New(ftp_acobject, core->st->ascompleted_type);
    if (ac == NULL) {
        return NULL;
    }
    ac->core = (ftp_core *)Py_NewRef((PyObject *)core);
    atomic_init(&ac->started, 0);
    atomic_init(&ac->finished, 0);
    ac->cnt_max = cnt_max;
    atomic_init(&ac->yielded, 0);
    ac->wait = w;
    ac->mode = mode;
    ac->deadline = -1;
    PyObject_GC_Track(ac);
    return (PyObject *)ac;
}

/* The checks of the first next(): 0, or -1 with the exception that ends
 * the iteration. */
static int
ac_start(ftp_acobject *ac)
{
    ftp_core *core = ac->core;

    if (core->done_callback != NULL) {
        PyErr_SetString(core->st->PoolCallback, "Using done_callback!");
        return -1;
    }
    if (core->failed_callback != NULL || core->logger != NULL) {
        PyErr_SetString(core->st->PoolCallback, "Using failed_callback!");
        return -1;
    }
    if (ac->mode == AC_UNTIL_IDLE && ftpool_current_pool() == core->pool) {
        /* The job calling us is one of those it would wait for. */
        PyErr_SetString(PyExc_RuntimeError,
                        "as_completed() without a time limit from a job of "
                        "the same pool would wait forever");
        return -1;
    }
    if (ac->mode == AC_UNTIL_DEADLINE) {
        ac->deadline = ftpool_now_ns() + (int64_t)(ac->wait * FTP_NS_PER_SEC);
    }
    return 0;
}

/* The first next(), in whichever thread comes first: 0, or -1 (the
 * iteration ended, with an exception set in this thread if it was the
 * one that failed the checks). */
static int
ac_first(ftp_acobject *ac)
{
    int failed = 0;

    Py_BEGIN_CRITICAL_SECTION(ac);
    if (!atomic_load(&ac->started)) {
        if (ac_start(ac) < 0) {
            failed = 1;
            ftp_store_int(&ac->finished, 1);
        }
        atomic_store(&ac->started, 1);
    }
    Py_END_CRITICAL_SECTION();
    return failed || ftp_load_int(&ac->finished) ? -1 : 0;
}

/* Takes one of the cnt_max items for this thread: 1, or 0 if none is
 * left. */
static int
ac_reserve(ftp_acobject *ac)
{
    long long y = atomic_load(&ac->yielded);

    do {
        if (y >= ac->cnt_max) {
            return 0;
        }
    } while (!atomic_compare_exchange_weak(&ac->yielded, &y, y + 1));
    return 1;
}

static PyObject *
ac_next(ftp_acobject *ac)
{
    ftp_core *core = ac->core;
    int limited = ac->cnt_max > 0;

    if (ftp_load_int(&ac->finished)) {
        return NULL;
    }
    if (!atomic_load(&ac->started) && ac_first(ac) < 0) {
        return NULL;
    }
    for (;;) {
        PyObject *item;
        int idle;

        if (ftp_load_int(&ac->finished)
                || (limited && !ac_reserve(ac))) {
            break;
        }
        idle = ftp_core_idle(core);
        item = ftp_rq_popleft(core->done);
        if (item == NULL) {
            item = ftp_rq_popleft(core->failed);
        }
        if (item != NULL) {
            return item;
        }
        if (limited) {
            atomic_fetch_sub(&ac->yielded, 1);
        }
        /* Both queues were empty after the pool was seen idle: every
         * result has been handed out. */
        if (ac->mode == AC_ONE_PASS || idle) {
            break;
        }
        if (ac->mode == AC_UNTIL_DEADLINE
                && ftpool_now_ns() >= ac->deadline) {
            break;
        }
        atomic_fetch_add(&core->notify_waiters, 1);
        if (ftp_rq_len(core->done) == 0 && ftp_rq_len(core->failed) == 0
                && !ftp_core_idle(core)) {
            int64_t left = ac->mode == AC_UNTIL_DEADLINE
                           ? ftp_time_left(ac->deadline) : -1;
            int rc = ftp_sem_wait(core->notify, left);
            if (rc < 0) {
                atomic_fetch_sub(&core->notify_waiters, 1);
                return NULL;
            }
        }
        /* Wake-ups are not drained: with several consumers one of them
         * could take another's and leave it asleep.  A stale one costs a
         * loop. */
        atomic_fetch_sub(&core->notify_waiters, 1);
    }
    ftp_store_int(&ac->finished, 1);
    return NULL;
}

static int
ac_traverse(ftp_acobject *ac, visitproc visit, void *arg)
{
    Py_VISIT(ac->core);
    Py_VISIT(Py_TYPE(ac));
    return 0;
}

static void
ac_dealloc(ftp_acobject *ac)
{
    PyTypeObject *tp = Py_TYPE(ac);

    PyObject_GC_UnTrack(ac);
    Py_CLEAR(ac->core);
    tp->tp_free((PyObject *)ac);
    Py_DECREF(tp);
}

static int
ac_clear(ftp_acobject *ac)
{
    ftp_store_int(&ac->finished, 1);
    return 0;
}

static PyType_Slot ac_slots[] = {
    {Py_tp_dealloc, ac_dealloc},
    {Py_tp_traverse, ac_traverse},
    {Py_tp_clear, ac_clear},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, ac_next},
    {0, NULL}
};

static PyType_Spec ac_spec = {
    .name = "fastthreadpool._AsCompleted",
    .basicsize = sizeof(ftp_acobject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = ac_slots,
};

int
ftp_ac_init_type(PyObject *module, ftp_state *st)
{
    st->ascompleted_type = (PyTypeObject *)PyType_FromModuleAndSpec(
        module, &ac_spec, NULL);
    if (st->ascompleted_type == NULL) {
        return -1;
    }
#if PY_VERSION_HEX < 0x030A0000
    st->ascompleted_type->tp_new = NULL;
#endif
    return 0;
}
