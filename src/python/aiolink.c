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
#include "ftp.h"
#include "future.h"

static int
resolve(ftp_state *st)
{
    PyObject *name = NULL, *mod = NULL, *cls = NULL, *fn = NULL;
    int res = -1;

    name = PyUnicode_FromString("asyncio.base_events");
    if (name == NULL) {
        return -1;
    }
    mod = PyImport_GetModule(name);
    if (mod == NULL) {
        /* asyncio is not loaded: the caller cannot be its method. */
        goto done;
    }
    cls = ftp_getattr(mod, "BaseEventLoop");
    fn = cls ? ftp_getattr(cls, "run_in_executor") : NULL;
    /* The shortcut is right only for a method that hands submit()'s
     * result to wrap_future(), as every asyncio since 3.7 does; any other
     * (a patched method, a future rewrite) is never recognised: None. */
    PyObject *code = fn && PyFunction_Check(fn) ? PyFunction_GET_CODE(fn)
                                                : NULL;
    PyObject *names = code ? ftp_getattr(code, "co_names") : NULL;
    PyObject *wrap = PyUnicode_FromString("wrap_future");
    int wraps = names && wrap ? PySequence_Contains(names, wrap) : 0;
    Py_XDECREF(names);
    Py_XDECREF(wrap);
    st->aio_code = Py_NewRef(wraps == 1 ? code : Py_None);
    res = 0;
    Py_CLEAR(mod);
    Py_SETREF(name, PyUnicode_FromString("asyncio.futures"));
    mod = name ? PyImport_GetModule(name) : NULL;
    if (mod != NULL) {
        /* Private, so optional: without it exceptions pass unconverted. */
        st->aio_convert = PyObject_GetAttrString(mod, "_convert_future_exc");
    }
done:
    PyErr_Clear();
    Py_XDECREF(fn);
    Py_XDECREF(cls);
    Py_XDECREF(mod);
    Py_XDECREF(name);
    return res;
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
    if (st->aio_code == NULL && resolve(st) < 0) {
        goto done;
    }
    if ((PyObject *)code == st->aio_code) {
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
ftp_aio_link_caller(PyTypeObject *executor_type, PyObject *fut,
                    PyObject **afut)
{
    ftp_state *st = NULL;
    PyObject *loop = caller_loop(executor_type, &st);
    *afut = NULL;
    if (loop == NULL) {
        return 0;
    }
    *afut = ftp_call_method_obj(loop, st->str_create_future, NULL, 0);
    if (*afut != NULL) {
        ftp_future_link_aio(fut, *afut, loop);
    }
    Py_DECREF(loop);
    return *afut != NULL ? 1 : -1;
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
ftp_aio_complete(ftp_state *st, PyObject *fut, PyObject *afut,
                 PyObject *loop)
{
    PyObject *r = NULL;
    if (call_bool(afut, st->str_done) == 1) {
        /* Cancelled by its awaiter: nothing to copy. */
        goto done;
    }
    PyErr_Clear();
    PyObject *args[] = {st->aio_set_state, afut, fut};
    r = ftp_call_method_obj(loop, st->str_call_soon_threadsafe, args, 3);
    if (r == NULL) {
        PyObject *exc = ftp_err_fetch();
        if (call_bool(loop, st->str_is_closed) != 1) {
            PyErr_Clear();
            ftp_log_exception("error", "exception calling callback for %r",
                              fut, exc);
        }
        /* A closed loop: nobody can receive the outcome. */
        PyErr_Clear();
        Py_XDECREF(exc);
    }
done:
    Py_XDECREF(r);
    Py_DECREF(afut);
    Py_DECREF(loop);
}

/* set_state(afut, fut), run by the loop: _copy_future_state(fut, afut). */
static PyObject *
set_state(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !ftp_future_check_type((PyObject *)Py_TYPE(args[1]))) {
        PyErr_SetString(PyExc_TypeError,
                        "set_state(asyncio_future, fastthreadpool.Future)");
        return NULL;
    }
    ftp_state *st = ftp_get_state(module);
    PyObject *afut = args[0], *fut = args[1], *value = NULL, *r = NULL;
    int done = call_bool(afut, st->str_done);
    if (done != 0) {
        /* Cancelled meanwhile (or an error): as _copy_future_state. */
        return done < 0 ? NULL : Py_NewRef(Py_None);
    }
    switch (ftp_future_outcome(fut, &value)) {
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
