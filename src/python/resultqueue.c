/*
 * resultqueue.c - the type of Pool.done and Pool.failed.
 *
 * A FIFO of Python objects that behaves like collections.deque for what
 * users do with results (len, truth, iteration, popleft, pop, clear,
 * append, indexing, repr, list()/sum() over it), with two additions the
 * pool needs:
 *
 * - a counting Semaphore (Pool.done_cnt / Pool.failed_cnt) whose value is
 *   the number of entries not yet consumed: every push releases one permit
 *   and every removal takes one, whoever removes;
 * - done_max throttling: a producer that filled the queue up to its limit
 *   waits until some consumer removes an entry, however it removes it.
 *
 * The entries live in a ring buffer guarded by `lock` (an ftp_mutex: the
 * GIL with the GIL).  Critical sections are a few loads and stores, never
 * Python code, never a reference drop that could run a finalizer.
 */
#include "ftp.h"

#include <string.h>

#define RQ_MIN_CAP 16
/* An empty queue gives back a buffer larger than this. */
#define RQ_SHRINK_CAP 4096

struct ftp_rqobject {
    PyObject_HEAD
    ftp_mutex lock;          /* guards buf, cap, head and len */
    PyObject **buf;          /* ring buffer of cap slots (power of two) */
    Py_ssize_t cap;
    Py_ssize_t head;         /* index of the oldest entry */
    Py_ssize_t len;
    PyObject *cnt;           /* the counting Semaphore object */
    ftpool_sem_t *sem;       /* its engine semaphore */
    /* done_max throttling (see ftp_rq_throttle). */
    Py_ssize_t limit;        /* 0: unlimited */
    ftpool_sem_t *space;     /* released when an entry is removed */
    atomic_int space_waiters;
    atomic_int released;     /* non-zero: producers never wait */
    /* Optional "something was pushed" notification. */
    ftpool_sem_t *notify;
    atomic_int *notify_waiters;
};

static inline void
rq_lock(ftp_rqobject *q)
{
    ftp_lock(&q->lock);
}

static inline void
rq_unlock(ftp_rqobject *q)
{
    ftp_unlock(&q->lock);
}

/* Makes room for `extra` more entries.  Called with the lock held; only
 * raw memory functions are used (no GIL needed, no Python code run). */
static int
rq_reserve(ftp_rqobject *q, Py_ssize_t extra)
{
    Py_ssize_t need = q->len + extra, cap = q->cap ? q->cap : RQ_MIN_CAP;
    PyObject **nbuf;

    if (need <= q->cap) {
        return 0;
    }
    while (cap < need) {
        cap *= 2;
    }
    /* realloc: a large buffer is moved by remapping its pages, not by
     * copying them (a queue of a million results grows without copying
     * the entries). */
    nbuf = PyMem_RawRealloc(q->buf, (size_t)cap * sizeof(PyObject *));
    if (nbuf == NULL) {
        return -1;
    }
    if (q->head + q->len > q->cap) {
        /* The entries wrapped around the old end: the wrapped part moves
         * after it (cap is at least twice the old one, so it fits). */
        Py_ssize_t wrapped = q->head + q->len - q->cap;
        memcpy(nbuf + q->cap, nbuf, (size_t)wrapped * sizeof(PyObject *));
    }
    q->buf = nbuf;
    q->cap = cap;
    return 0;
}

/* Gives back a large buffer once the queue is empty (lock held). */
static inline void
rq_maybe_shrink(ftp_rqobject *q)
{
    if (q->len == 0 && q->cap > RQ_SHRINK_CAP) {
        PyMem_RawFree(q->buf);
        q->buf = NULL;
        q->cap = 0;
        q->head = 0;
    }
}

/* The counter changes together with the entries, under the lock: a
 * consumer that removes an entry right after it was pushed takes the
 * permit of that entry, never finds it not released yet (which would leave
 * the count one too high).  Semaphore calls call nothing back. */

/* Entries were removed (lock held): takes their permits, as many as are
 * free (a user may have taken some from done_cnt directly). */
static void
rq_take_permits_locked(ftp_rqobject *q, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        if (ftpool_sem_try_acquire(q->sem) != FTPOOL_OK) {
            break;
        }
    }
}

/* After entries were removed: wakes throttled producers. */
static void
rq_space_freed(ftp_rqobject *q)
{
    int w = atomic_load(&q->space_waiters);

    if (w > 0) {
        ftpool_sem_release(q->space, w);
    }
}

/* After entries were pushed and counted: wakes as_completed(). */
static void
rq_pushed(ftp_rqobject *q)
{
    if (q->notify != NULL) {
        ftp_notify(q->notify, q->notify_waiters);
    }
}

int
ftp_rq_push(ftp_rqobject *q, PyObject *item)
{
    rq_lock(q);
    if (q->len == q->cap && rq_reserve(q, 1) < 0) {
        rq_unlock(q);
        Py_DECREF(item);
        PyErr_NoMemory();
        return -1;
    }
    q->buf[(q->head + q->len) & (q->cap - 1)] = item;
    q->len++;
    ftpool_sem_release(q->sem, 1);
    rq_unlock(q);
    rq_pushed(q);
    return 0;
}

int
ftp_rq_push_many(ftp_rqobject *q, PyObject **items, Py_ssize_t n)
{
    if (n == 0) {
        return 0;
    }
    rq_lock(q);
    if (rq_reserve(q, n) < 0) {
        rq_unlock(q);
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_DECREF(items[i]);
        }
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        q->buf[(q->head + q->len + i) & (q->cap - 1)] = items[i];
    }
    q->len += n;
    ftpool_sem_release(q->sem, n);
    rq_unlock(q);
    rq_pushed(q);
    return 0;
}

/* Takes the oldest entry (and its permit unless the caller took it). */
static PyObject *
rq_take_left(ftp_rqobject *q, int counted)
{
    PyObject *item = NULL;

    rq_lock(q);
    if (q->len > 0) {
        item = q->buf[q->head];
        q->head = (q->head + 1) & (q->cap - 1);
        q->len--;
        rq_maybe_shrink(q);
        if (!counted) {
            rq_take_permits_locked(q, 1);
        }
    }
    rq_unlock(q);
    if (item != NULL) {
        rq_space_freed(q);
    }
    return item;
}

PyObject *
ftp_rq_popleft(ftp_rqobject *q)
{
    return rq_take_left(q, 0);
}

PyObject *
ftp_rq_popleft_counted(ftp_rqobject *q)
{
    return rq_take_left(q, 1);
}

Py_ssize_t
ftp_rq_len(ftp_rqobject *q)
{
    Py_ssize_t n;

    rq_lock(q);
    n = q->len;
    rq_unlock(q);
    return n;
}

void
ftp_rq_clear(ftp_rqobject *q)
{
    PyObject **old;
    Py_ssize_t cap, head, len;

    rq_lock(q);
    old = q->buf;
    cap = q->cap;
    head = q->head;
    len = q->len;
    q->buf = NULL;
    q->cap = q->head = q->len = 0;
    rq_take_permits_locked(q, len);
    rq_unlock(q);
    rq_space_freed(q);
    /* Dropping the references may run arbitrary code: lock released. */
    for (Py_ssize_t i = 0; i < len; i++) {
        Py_DECREF(old[(head + i) & (cap - 1)]);
    }
    PyMem_RawFree(old);
}

ftpool_sem_t *
ftp_rq_counter(ftp_rqobject *q)
{
    return q->sem;
}

PyObject *
ftp_rq_counter_obj(ftp_rqobject *q)
{
    return q->cnt;
}

void
ftp_rq_set_limit(ftp_rqobject *q, Py_ssize_t max)
{
    q->limit = max;
}

void
ftp_rq_throttle(ftp_rqobject *q)
{
    if (q->limit <= 0) {
        return;
    }
    /* Announce the wait before checking, so that a consumer removing an
     * entry right after our check sees us and releases `space`. */
    atomic_fetch_add(&q->space_waiters, 1);
    while (!atomic_load(&q->released) && ftp_rq_len(q) >= q->limit) {
        Py_BEGIN_ALLOW_THREADS
        /* Woken by a removal (rq_space_freed) or by ftp_rq_unthrottle. */
        ftpool_sem_acquire(q->space, -1);
        Py_END_ALLOW_THREADS
    }
    atomic_fetch_sub(&q->space_waiters, 1);
}

void
ftp_rq_unthrottle(ftp_rqobject *q, int released)
{
    int w;

    atomic_store(&q->released, released);
    w = atomic_load(&q->space_waiters);
    if (released && w > 0) {
        ftpool_sem_release(q->space, w);
    }
}

void
ftp_rq_set_notify(ftp_rqobject *q, ftpool_sem_t *sem, atomic_int *waiters)
{
    q->notify = sem;
    q->notify_waiters = waiters;
}

/* A new list holding the entries, oldest first. */
static PyObject *
rq_snapshot(ftp_rqobject *q)
{
    PyObject **tmp = NULL, *list;
    Py_ssize_t n;

    rq_lock(q);
    n = q->len;
    if (n > 0) {
        tmp = PyMem_RawMalloc((size_t)n * sizeof(PyObject *));
        if (tmp != NULL) {
            for (Py_ssize_t i = 0; i < n; i++) {
                tmp[i] = q->buf[(q->head + i) & (q->cap - 1)];
                Py_INCREF(tmp[i]);
            }
        }
    }
    rq_unlock(q);
    if (n > 0 && tmp == NULL) {
        return PyErr_NoMemory();
    }
    list = PyList_New(n);
    if (list == NULL) {
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_DECREF(tmp[i]);
        }
        PyMem_RawFree(tmp);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyList_SET_ITEM(list, i, tmp[i]);
    }
    PyMem_RawFree(tmp);
    return list;
}

ftp_rqobject *
ftp_rq_new(ftp_state *st, PyObject *cnt)
{
    ftp_rqobject *q;

    q = (ftp_rqobject *)st->rq_type->tp_alloc(st->rq_type, 0);
    if (q == NULL) {
        return NULL;
    }
    q->cnt = Py_NewRef(cnt);
    q->sem = ((ftp_semobject *)cnt)->sem;
    atomic_init(&q->space_waiters, 0);
    atomic_init(&q->released, 0);
    if (ftpool_sem_create(0, &q->space) != FTPOOL_OK) {
        Py_DECREF(q);
        PyErr_NoMemory();
        return NULL;
    }
    return q;
}

static PyObject *
rq_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    ftp_state *st = ftp_state_from_type(type);
    PyObject *cnt, *it = NULL;
    ftp_rqobject *q;

    if (!PyArg_ParseTuple(args, "|O:ResultQueue", &it)) {
        return NULL;
    }
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_SetString(PyExc_TypeError,
                        "ResultQueue() takes no keyword arguments");
        return NULL;
    }
    cnt = ftp_semaphore_new(st, 0);
    if (cnt == NULL) {
        return NULL;
    }
    q = ftp_rq_new(st, cnt);
    Py_DECREF(cnt);
    if (q == NULL) {
        return NULL;
    }
    if (it != NULL) {
        PyObject *iter = PyObject_GetIter(it), *item;
        if (iter == NULL) {
            Py_DECREF(q);
            return NULL;
        }
        while ((item = PyIter_Next(iter)) != NULL) {
            if (ftp_rq_push(q, item) < 0) {
                break;
            }
        }
        Py_DECREF(iter);
        if (PyErr_Occurred()) {
            Py_DECREF(q);
            return NULL;
        }
    }
    return (PyObject *)q;
}

static int
rq_traverse(ftp_rqobject *q, visitproc visit, void *arg)
{
    /* Producers and consumers hold the GIL, or (free-threaded) are stopped
     * outside their critical sections while the collector runs. */
    for (Py_ssize_t i = 0; i < q->len; i++) {
        Py_VISIT(q->buf[(q->head + i) & (q->cap - 1)]);
    }
    Py_VISIT(q->cnt);
    Py_VISIT(Py_TYPE(q));
    return 0;
}

static int
rq_tp_clear(ftp_rqobject *q)
{
    if (q->cnt != NULL) {
        ftp_rq_clear(q);
    }
    Py_CLEAR(q->cnt);
    return 0;
}

static void
rq_dealloc(ftp_rqobject *q)
{
    PyTypeObject *tp = Py_TYPE(q);

    PyObject_GC_UnTrack(q);
    rq_tp_clear(q);
    PyMem_RawFree(q->buf);
    if (q->space != NULL) {
        ftpool_sem_destroy(q->space);
    }
    tp->tp_free((PyObject *)q);
    Py_DECREF(tp);
}

static Py_ssize_t
rq_length(ftp_rqobject *q)
{
    return ftp_rq_len(q);
}

static PyObject *
rq_item(ftp_rqobject *q, Py_ssize_t i)
{
    PyObject *item = NULL;

    rq_lock(q);
    if (i >= 0 && i < q->len) {
        item = q->buf[(q->head + i) & (q->cap - 1)];
        Py_INCREF(item);
    }
    rq_unlock(q);
    if (item == NULL) {
        PyErr_SetString(PyExc_IndexError, "deque index out of range");
    }
    return item;
}

static PyObject *
rq_subscript(ftp_rqobject *q, PyObject *key)
{
    Py_ssize_t i;

    if (!PyIndex_Check(key)) {
        PyErr_Format(PyExc_TypeError,
                     "sequence index must be integer, not '%.200s'",
                     Py_TYPE(key)->tp_name);
        return NULL;
    }
    i = PyNumber_AsSsize_t(key, PyExc_IndexError);
    if (i == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (i < 0) {
        i += ftp_rq_len(q);
    }
    return rq_item(q, i);
}

static int
rq_contains(ftp_rqobject *q, PyObject *value)
{
    PyObject *list = rq_snapshot(q);
    int rc;

    if (list == NULL) {
        return -1;
    }
    rc = PySequence_Contains(list, value);
    Py_DECREF(list);
    return rc;
}

static PyObject *
rq_iter(ftp_rqobject *q)
{
    /* Iterates over a snapshot: safe while workers keep appending. */
    PyObject *list = rq_snapshot(q), *it;

    if (list == NULL) {
        return NULL;
    }
    it = PyObject_GetIter(list);
    Py_DECREF(list);
    return it;
}

static PyObject *
rq_repr(ftp_rqobject *q)
{
    PyObject *list, *r;
    int rc = Py_ReprEnter((PyObject *)q);

    if (rc != 0) {
        return rc > 0 ? PyUnicode_FromString("[...]") : NULL;
    }
    list = rq_snapshot(q);
    if (list == NULL) {
        Py_ReprLeave((PyObject *)q);
        return NULL;
    }
    r = PyUnicode_FromFormat("deque(%R)", list);
    Py_ReprLeave((PyObject *)q);
    Py_DECREF(list);
    return r;
}

static PyObject *
rq_richcompare(ftp_rqobject *q, PyObject *other, int op)
{
    PyObject *a, *b, *r;

    if ((op != Py_EQ && op != Py_NE)
            || !(PyList_Check(other) || Py_TYPE(other) == Py_TYPE(q)
                 || strcmp(Py_TYPE(other)->tp_name,
                           "collections.deque") == 0)) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    a = rq_snapshot(q);
    if (a == NULL) {
        return NULL;
    }
    b = PySequence_List(other);
    if (b == NULL) {
        Py_DECREF(a);
        return NULL;
    }
    r = PyObject_RichCompare(a, b, op);
    Py_DECREF(a);
    Py_DECREF(b);
    return r;
}

static PyObject *
rq_popleft(ftp_rqobject *q, PyObject *unused)
{
    PyObject *item = ftp_rq_popleft(q);

    if (item == NULL) {
        PyErr_SetString(PyExc_IndexError, "pop from an empty deque");
    }
    return item;
}

static PyObject *
rq_pop(ftp_rqobject *q, PyObject *unused)
{
    PyObject *item = NULL;

    rq_lock(q);
    if (q->len > 0) {
        q->len--;
        item = q->buf[(q->head + q->len) & (q->cap - 1)];
        rq_maybe_shrink(q);
        rq_take_permits_locked(q, 1);
    }
    rq_unlock(q);
    if (item == NULL) {
        PyErr_SetString(PyExc_IndexError, "pop from an empty deque");
        return NULL;
    }
    rq_space_freed(q);
    return item;
}

static PyObject *
rq_append(ftp_rqobject *q, PyObject *item)
{
    if (ftp_rq_push(q, Py_NewRef(item)) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
rq_appendleft(ftp_rqobject *q, PyObject *item)
{
    rq_lock(q);
    if (q->len == q->cap && rq_reserve(q, 1) < 0) {
        rq_unlock(q);
        return PyErr_NoMemory();
    }
    q->head = (q->head - 1) & (q->cap - 1);
    q->buf[q->head] = Py_NewRef(item);
    q->len++;
    ftpool_sem_release(q->sem, 1);
    rq_unlock(q);
    rq_pushed(q);
    Py_RETURN_NONE;
}

static PyObject *
rq_extend(ftp_rqobject *q, PyObject *iterable)
{
    PyObject *it = PyObject_GetIter(iterable), *item;

    if (it == NULL) {
        return NULL;
    }
    while ((item = PyIter_Next(it)) != NULL) {
        if (ftp_rq_push(q, item) < 0) {
            break;
        }
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
rq_clear_meth(ftp_rqobject *q, PyObject *unused)
{
    ftp_rq_clear(q);
    Py_RETURN_NONE;
}

static PyObject *
rq_copy(ftp_rqobject *q, PyObject *unused)
{
    return rq_snapshot(q);
}

PyDoc_STRVAR(rq_doc,
"ResultQueue(iterable=(), /)\n"
"--\n"
"\n"
"A thread-safe FIFO queue: the type of Pool.done and Pool.failed.\n"
"\n"
"It behaves like a collections.deque for what one does with results:\n"
"len(), truth, iteration, `in`, indexing (negative indexes too), == with\n"
"a list or deque, repr(), popleft(), pop(), append(), appendleft(),\n"
"extend(), clear() and copy().  Iteration and `in` work on a snapshot, so\n"
"they are safe while workers keep adding entries.  It is not hashable.\n"
"Made directly, it holds the items of iterable and belongs to no pool.\n"
"\n"
"Beside a pool's queue is a counting Semaphore (Pool.done_cnt,\n"
"Pool.failed_cnt): each entry added releases one permit and each entry\n"
"removed takes one.  Every method is atomic, also on free-threaded\n"
"CPython: each entry is removed by exactly one consumer, however many\n"
"threads pop at once.");

PyDoc_STRVAR(rq_popleft_doc,
"popleft($self, /)\n"
"--\n"
"\n"
"Remove and return the oldest entry.\n"
"\n"
"Raises IndexError if the queue is empty.  Of several threads popping at\n"
"once, each gets a different entry.  Takes a permit of the queue's\n"
"counting Semaphore and lets workers paused by done_max go on.");

PyDoc_STRVAR(rq_pop_doc,
"pop($self, /)\n"
"--\n"
"\n"
"Remove and return the newest entry.\n"
"\n"
"Raises IndexError if the queue is empty.  Of several threads popping at\n"
"once, each gets a different entry.  Takes a permit of the queue's\n"
"counting Semaphore and lets workers paused by done_max go on.");

PyDoc_STRVAR(rq_append_doc,
"append($self, item, /)\n"
"--\n"
"\n"
"Add item at the end of the queue, as the newest entry.\n"
"\n"
"Releases a permit of the queue's counting Semaphore, and wakes a\n"
"Pool.as_completed() waiting on the pool's queues, as a stored result\n"
"does.");

PyDoc_STRVAR(rq_appendleft_doc,
"appendleft($self, item, /)\n"
"--\n"
"\n"
"Add item at the front of the queue: the next popleft() returns it.\n"
"\n"
"Releases a permit of the queue's counting Semaphore, and wakes a\n"
"Pool.as_completed() waiting on the pool's queues.");

PyDoc_STRVAR(rq_extend_doc,
"extend($self, iterable, /)\n"
"--\n"
"\n"
"Add the items of iterable at the end of the queue, in order.\n"
"\n"
"If the iteration raises, the items added before stay and the exception\n"
"propagates.");

PyDoc_STRVAR(rq_clear_doc,
"clear($self, /)\n"
"--\n"
"\n"
"Remove every entry at once.\n"
"\n"
"Takes the permits of the entries from the queue's counting Semaphore and\n"
"lets workers paused by done_max go on.");

PyDoc_STRVAR(rq_copy_doc,
"copy($self, /)\n"
"--\n"
"\n"
"Return a new list of the entries, oldest first.\n"
"\n"
"A snapshot taken under the queue's lock: the entries stay in the queue,\n"
"and workers may add more meanwhile.");

static PyMethodDef rq_methods[] = {
    {"popleft", (PyCFunction)rq_popleft, METH_NOARGS,
     rq_popleft_doc},
    {"pop", (PyCFunction)rq_pop, METH_NOARGS,
     rq_pop_doc},
    {"append", (PyCFunction)rq_append, METH_O, rq_append_doc},
    {"appendleft", (PyCFunction)rq_appendleft, METH_O,
     rq_appendleft_doc},
    {"extend", (PyCFunction)rq_extend, METH_O,
     rq_extend_doc},
    {"clear", (PyCFunction)rq_clear_meth, METH_NOARGS,
     rq_clear_doc},
    {"copy", (PyCFunction)rq_copy, METH_NOARGS,
     rq_copy_doc},
    {NULL, NULL, 0, NULL}
};

static PyType_Slot rq_slots[] = {
    {Py_tp_new, rq_tp_new},
    {Py_tp_dealloc, rq_dealloc},
    {Py_tp_traverse, rq_traverse},
    {Py_tp_clear, rq_tp_clear},
    {Py_tp_repr, rq_repr},
    {Py_tp_iter, rq_iter},
    {Py_tp_richcompare, rq_richcompare},
    {Py_tp_hash, PyObject_HashNotImplemented},
    {Py_tp_methods, rq_methods},
    {Py_sq_length, rq_length},
    {Py_sq_item, rq_item},
    {Py_sq_contains, rq_contains},
    {Py_mp_length, rq_length},
    {Py_mp_subscript, rq_subscript},
    {Py_tp_doc, (void *)rq_doc},
    {0, NULL}
};

static PyType_Spec rq_spec = {
    .name = "fastthreadpool.ResultQueue",
    .basicsize = sizeof(ftp_rqobject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = rq_slots,
};

int
ftp_rq_init_type(PyObject *module, ftp_state *st)
{
    st->rq_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &rq_spec,
                                                           NULL);
    if (st->rq_type == NULL) {
        return -1;
    }
    return PyModule_AddType(module, st->rq_type);
}
