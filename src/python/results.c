/*
 * results.c - where the outcome of a pool's job goes: its result to
 * Pool.done, a per-job done_callback or nowhere (the done mode), a
 * generator's values one by one, and an exception to Pool.failed in the
 * shape the pool was configured with.
 */
#include "pool.h"

/* The entry of Pool.failed for exception `value`: e (the exception or its
 * formatted traceback), (id, e), (e, args, kwargs) or (id, e, args,
 * kwargs).  A new reference, or NULL with an exception set. */
static PyObject *
failure_entry(const ftp_failure_format *fail, uint64_t id, PyObject *e,
              PyObject *args, PyObject *kwargs)
{
    PyObject *a = NULL, *k = NULL, *jid = NULL, *entry = NULL;

    if (!fail->result_id && !fail->exc_args) {
        return Py_NewRef(e);
    }
    if (fail->exc_args) {
        a = args ? Py_NewRef(args) : PyTuple_New(0);
        k = kwargs ? PyDict_Copy(kwargs) : PyDict_New();
    }
    if (fail->result_id) {
        jid = PyLong_FromUnsignedLongLong(id);
    }
    if (fail->result_id && fail->exc_args) {
        entry = (a && k && jid) ? PyTuple_Pack(4, jid, e, a, k) : NULL;
    }
    else if (fail->result_id) {
        entry = jid ? PyTuple_Pack(2, jid, e) : NULL;
    }
    else {
        entry = (a && k) ? PyTuple_Pack(3, e, a, k) : NULL;
    }
    Py_XDECREF(a);
    Py_XDECREF(k);
    Py_XDECREF(jid);
    return entry;
}

/* The formatted traceback of an exception as one string, or, if that
 * fails, its str() or the exception itself. */
static PyObject *
format_stack(const ftp_failure_format *fail, PyObject *value)
{
    PyObject *tb = PyException_GetTraceback(value), *lines, *sep, *e;
    PyObject *type = (PyObject *)Py_TYPE(value);

    lines = PyObject_CallFunctionObjArgs(fail->format_exception, type,
                                         value, tb ? tb : Py_None, NULL);
    Py_XDECREF(tb);
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
    return e;
}

void
ftp_record_failure(const ftp_failure_format *fail, uint64_t id,
                   PyObject *args, PyObject *kwargs)
{
    PyObject *value = ftp_err_fetch(), *e, *entry;

    if (value == NULL) {
        value = Py_NewRef(Py_None);
    }
    e = fail->exc_stack && PyExceptionInstance_Check(value)
        ? format_stack(fail, value) : Py_NewRef(value);
    Py_DECREF(value);
    entry = failure_entry(fail, id, e, args, kwargs);
    Py_DECREF(e);
    if (entry == NULL || ftp_rq_push(fail->failed, entry) < 0) {
        PyErr_WriteUnraisable(NULL);
    }
}

void
ftp_store_result(ftp_core *core, PyObject *value, uint64_t id)
{
    if (ftp_rq_push(core->done, value) < 0) {
        ftp_record_failure(&core->fail, id, NULL, NULL);
    }
    else if (core->done_max > 0) {
        ftp_rq_throttle(core->done);
    }
}

void
ftp_deliver(ftp_core *core, PyObject *done, PyObject *value, uint64_t id,
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
                ftp_record_failure(&core->fail, id, args, kwargs);
                return;
            }
        }
        if (ftp_rq_push(core->done, entry) < 0) {
            ftp_record_failure(&core->fail, id, args, kwargs);
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
            ftp_record_failure(&core->fail, id, args, kwargs);
        }
        else {
            Py_DECREF(r);
        }
    }
}

void
ftp_deliver_generator(ftp_core *core, PyObject *done, PyObject *gen,
                      uint64_t id, int wrap, PyObject *args, PyObject *kwargs)
{
    PyObject *it = PyObject_GetIter(gen), *v;

    Py_DECREF(gen);
    if (it == NULL) {
        ftp_record_failure(&core->fail, id, args, kwargs);
        return;
    }
    while ((v = PyIter_Next(it)) != NULL) {
        ftp_deliver(core, done, v, id, wrap, args, kwargs);
    }
    if (PyErr_Occurred()) {
        ftp_record_failure(&core->fail, id, args, kwargs);
    }
    Py_DECREF(it);
}
