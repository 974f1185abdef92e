/*
 * module.c - the fastthreadpool._fastthreadpool extension module, the root
 * of the binding: multi-phase initialisation (PEP 489), the module state,
 * the exceptions and constants, and the module-level Shutdown() function.
 *
 * The module declares that it does not need the GIL (Py_mod_gil): on a
 * free-threaded build importing it leaves the GIL off.
 */
#include "pool.h"

/* The project's version, from pyproject.toml (setup.py defines it). */
#ifndef FTP_VERSION
#  error "FTP_VERSION is not defined: build with setup.py"
#endif

PyDoc_STRVAR(shutdown_doc,
"Shutdown(now=True)\n"
"--\n"
"\n"
"Stop every live Pool of the process, and wait for it.\n"
"\n"
"now\n"
"    If true (the default): refuse new jobs, drop the queued jobs, cancel\n"
"    the timers, and wait for the running jobs to end.  If false: cancel\n"
"    the timers, let the queued jobs run, then shut down.\n"
"\n"
"Either way every pool refuses new jobs afterwards (PoolStopped), until\n"
"its clear().  A pool that nobody references any more but that still has\n"
"work is stopped too; ThreadPoolExecutor objects are not affected.  Waits\n"
"without a time limit and returns None.  The module registers Shutdown()\n"
"with atexit, so that pools stop when the interpreter exits.");

static PyObject *
module_shutdown(PyObject *module, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"now", NULL};
    ftp_state *st = ftp_get_state(module);
    PyObject *now_obj = Py_True, *cores;
    int now;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:Shutdown", kwlist,
                                     &now_obj)) {
        return NULL;
    }
    now = PyObject_IsTrue(now_obj);
    if (now < 0) {
        return NULL;
    }
    /* The live pools' cores: a Pool dropped with work left is found too. */
    cores = ftp_workers_live_owners(st, FTP_WORKERS_POOL);
    if (cores == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(cores); i++) {
        if (ftp_core_stop((ftp_core *)PyList_GET_ITEM(cores, i), now) < 0) {
            Py_DECREF(cores);
            return NULL;
        }
    }
    Py_DECREF(cores);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"Shutdown", (PyCFunction)(void (*)(void))module_shutdown,
     METH_VARARGS | METH_KEYWORDS, shutdown_doc},
    {NULL, NULL, 0, NULL}
};

PyDoc_STRVAR(pool_stopped_doc,
"Raised by a submission to a pool that does not accept jobs.\n"
"\n"
"submit() and its variants, map() and the timer methods raise it after\n"
"Pool.shutdown_children() or Shutdown(), until Pool.clear() reopens the\n"
"pool.");

PyDoc_STRVAR(pool_callback_doc,
"Raised by the iterator of Pool.as_completed() when a pool-level callback\n"
"consumes the entries it would yield.\n"
"\n"
"A Pool made with done_callback (\"Using done_callback!\"), or with\n"
"failed_callback or log_level (\"Using failed_callback!\"), hands its\n"
"results or failures to those, not to as_completed().");

static int
add_exception(PyObject *module, const char *name, const char *doc,
              PyObject **out)
{
    char qualname[64];

    PyOS_snprintf(qualname, sizeof(qualname), "fastthreadpool.%s", name);
    *out = PyErr_NewExceptionWithDoc(qualname, doc, PyExc_Exception, NULL);
    if (*out == NULL) {
        return -1;
    }
    return PyModule_AddObjectRef(module, name, *out);
}

static int
module_exec(PyObject *module)
{
    ftp_state *st = ftp_get_state(module);

    if (add_exception(module, "PoolStopped", pool_stopped_doc,
                      &st->PoolStopped) < 0
            || add_exception(module, "PoolCallback", pool_callback_doc,
                             &st->PoolCallback) < 0) {
        return -1;
    }
    if (PyModule_AddStringConstant(module, "_version", FTP_VERSION) < 0
            || PyModule_AddStringConstant(module, "LOGGER_NAME",
                                          FTP_LOGGER_NAME) < 0
            || PyModule_AddStringConstant(module, "DEFAULT_LOGGING_FORMAT",
                                          FTP_DEFAULT_LOGGING_FORMAT) < 0) {
        return -1;
    }
    st->logger_lock = PyThread_allocate_lock();
    if (st->logger_lock == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    atomic_init(&st->exiting, 0);
    atomic_init(&st->executor_counter, 0);
    st->threading = PyImport_ImportModule("threading");
    st->current_thread = ftp_import_attr("threading", "current_thread");
    st->partial_type = ftp_import_attr("functools", "partial");
    st->format_exception = ftp_import_attr("traceback", "format_exception");
    st->thread_kwnames = Py_BuildValue("(sss)", "target", "name", "daemon");
    if (st->threading == NULL || st->current_thread == NULL
            || st->partial_type == NULL || st->format_exception == NULL
            || st->thread_kwnames == NULL) {
        return -1;
    }
#define NAME(field, s) \
    (st->field = PyUnicode_InternFromString(s)) == NULL
    if (NAME(str_tnum, "tnum") || NAME(str_start, "start")
            || NAME(str_join, "join") || NAME(str_is_alive, "is_alive")) {
        return -1;
    }
#undef NAME
    if (ftp_aio_init(module, st) < 0
            || ftp_semaphore_init_type(module, st) < 0
            || ftp_rq_init_type(module, st) < 0
            || ftp_pool_init_types(module, st) < 0
            || ftp_executor_init_types(module, st) < 0
            || ftp_workers_checkpoint_init(st) < 0) {
        return -1;
    }
    return ftp_workers_exit_init(module, st);
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
    Py_VISIT(st->threading);
    Py_VISIT(st->current_thread);
    Py_VISIT(st->partial_type);
    Py_VISIT(st->format_exception);
    Py_VISIT(st->logger);
    Py_VISIT(st->aio_code);
    Py_VISIT(st->aio_convert);
    Py_VISIT(st->aio_set_state);
    Py_VISIT(st->checkpoint);
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
    Py_CLEAR(st->threading);
    Py_CLEAR(st->current_thread);
    Py_CLEAR(st->partial_type);
    Py_CLEAR(st->format_exception);
    Py_CLEAR(st->thread_kwnames);
    Py_CLEAR(st->logger);
    Py_CLEAR(st->str_tnum);
    Py_CLEAR(st->str_start);
    Py_CLEAR(st->str_join);
    Py_CLEAR(st->str_is_alive);
    Py_CLEAR(st->aio_code);
    Py_CLEAR(st->aio_convert);
    Py_CLEAR(st->aio_set_state);
    Py_CLEAR(st->checkpoint);
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
    ftp_state *st = ftp_get_state((PyObject *)module);

    module_clear((PyObject *)module);
    if (st->logger_lock != NULL) {
        PyThread_free_lock(st->logger_lock);
        st->logger_lock = NULL;
    }
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#ifdef Py_mod_gil
    /* Every piece of shared state is guarded without the GIL (ftp.h). */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
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
