/*
 * util.c - small helpers every file of the binding uses: attribute and
 * method calls by name, the module state of a type, exceptions as
 * objects, time conversions, generator-function detection and thread
 * joins.  Calls no other file of the binding.
 */
#include "ftp.h"

#include <math.h>

ftp_state *
ftp_state_from_type(PyTypeObject *tp)
{
    /* Walk up to the class this module defined (types may be subclassed
     * in Python). */
    for (; tp != NULL; tp = tp->tp_base) {
        if (tp->tp_flags & Py_TPFLAGS_HEAPTYPE) {
            PyObject *mod = PyType_GetModule(tp);
            if (mod != NULL && PyModule_GetDef(mod) == &ftp_module_def) {
                return ftp_get_state(mod);
            }
            PyErr_Clear();
        }
    }
    PyErr_SetString(PyExc_SystemError, "fastthreadpool state not found");
    return NULL;
}

PyObject *
ftp_getattr(PyObject *o, const char *name)
{
    PyObject *n = PyUnicode_InternFromString(name), *r;

    if (n == NULL) {
        return NULL;
    }
    r = PyObject_GetAttr(o, n);
    Py_DECREF(n);
    return r;
}

PyObject *
ftp_call_method_obj(PyObject *o, PyObject *name, PyObject *const *args,
                    size_t nargs)
{
    PyObject *stack[4];

    if (nargs > 3) {
        PyErr_SetString(PyExc_SystemError, "ftp_call_method: too many args");
        return NULL;
    }
    stack[0] = o;
    for (size_t i = 0; i < nargs; i++) {
        stack[i + 1] = args[i];
    }
    return PyObject_VectorcallMethod(name, stack, nargs + 1, NULL);
}

PyObject *
ftp_call_method(PyObject *o, const char *name, PyObject *const *args,
                size_t nargs)
{
    PyObject *n = PyUnicode_InternFromString(name), *r;

    if (n == NULL) {
        return NULL;
    }
    r = ftp_call_method_obj(o, n, args, nargs);
    Py_DECREF(n);
    return r;
}

PyObject *
ftp_import_attr(const char *modname, const char *attr)
{
    PyObject *mod = PyImport_ImportModule(modname), *r;

    if (mod == NULL) {
        return NULL;
    }
    r = ftp_getattr(mod, attr);
    Py_DECREF(mod);
    return r;
}

/* PyErr_GetRaisedException and PyErr_SetRaisedException replace
 * PyErr_Fetch and PyErr_Restore, deprecated since 3.12. */
PyObject *
ftp_err_fetch(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL && tb != NULL) {
        PyException_SetTraceback(value, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

void
ftp_err_restore(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    if (exc == NULL) {
        return;
    }
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc,
                  PyException_GetTraceback(exc));
#endif
}

int
ftp_seconds_to_ns(PyObject *obj, const char *what, int64_t *out)
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

int
ftp_parse_deadline(PyObject *timeout, int64_t *deadline)
{
    int64_t ns;

    if (timeout == NULL || timeout == Py_None) {
        *deadline = -1;
        return 0;
    }
    if (ftp_seconds_to_ns(timeout, "timeout", &ns) < 0) {
        return -1;
    }
    if (ns < 0) {
        ns = 0;
    }
    *deadline = ftpool_now_ns() + ns;
    return 0;
}

int64_t
ftp_time_left(int64_t deadline)
{
    int64_t left;

    if (deadline < 0) {
        return -1;
    }
    left = deadline - ftpool_now_ns();
    return left > 0 ? left : 0;
}

static inline int
code_is_generator(PyObject *fn)
{
    PyCodeObject *code = (PyCodeObject *)PyFunction_GET_CODE(fn);
    return (code->co_flags & CO_GENERATOR) != 0;
}

int
ftp_is_generator_function(ftp_state *st, PyObject *fn)
{
    PyObject *held = NULL;
    int r = 0;

    if (PyFunction_Check(fn)) {
        /* The common case, without the subtype checks below. */
        return code_is_generator(fn);
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
        r = code_is_generator(fn);
    }
    Py_XDECREF(held);
    return r;
}

int
ftp_thread_is_alive(ftp_state *st, PyObject *thread)
{
    PyObject *r = ftp_call_method_obj(thread, st->str_is_alive, NULL, 0);
    int alive;

    if (r == NULL) {
        return -1;
    }
    alive = PyObject_IsTrue(r);
    Py_DECREF(r);
    return alive;
}

int
ftp_list_remove(PyObject *list, PyObject *item)
{
    /* One call of list.remove(), atomic on its own without the GIL: a
     * search and a deletion by index would race with other removals. */
    PyObject *r = ftp_call_method(list, "remove", &item, 1);

    if (r == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError)) {
            return -1;
        }
        PyErr_Clear();
        return 0;
    }
    Py_DECREF(r);
    return 0;
}

int
ftp_forget_ended_threads(ftp_state *st, PyObject *threads)
{
    PyObject *seen = PySequence_Tuple(threads);

    if (seen == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(seen); i++) {
        PyObject *t = PyTuple_GET_ITEM(seen, i), *ident = NULL;
        int alive = ftp_thread_is_alive(st, t);
        if (alive == 0) {
            /* A worker is listed just before its start(): not alive yet,
             * but not ended either (no ident until it runs). */
            ident = ftp_getattr(t, "ident");
            alive = ident == NULL ? -1 : ident == Py_None;
            Py_XDECREF(ident);
        }
        if (alive < 0 || (!alive && ftp_list_remove(threads, t) < 0)) {
            Py_DECREF(seen);
            return -1;
        }
    }
    Py_DECREF(seen);
    return 0;
}

void
ftp_lock_detached(PyThread_type_lock lock)
{
    if (!PyThread_acquire_lock(lock, NOWAIT_LOCK)) {
        Py_BEGIN_ALLOW_THREADS
        PyThread_acquire_lock(lock, WAIT_LOCK);
        Py_END_ALLOW_THREADS
    }
}

/* Sleeps about ms milliseconds, detached (portable: a timed wait on a
 * lock that is never released). */
static void
nap_ms(int ms)
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

int
ftp_join_thread(ftp_state *st, PyObject *thread, int64_t deadline)
{
    PyObject *r;
    int alive;

    for (;;) {
        int64_t left = ftp_time_left(deadline);
        if (left < 0) {
            r = ftp_call_method_obj(thread, st->str_join, NULL, 0);
        }
        else {
            PyObject *t = PyFloat_FromDouble((double)left / FTP_NS_PER_SEC);
            if (t == NULL) {
                return -1;
            }
            r = ftp_call_method_obj(thread, st->str_join, &t, 1);
            Py_DECREF(t);
        }
        if (r != NULL) {
            break;
        }
        /* A worker is listed just before its start(): if another thread is
         * inside that start(), join() refuses ("cannot join thread before
         * it is started") for a moment. */
        if (!PyErr_ExceptionMatches(PyExc_RuntimeError)) {
            return -1;
        }
        PyErr_Clear();
        if (deadline >= 0 && ftpool_now_ns() >= deadline) {
            return 0;   /* not even started, so not ended: a timeout */
        }
        nap_ms(1);
    }
    Py_DECREF(r);
    alive = ftp_thread_is_alive(st, thread);
    return alive < 0 ? -1 : !alive;
}
