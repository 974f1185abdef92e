/*
 * map.c - Pool.map(): a few engine jobs, never more than max_children,
 * share one iterator; each pulls a chunk of items at a time under a lock
 * (a generator must not be resumed by two threads at once) and calls fn on
 * them.  Results go to the done mode like those of plain jobs; with the
 * default mode a whole chunk is stored at once.
 */
#include "pool.h"

static void
map_release(ftp_map *m)
{
    ftp_core *core;

    if (atomic_fetch_sub(&m->users, 1) > 1) {
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

    /* Another worker may be inside next(); it unlocks when its chunk is
     * pulled. */
    ftp_lock_detached(m->pull_lock);
    while (n < max && !ftp_load_int(&m->exhausted)) {
        PyObject *item = PyIter_Next(m->iter);
        if (item == NULL) {
            ftp_store_int(&m->exhausted, 1);
            if (PyErr_Occurred()) {
                ftp_record_failure(&m->core->fail, 0, NULL, NULL);
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

static void
map_run(void *arg)
{
    ftp_map *m = arg;
    ftp_core *core = m->core;
    PyObject *items[FTP_MAP_CHUNK], *out[FTP_MAP_CHUNK];
    int batch = m->done == NULL && core->done_max <= 0 && !m->is_gen;

    while (!ftp_load_int(&m->exhausted) && !ftpool_is_closed(core->pool)) {
        Py_ssize_t n = map_pull(m, items, m->chunk), nout = 0;

        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *item = items[i], *r = map_call(m, item);
            if (r == NULL) {
                ftp_record_failure(&core->fail, 0, item, NULL);
            }
            else if (batch) {
                out[nout++] = r;
            }
            else if (m->is_gen) {
                ftp_deliver_generator(core, m->done, r, 0, 0, item, NULL);
            }
            else {
                ftp_deliver(core, m->done, r, 0, 0, item, NULL);
            }
            Py_DECREF(item);
        }
        if (nout > 0 && ftp_rq_push_many(core->done, out, nout) < 0) {
            PyErr_WriteUnraisable((PyObject *)core);
        }
        ftp_workers_job_done();
    }
    ftp_core_job_finished(core);
    map_release(m);
}

static void
map_drop(void *arg)
{
    ftp_map *m = arg;
    ftp_core *core = m->core;
    PyGILState_STATE gs;

    if (!PyGILState_Check() && ftp_is_finalizing()) {
        return;
    }
    gs = PyGILState_Ensure();
    ftp_workers_enter_callback();
    ftp_core_job_finished(core);
    map_release(m);
    ftp_workers_leave_callback();
    PyGILState_Release(gs);
}

PyObject *
ftp_map_submit(ftp_core *core, PyObject *fn, PyObject *iterable,
               PyObject *done, int unpack)
{
    PyObject *iter;
    ftp_map *m;
    Py_ssize_t hint;
    unsigned k;

    if (ftp_callbacks_check(core) < 0) {
        Py_XDECREF(done);
        return NULL;
    }
    hint = PyObject_LengthHint(iterable, -1);
    if (hint < 0 && PyErr_Occurred()) {
        PyErr_Clear();
    }
    iter = PyObject_GetIter(iterable);
    if (iter == NULL) {
        Py_XDECREF(done);
        return NULL;
    }
    if (hint == 0) {
        Py_DECREF(iter);
        Py_XDECREF(done);
        Py_RETURN_NONE;
    }
    m = PyMem_RawCalloc(1, sizeof(*m));
    if (m == NULL || (m->pull_lock = PyThread_allocate_lock()) == NULL) {
        PyMem_RawFree(m);
        Py_DECREF(iter);
        Py_XDECREF(done);
        return PyErr_NoMemory();
    }
    m->kind = FTP_KIND_MAP;
    m->core = (ftp_core *)Py_NewRef((PyObject *)core);
    m->fn = Py_NewRef(fn);
    m->iter = iter;
    m->done = done;
    m->is_gen = ftp_is_generator_function(core->st, fn);
    m->unpack = unpack;
    /* A few engine jobs share the iterator; never more than max_children,
     * and not more than the chunks there are. */
    k = core->max_children;
    m->chunk = 16;
    if (hint > 0) {
        if ((Py_ssize_t)k > hint) {
            k = (unsigned)hint;
        }
        /* About four chunks per job: small maps still spread over the
         * workers, large ones pay for the shared iterator rarely. */
        m->chunk = hint / (4 * (Py_ssize_t)k);
        if (m->chunk < 1) {
            m->chunk = 1;
        }
        if (m->chunk > FTP_MAP_CHUNK) {
            m->chunk = FTP_MAP_CHUNK;
        }
    }
    atomic_init(&m->users, 1);  /* ours, until every job is queued */
    atomic_init(&m->exhausted, 0);
    for (unsigned i = 0; i < k; i++) {
        int rc;
        atomic_fetch_add(&m->users, 1);
        ftp_core_job_submitted(core);
        rc = ftpool_submit_ex(core->pool, map_run, map_drop, m, 0, NULL);
        if (rc == FTPOOL_ESPAWN) {
            if (ftp_core_check_spawn(core) < 0) {
                map_release(m);
                return NULL;
            }
            continue;
        }
        if (rc != FTPOOL_OK) {
            atomic_fetch_sub(&m->users, 1);
            ftp_core_job_finished(core);
            if (i == 0) {
                map_release(m);
                ftp_core_raise(core, rc);
                return NULL;
            }
            break;
        }
    }
    map_release(m);
    Py_RETURN_NONE;
}
