/*
 * timerobj.c - fastthreadpool.TimerObj: the handle of a delayed or
 * periodic job (submit_later, schedule, submit_at and their _done forms).
 *
 * The handle references the pool's core, not the Pool object, so an
 * armed timer does not keep a dropped Pool alive (D9).  Pool.cancel(False,
 * handle) and handle.cancel() both stop it, before or between runs (D16).
 */
#include "ftp.h"

ftp_timerobject *
ftp_timer_new(ftp_state *st, PyObject *core, int kind)
{
    ftp_timerobject *t;

    t = (ftp_timerobject *)st->timer_type->tp_alloc(st->timer_type, 0);
    if (t == NULL) {
        return NULL;
    }
    t->core = Py_XNewRef(core);
    t->kind = kind;
    return t;
}

static PyObject *
timer_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) != 0
            || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "TimerObj() takes no arguments");
        return NULL;
    }
    /* An unbound handle: cancel() is a no-op that returns False. */
    return type->tp_alloc(type, 0);
}

static int
timer_traverse(ftp_timerobject *t, visitproc visit, void *arg)
{
    Py_VISIT(t->core);
    Py_VISIT(Py_TYPE(t));
    return 0;
}

static int
timer_clear(ftp_timerobject *t)
{
    Py_CLEAR(t->core);
    return 0;
}

static void
timer_dealloc(ftp_timerobject *t)
{
    PyTypeObject *tp = Py_TYPE(t);

    PyObject_GC_UnTrack(t);
    timer_clear(t);
    tp->tp_free((PyObject *)t);
    Py_DECREF(tp);
}

static PyObject *
timer_cancel(ftp_timerobject *t, PyObject *unused)
{
    int rc;

    if (t->core == NULL || !t->active) {
        Py_RETURN_FALSE;
    }
    rc = ftp_core_cancel_timer(t->core, t);
    if (rc < 0) {
        return NULL;
    }
    return PyBool_FromLong(rc);
}

static PyObject *
timer_get_id(ftp_timerobject *t, void *closure)
{
    if (t->timer_id == 0) {
        Py_RETURN_NONE;
    }
    return PyLong_FromUnsignedLongLong(t->timer_id);
}

static PyObject *
timer_get_active(ftp_timerobject *t, void *closure)
{
    return PyBool_FromLong(t->active);
}

static PyObject *
timer_repr(ftp_timerobject *t)
{
    return PyUnicode_FromFormat("<TimerObj id=%llu %s>",
                                (unsigned long long)t->timer_id,
                                t->active ? "active" : "inactive");
}

static PyMethodDef timer_methods[] = {
    {"cancel", (PyCFunction)timer_cancel, METH_NOARGS,
     "cancel() -> bool\n\nStop the timer: no further run is queued.\n"
     "True if it was armed."},
    {NULL, NULL, 0, NULL}
};

static PyGetSetDef timer_getset[] = {
    {"timer_id", (getter)timer_get_id, NULL,
     "The timer's id (unique in its pool), or None.", NULL},
    {"active", (getter)timer_get_active, NULL,
     "True while the timer is armed.", NULL},
    {NULL, NULL, NULL, NULL, NULL}
};

static PyType_Slot timer_slots[] = {
    {Py_tp_new, timer_tp_new},
    {Py_tp_dealloc, timer_dealloc},
    {Py_tp_traverse, timer_traverse},
    {Py_tp_clear, timer_clear},
    {Py_tp_repr, timer_repr},
    {Py_tp_methods, timer_methods},
    {Py_tp_getset, timer_getset},
    {Py_tp_doc, "Handle of a delayed or periodic job; see cancel()."},
    {0, NULL}
};

static PyType_Spec timer_spec = {
    .name = "fastthreadpool.TimerObj",
    .basicsize = sizeof(ftp_timerobject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
             | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = timer_slots,
};

int
ftp_timer_init_type(PyObject *module, ftp_state *st)
{
    st->timer_type = (PyTypeObject *)PyType_FromModuleAndSpec(
        module, &timer_spec, NULL);
    if (st->timer_type == NULL) {
        return -1;
    }
    return PyModule_AddType(module, st->timer_type);
}
