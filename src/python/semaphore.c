/*
 * semaphore.c - fastthreadpool.Semaphore: a counting semaphore on the
 * engine's ftpool_sem_t.
 *
 * Unlike the original, acquire() returns True on success, release(n) adds
 * exactly n permits (it never over-admits) and waits can be interrupted by
 * Ctrl-C.  The fast paths take no lock and never release the GIL.
 */
#include "ftp.h"

#include <math.h>

static int
sem_acquire_for(void *sem, int64_t ns)
{
    return ftpool_sem_acquire(sem, ns);
}

int
ftp_sem_wait(ftpool_sem_t *sem, int64_t timeout_ns)
{
    int rc;

    if (ftpool_sem_try_acquire(sem) == FTPOOL_OK) {
        return 1;
    }
    rc = ftp_wait_sliced(sem_acquire_for, sem,
                         timeout_ns < 0 ? -1
                                        : ftpool_now_ns() + timeout_ns);
    return rc < 0 ? -1 : rc;
}

/* Converts a user timeout in seconds (None or -1: forever) to ns.
 * Returns 0, or -1 with an exception set. */
static int
timeout_to_ns(PyObject *timeout, int64_t *out)
{
    double t;

    if (timeout == NULL || timeout == Py_None) {
        *out = -1;
        return 0;
    }
    t = PyFloat_AsDouble(timeout);
    if (t == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    if (isnan(t)) {
        PyErr_SetString(PyExc_ValueError, "timeout must not be NaN");
        return -1;
    }
    if (t == -1.0) {
        *out = -1;
        return 0;
    }
    if (t < 0) {
        PyErr_SetString(PyExc_ValueError,
                        "timeout value must be a non-negative number");
        return -1;
    }
    *out = t >= 9e9 ? -1 : (int64_t)(t * FTP_NS_PER_SEC);
    return 0;
}

PyObject *
ftp_semaphore_new(ftp_state *st, int64_t value)
{
    ftp_semobject *self;

    self = PyObject_New(ftp_semobject, st->sem_type);
    if (self == NULL) {
        return NULL;
    }
    self->sem = NULL;
    if (ftpool_sem_create(value, &self->sem) != FTPOOL_OK) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static PyObject *
sem_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"value", NULL};
    PyObject *value = NULL;
    ftp_semobject *self;
    long long v = 1;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:Semaphore", kwlist,
                                     &value)) {
        return NULL;
    }
    if (value != NULL) {
        /* Floats are truncated, like the original's C int parameter. */
        if (PyFloat_Check(value)) {
            double d = PyFloat_AS_DOUBLE(value);
            if (isnan(d)) {
                PyErr_SetString(PyExc_ValueError,
                                "Semaphore: Parameter 'value' is NaN");
                return NULL;
            }
            v = d < -1e18 ? -1 : d > 1e18 ? (long long)INT32_MAX + 1
                                          : (long long)d;
        }
        else {
            v = PyLong_AsLongLong(value);
            if (v == -1 && PyErr_Occurred()) {
                return NULL;
            }
        }
    }
    if (v < 0) {
        PyErr_SetString(PyExc_ValueError,
                        "Semaphore: Parameter 'value' must not be less "
                        "than 0");
        return NULL;
    }
    if (v > INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError,
                        "Semaphore: Parameter 'value' is too large");
        return NULL;
    }
    self = (ftp_semobject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    if (ftpool_sem_create(v, &self->sem) != FTPOOL_OK) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void
sem_dealloc(ftp_semobject *self)
{
    PyTypeObject *tp = Py_TYPE(self);

    if (self->sem != NULL) {
        ftpool_sem_destroy(self->sem);
    }
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *
sem_acquire(ftp_semobject *self, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    PyObject *blocking = Py_True, *timeout = Py_None;
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    int block;
    int64_t tmo;
    int rc;

    /* Fast path for the common acquire() with a free permit. */
    if (nargs == 0 && nkw == 0
            && ftpool_sem_try_acquire(self->sem) == FTPOOL_OK) {
        Py_RETURN_TRUE;
    }
    if (nargs > 2) {
        PyErr_SetString(PyExc_TypeError,
                        "acquire() takes at most 2 arguments");
        return NULL;
    }
    if (nargs > 0) {
        blocking = args[0];
    }
    if (nargs > 1) {
        timeout = args[1];
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        PyObject *v = args[nargs + i];
        if (PyUnicode_CompareWithASCIIString(name, "blocking") == 0
                && nargs < 1) {
            blocking = v;
        }
        else if (PyUnicode_CompareWithASCIIString(name, "timeout") == 0
                 && nargs < 2) {
            timeout = v;
        }
        else {
            PyErr_Format(PyExc_TypeError,
                         "acquire() got an unexpected or repeated keyword "
                         "argument '%U'", name);
            return NULL;
        }
    }
    block = PyObject_IsTrue(blocking);
    if (block < 0) {
        return NULL;
    }
    if (!block) {
        if (timeout != Py_None) {
            PyErr_SetString(PyExc_ValueError,
                            "can't specify timeout for non-blocking acquire");
            return NULL;
        }
        return PyBool_FromLong(ftpool_sem_try_acquire(self->sem)
                               == FTPOOL_OK);
    }
    if (timeout_to_ns(timeout, &tmo) < 0) {
        return NULL;
    }
    rc = ftp_sem_wait(self->sem, tmo);
    if (rc < 0) {
        return NULL;
    }
    return PyBool_FromLong(rc);
}

static PyObject *
sem_release(ftp_semobject *self, PyObject *const *args, Py_ssize_t nargs,
            PyObject *kwnames)
{
    long long n = 1;
    PyObject *arg = nargs == 1 ? args[0] : NULL;

    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        if (nargs != 0 || PyTuple_GET_SIZE(kwnames) != 1
                || PyUnicode_CompareWithASCIIString(
                       PyTuple_GET_ITEM(kwnames, 0), "n") != 0) {
            PyErr_SetString(PyExc_TypeError,
                            "release() takes one optional argument 'n'");
            return NULL;
        }
        arg = args[0];
    }
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError,
                        "release() takes at most 1 argument");
        return NULL;
    }
    if (arg != NULL) {
        n = PyLong_AsLongLong(arg);
        if (n == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (n < 1) {
            PyErr_SetString(PyExc_ValueError, "n must be one or more");
            return NULL;
        }
    }
    if (ftpool_sem_release(self->sem, n) != FTPOOL_OK) {
        PyErr_SetString(PyExc_ValueError,
                        "Semaphore released too many times");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
sem_enter(ftp_semobject *self, PyObject *unused)
{
    int rc = ftp_sem_wait(self->sem, -1);

    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

static PyObject *
sem_exit(ftp_semobject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (ftpool_sem_release(self->sem, 1) != FTPOOL_OK) {
        PyErr_SetString(PyExc_ValueError,
                        "Semaphore released too many times");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
sem_get_value(ftp_semobject *self, void *closure)
{
    return PyLong_FromLongLong(ftpool_sem_value(self->sem));
}

static PyObject *
sem_repr(ftp_semobject *self)
{
    return PyUnicode_FromFormat("<%s value=%lld>", Py_TYPE(self)->tp_name,
                                (long long)ftpool_sem_value(self->sem));
}

PyDoc_STRVAR(sem_doc,
"Semaphore(value=1)\n"
"--\n"
"\n"
"A counting semaphore with value permits.\n"
"\n"
"acquire() takes a permit, waiting for one if none is free, and release()\n"
"adds permits.  It never admits more acquirers than permits released, and\n"
"a thread waiting in acquire() can be interrupted by Ctrl-C\n"
"(KeyboardInterrupt), as with threading.Semaphore.  As a context manager\n"
"it acquires on entry and releases on exit.  It may be used from any\n"
"number of threads, also on free-threaded CPython; uncontended acquire()\n"
"and release() take no lock.\n"
"\n"
"value\n"
"    The initial number of permits, 0 or more (a float is truncated).\n"
"    Releasing beyond it is allowed: the count grows.\n"
"\n"
"Raises TypeError if value is not a number, ValueError if it is negative\n"
"or NaN, and OverflowError if it is above 2**31 - 1.");

PyDoc_STRVAR(sem_acquire_doc,
"acquire($self, /, blocking=True, timeout=None)\n"
"--\n"
"\n"
"Take one permit; return True on success, False if none could be taken.\n"
"\n"
"blocking\n"
"    If false, do not wait: return False at once when no permit is free.\n"
"\n"
"timeout\n"
"    With blocking, the most seconds to wait (None or -1: no limit);\n"
"    False is returned when it runs out.\n"
"\n"
"Raises ValueError if timeout is given with blocking false, or is\n"
"negative (other than -1) or NaN.  A signal handler's exception, such as\n"
"KeyboardInterrupt, ends the wait and propagates.");

PyDoc_STRVAR(sem_release_doc,
"release($self, /, n=1)\n"
"--\n"
"\n"
"Add n permits, waking up to n waiting threads.\n"
"\n"
"n must be 1 or more.  Raises ValueError if it is less than 1, or if the\n"
"count would exceed 2**31 - 1 (\"Semaphore released too many times\").");

PyDoc_STRVAR(sem_enter_doc,
"__enter__($self, /)\n"
"--\n"
"\n"
"Take one permit for a with statement, waiting for it without a time\n"
"limit, and return True.");

PyDoc_STRVAR(sem_exit_doc,
"__exit__($self, /, *args)\n"
"--\n"
"\n"
"Give back the permit taken by __enter__() at the end of a with block.\n"
"\n"
"args (the exception type, value and traceback, or three Nones) are\n"
"ignored: an exception raised in the block propagates.");

PyDoc_STRVAR(sem_value_doc,
"The number of free permits right now (an int, never negative).\n"
"\n"
"Other threads may take or add permits at any moment: it is a snapshot.");

static PyMethodDef sem_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))sem_acquire,
     METH_FASTCALL | METH_KEYWORDS,
     sem_acquire_doc},
    {"release", (PyCFunction)(void (*)(void))sem_release,
     METH_FASTCALL | METH_KEYWORDS,
     sem_release_doc},
    {"__enter__", (PyCFunction)sem_enter, METH_NOARGS, sem_enter_doc},
    {"__exit__", (PyCFunction)(void (*)(void))sem_exit, METH_FASTCALL,
     sem_exit_doc},
    {NULL, NULL, 0, NULL}
};

static PyGetSetDef sem_getset[] = {
    {"value", (getter)sem_get_value, NULL,
     sem_value_doc, NULL},
    {NULL, NULL, NULL, NULL, NULL}
};

static PyType_Slot sem_slots[] = {
    {Py_tp_new, sem_new},
    {Py_tp_dealloc, sem_dealloc},
    {Py_tp_repr, sem_repr},
    {Py_tp_methods, sem_methods},
    {Py_tp_getset, sem_getset},
    {Py_tp_doc, (void *)sem_doc},
    {0, NULL}
};

static PyType_Spec sem_spec = {
    .name = "fastthreadpool.Semaphore",
    .basicsize = sizeof(ftp_semobject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = sem_slots,
};

int
ftp_semaphore_init_type(PyObject *module, ftp_state *st)
{
    st->sem_type = (PyTypeObject *)PyType_FromModuleAndSpec(module,
                                                            &sem_spec, NULL);
    if (st->sem_type == NULL) {
        return -1;
    }
    return PyModule_AddType(module, st->sem_type);
}
