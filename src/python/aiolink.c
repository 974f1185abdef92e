/*
 * aiolink.c - asyncio's run_in_executor() on the executor without a
 * concurrent.futures Future in between.
 *
 * BaseEventLoop.run_in_executor() returns
 * `futures.wrap_future(executor.submit(func, *args), loop=self)`: an asyncio
 * future chained to the concurrent.futures Future by four closures, two done
 * callbacks and a state copy, which costs the event loop more than our whole
 * submit and run.  But wrap_future() returns an asyncio future unchanged.  So
 * when submit() sees that the Python code calling it is that method, it
 * makes the asyncio future itself (loop.create_future()) and returns it, and
 * the internal Future that carries the call holds a link to it:
 *
 * - when the call is about to start, a cancelled asyncio future cancels it
 *   (asyncio's chain propagates the cancellation the same way);
 * - when the internal Future is done (result, exception, cancellation by
 *   shutdown(cancel_futures=True), broken executor), the worker schedules
 *   set_state() on the loop with call_soon_threadsafe(), as the chain does;
 *   set_state() copies the outcome as asyncio.futures._copy_future_state(),
 *   with the same conversion of the concurrent.futures exceptions;
 * - a loop closed meanwhile cannot receive the outcome: it is dropped.
 *
 * Any other caller (a loop that overrides run_in_executor, a submit()
 * override, uvloop's compiled loop, plain code) gets a Future as before.
 */
#include "executor.h"

/* Looks up run_in_executor's code object and _convert_future_exc once.
 * Looking up runs Python code, so two threads may both do it: the first
 * to finish publishes its result.  0, or -1 if asyncio is not loaded (the
 * caller cannot be its method then). */
static int
resolve(ftp_state *st)
{
    PyObject *name, *mod, *fn, *code = NULL, *convert = NULL, *names, *wrap;
    int wraps = 0;

    /* Only if asyncio is loaded: never imported from here. */
    name = PyUnicode_FromString("asyncio.base_events");
    mod = name ? PyImport_GetModule(name) : NULL;
    Py_XDECREF(name);
    fn = mod ? ftp_getattr(mod, "BaseEventLoop") : NULL;
    Py_XDECREF(mod);
    if (fn == NULL) {
        PyErr_Clear();
        return -1;
    }
    Py_SETREF(fn, ftp_getattr(fn, "run_in_executor"));
    /* The shortcut is right only for a method that hands submit()'s
     * result to wrap_future(), as every asyncio since 3.7 does; any other
     * (a patched method, a future rewrite) is never recognised: None. */
    if (fn != NULL && PyFunction_Check(fn)) {
        code = Py_NewRef(PyFunction_GET_CODE(fn));
        names = ftp_getattr(code, "co_names");
        wrap = PyUnicode_FromString("wrap_future");
        wraps = names && wrap ? PySequence_Contains(names, wrap) : 0;
        Py_XDECREF(names);
        Py_XDECREF(wrap);
    }
    Py_XDECREF(fn);
    if (wraps != 1) {
        Py_XSETREF(code, Py_NewRef(Py_None));
    }
    /* Private, so optional: without it exceptions pass unconverted. */
    name = PyUnicode_FromString("asyncio.futures");
    mod = name ? PyImport_GetModule(name) : NULL;
    Py_XDECREF(name);
    convert = mod ? ftp_getattr(mod, "_convert_future_exc") : NULL;
    Py_XDECREF(mod);
    PyErr_Clear();
    ftp_lock(&st->aio_lock);
    if (st->aio_code == NULL) {
        st->aio_convert = convert;
        st->aio_code = code;
        convert = code = NULL;
    }
    ftp_unlock(&st->aio_lock);
    Py_XDECREF(code);
    Py_XDECREF(convert);
    return 0;
}

/* run_in_executor's code object once resolved (set once, then fixed), or
 * NULL. */
static PyObject *
aio_code(ftp_state *st)
{
    PyObject *code;

    ftp_lock(&st->aio_lock);
    code = st->aio_code;
    ftp_unlock(&st->aio_lock);
    return code;
}

/* The frame's local `self`: a new reference, or NULL with an exception. */
static PyObject *
frame_self(PyFrameObject *frame)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyFrame_GetVarString(frame, "self");
#else
    PyObject *locals = ftp_getattr((PyObject *)frame, "f_locals");
    if (locals == NULL) {
        return NULL;
    }
    PyObject *self = PyMapping_GetItemString(locals, "self");
    Py_DECREF(locals);
    return self;
#endif
}

/* If the Python code calling submit() is asyncio's run_in_executor: its
 * loop, a new reference, and the module state in *stp.  NULL otherwise,
 * never with an exception set. */
static PyObject *
caller_loop(PyTypeObject *executor_type, ftp_state **stp)
{
    PyFrameObject *frame = PyEval_GetFrame();
    if (frame == NULL) {
        return NULL;
    }
    PyCodeObject *code = PyFrame_GetCode(frame);
    /* The name test first keeps every other caller at a string compare. */
    int named = PyUnicode_CompareWithASCIIString(code->co_name,
                                                 "run_in_executor") == 0;
    PyObject *loop = NULL;
    if (!named) {
        goto done;
    }
    ftp_state *st = ftp_state_from_type(executor_type);
    if (st == NULL) {
        PyErr_Clear();
        goto done;
    }
    if (aio_code(st) == NULL && resolve(st) < 0) {
        goto done;
    }
    if ((PyObject *)code == aio_code(st)) {
        loop = frame_self(frame);
        if (loop == NULL) {
            PyErr_Clear();
        }
        *stp = st;
    }
done:
    Py_DECREF(code);
    return loop;
}

int
ftp_aio_caller_future(PyTypeObject *executor_type, PyObject **afut,
                      PyObject **loop)
{
    ftp_state *st = NULL;

    *afut = NULL;
    *loop = caller_loop(executor_type, &st);
    if (*loop == NULL) {
        return 0;
    }
    *afut = ftp_call_method_obj(*loop, st->str_create_future, NULL, 0);
    if (*afut == NULL) {
        Py_CLEAR(*loop);
        return -1;
    }
    return 1;
}

static int
call_bool(PyObject *o, PyObject *name)
{
    PyObject *r = ftp_call_method_obj(o, name, NULL, 0);
    if (r == NULL) {
        return -1;
    }
    int b = PyObject_IsTrue(r);
    Py_DECREF(r);
    return b;
}

int
ftp_aio_cancelled(ftp_state *st, PyObject *afut)
{
    int c = call_bool(afut, st->str_cancelled);
    if (c < 0) {
        /* Not an asyncio future's behaviour; let the call run. */
        PyErr_WriteUnraisable(afut);
        return 0;
    }
    return c;
}

void
ftp_aio_complete(ftp_state *st, int outcome, PyObject *value,
                 PyObject *afut, PyObject *loop)
{
    PyObject *r = NULL, *kind = NULL;

    if (call_bool(afut, st->str_done) == 1) {
        /* Cancelled by its awaiter: nothing to copy. */
        goto done;
    }
    PyErr_Clear();
    kind = PyLong_FromLong(outcome);
    if (kind != NULL) {
        PyObject *args[] = {st->aio_set_state, afut, kind,
                            value ? value : Py_None};
        PyObject *stack[] = {loop, args[0], args[1], args[2], args[3]};
        r = PyObject_VectorcallMethod(st->str_call_soon_threadsafe, stack,
                                      5 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                      NULL);
    }
    if (r == NULL) {
        PyObject *exc = ftp_err_fetch();
        if (call_bool(loop, st->str_is_closed) != 1) {
            PyErr_Clear();
            ftp_log_exception("error", "exception calling callback for %r",
                              afut, exc);
        }
        /* A closed loop: nobody can receive the outcome. */
        PyErr_Clear();
        Py_XDECREF(exc);
    }
done:
    Py_XDECREF(kind);
    Py_XDECREF(r);
    Py_DECREF(afut);
    Py_DECREF(loop);
}

/* set_state(afut, outcome, value), run by the loop: what
 * asyncio.futures._copy_future_state() does. */
static PyObject *
set_state(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    ftp_state *st = ftp_get_state(module);
    PyObject *afut, *value, *r = NULL;
    long outcome;
    int done;

    if (nargs != 3 || !PyLong_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError,
                        "set_state(asyncio_future, outcome, value)");
        return NULL;
    }
    afut = args[0];
    outcome = PyLong_AsLong(args[1]);
    done = call_bool(afut, st->str_done);
    if (done != 0) {
        /* Cancelled meanwhile (or an error): as _copy_future_state. */
        return done < 0 ? NULL : Py_NewRef(Py_None);
    }
    value = Py_NewRef(args[2]);
    switch (outcome) {
    case FTP_OUTCOME_RESULT:
        r = ftp_call_method_obj(afut, st->str_set_result, &value, 1);
        break;
    case FTP_OUTCOME_EXCEPTION:
        if (st->aio_convert != NULL) {
            Py_SETREF(value, PyObject_CallOneArg(st->aio_convert, value));
        }
        if (value != NULL) {
            r = ftp_call_method_obj(afut, st->str_set_exception, &value, 1);
        }
        break;
    case FTP_OUTCOME_CANCELLED:
        r = ftp_call_method_obj(afut, st->str_cancel, NULL, 0);
        break;
    default:
        PyErr_SetString(PyExc_RuntimeError, "the future is not done");
        break;
    }
    Py_XDECREF(value);
    if (r == NULL) {
        return NULL;
    }
    Py_DECREF(r);
    Py_RETURN_NONE;
}

static PyMethodDef set_state_def = {
    "_aio_set_state", (PyCFunction)(void (*)(void))set_state, METH_FASTCALL,
    "Copies a finished Future's outcome into an asyncio future."
};

int
ftp_aio_init(PyObject *module, ftp_state *st)
{
    st->aio_set_state = PyCFunction_NewEx(&set_state_def, module, NULL);
#define NAME(field, s) \
    (st->field = PyUnicode_InternFromString(s)) == NULL
    if (st->aio_set_state == NULL
        || NAME(str_create_future, "create_future")
        || NAME(str_cancelled, "cancelled")
        || NAME(str_done, "done")
        || NAME(str_cancel, "cancel")
        || NAME(str_set_result, "set_result")
        || NAME(str_set_exception, "set_exception")
        || NAME(str_call_soon_threadsafe, "call_soon_threadsafe")
        || NAME(str_is_closed, "is_closed")) {
        return -1;
    }
#undef NAME
    return 0;
}
