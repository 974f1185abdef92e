/*
 * module.c - the fastthreadpool._fastthreadpool extension module:
 * multi-phase initialisation (PEP 489), module state, the exceptions, the
 * constants and the module-level Shutdown() function.
 *
 * Py_mod_gil is deliberately not declared: parts of the pool's Python-level
 * state (job free list, worker list, map iterators) rely on the GIL.
 */
#include "ftp.h"
#include "executor.h"

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

ftp_state *
ftp_state_from_type(PyTypeObject *tp)
{
    /* Walk up to the class this module defined (Semaphore may be
     * subclassed in Python). */
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

PyDoc_STRVAR(shutdown_doc,
"Shutdown(now=True)\n\n"
"Stop every live Pool.  now=True: refuse new jobs, drop the queued ones,\n"
"cancel the timers and wait for the running jobs.  now=False: cancel the\n"
"timers, finish the queued jobs, then shut down.  Registered with atexit.");

static PyObject *
module_shutdown(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"now", NULL};
    ftp_state *st = ftp_get_state(module);
    PyObject *now_obj = Py_True, *pools;
    int now;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:Shutdown", kwlist,
                                     &now_obj)) {
        return NULL;
    }
    now = PyObject_IsTrue(now_obj);
    if (now < 0) {
        return NULL;
    }
    pools = PySequence_List(st->weakset);
    if (pools == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pools); i++) {
        if (ftp_pool_shutdown_all(PyList_GET_ITEM(pools, i), now) < 0) {
            Py_DECREF(pools);
            return NULL;
        }
    }
    Py_DECREF(pools);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"Shutdown", (PyCFunction)(void (*)(void))module_shutdown,
     METH_VARARGS | METH_KEYWORDS, shutdown_doc},
    {NULL, NULL, 0, NULL}
};

static PyObject *
import_attr(const char *modname, const char *attr)
{
    PyObject *mod = PyImport_ImportModule(modname), *r;

    if (mod == NULL) {
        return NULL;
    }
    r = ftp_getattr(mod, attr);
    Py_DECREF(mod);
    return r;
}

static int
module_exec(PyObject *module)
{
    ftp_state *st = ftp_get_state(module);
    PyObject *weakset_type;

    st->PoolStopped = PyErr_NewExceptionWithDoc(
        "fastthreadpool.PoolStopped",
        "Raised by submissions after shutdown_children() or Shutdown().",
        PyExc_Exception, NULL);
    if (st->PoolStopped == NULL
            || PyModule_AddObjectRef(module, "PoolStopped",
                                     st->PoolStopped) < 0) {
        return -1;
    }
    st->PoolCallback = PyErr_NewExceptionWithDoc(
        "fastthreadpool.PoolCallback",
        "Raised by as_completed() when a pool-level callback consumes "
        "the results.", PyExc_Exception, NULL);
    if (st->PoolCallback == NULL
            || PyModule_AddObjectRef(module, "PoolCallback",
                                     st->PoolCallback) < 0) {
        return -1;
    }
    if (PyModule_AddStringConstant(module, "LOGGER_NAME",
                                   FTP_LOGGER_NAME) < 0
            || PyModule_AddStringConstant(module, "DEFAULT_LOGGING_FORMAT",
                                          FTP_DEFAULT_LOGGING_FORMAT) < 0) {
        return -1;
    }
    st->thread_type = import_attr("threading", "Thread");
    st->current_thread = import_attr("threading", "current_thread");
    st->partial_type = import_attr("functools", "partial");
    st->format_exception = import_attr("traceback", "format_exception");
    weakset_type = import_attr("weakref", "WeakSet");
    if (st->thread_type == NULL || st->current_thread == NULL
            || st->partial_type == NULL || st->format_exception == NULL
            || weakset_type == NULL) {
        Py_XDECREF(weakset_type);
        return -1;
    }
    st->weakset = PyObject_CallNoArgs(weakset_type);
    Py_DECREF(weakset_type);
    if (st->weakset == NULL) {
        return -1;
    }
    st->str_tnum = PyUnicode_InternFromString("tnum");
    st->str_start = PyUnicode_InternFromString("start");
    st->str_join = PyUnicode_InternFromString("join");
    st->str_remove = PyUnicode_InternFromString("remove");
    if (st->str_tnum == NULL || st->str_start == NULL
            || st->str_join == NULL || st->str_remove == NULL) {
        return -1;
    }
    if (ftp_aio_init(module, st) < 0
            || ftp_semaphore_init_type(module, st) < 0
            || ftp_rq_init_type(module, st) < 0
            || ftp_timer_init_type(module, st) < 0
            || ftp_pool_init_types(module, st) < 0) {
        return -1;
    }
    return ftp_executor_exec(module);
}

static int
module_traverse(PyObject *module, visitproc visit, void *arg)
{
    ftp_state *st = ftp_get_state(module);

    Py_VISIT(st->pool_type);
    Py_VISIT(st->core_type);
    Py_VISIT(st->sem_type);
    Py_VISIT(st->rq_type);
    Py_VISIT(st->timer_type);
    Py_VISIT(st->ascompleted_type);
    Py_VISIT(st->PoolStopped);
    Py_VISIT(st->PoolCallback);
    Py_VISIT(st->thread_type);
    Py_VISIT(st->current_thread);
    Py_VISIT(st->partial_type);
    Py_VISIT(st->format_exception);
    Py_VISIT(st->weakset);
    Py_VISIT(st->logger);
    Py_VISIT(st->aio_code);
    Py_VISIT(st->aio_convert);
    Py_VISIT(st->aio_set_state);
    return 0;
}

static int
module_clear(PyObject *module)
{
    ftp_state *st = ftp_get_state(module);

    Py_CLEAR(st->pool_type);
    Py_CLEAR(st->core_type);
    Py_CLEAR(st->sem_type);
    Py_CLEAR(st->rq_type);
    Py_CLEAR(st->timer_type);
    Py_CLEAR(st->ascompleted_type);
    Py_CLEAR(st->PoolStopped);
    Py_CLEAR(st->PoolCallback);
    Py_CLEAR(st->thread_type);
    Py_CLEAR(st->current_thread);
    Py_CLEAR(st->partial_type);
    Py_CLEAR(st->format_exception);
    Py_CLEAR(st->weakset);
    Py_CLEAR(st->logger);
    Py_CLEAR(st->str_tnum);
    Py_CLEAR(st->str_start);
    Py_CLEAR(st->str_join);
    Py_CLEAR(st->str_remove);
    Py_CLEAR(st->aio_code);
    Py_CLEAR(st->aio_convert);
    Py_CLEAR(st->aio_set_state);
    Py_CLEAR(st->str_create_future);
    Py_CLEAR(st->str_cancelled);
    Py_CLEAR(st->str_done);
    Py_CLEAR(st->str_cancel);
    Py_CLEAR(st->str_set_result);
    Py_CLEAR(st->str_set_exception);
    Py_CLEAR(st->str_call_soon_threadsafe);
    Py_CLEAR(st->str_is_closed);
    return 0;
}

static void
module_free(void *module)
{
    module_clear((PyObject *)module);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL}
};

PyModuleDef ftp_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "fastthreadpool._fastthreadpool",
    .m_doc = "A fast thread pool: the C implementation of fastthreadpool.",
    .m_size = sizeof(ftp_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC
PyInit__fastthreadpool(void)
{
    return PyModuleDef_Init(&ftp_module_def);
}
