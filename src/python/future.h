/* The executor's Future (future.c): a concurrent.futures.Future in C. */
#ifndef FTP_FUTURE_H
#define FTP_FUTURE_H

#include <Python.h>

/* Creates the Future type (a subclass of concurrent.futures.Future), adds
 * it to the module as `Future` and returns a new reference to it, or NULL
 * with an exception set. */
PyTypeObject *ftp_future_create_type(PyObject *module);

/* 1 if `type` is the Future type made above or a subclass of it. */
int ftp_future_check_type(PyObject *type);

/* A new pending future of `type` (the type made above or a subclass) that
 * will run fn(*args, **kwargs); args is a tuple, kwargs a dict or NULL.
 * No lock or condition is allocated. */
PyObject *ftp_future_new_call(PyTypeObject *type, PyObject *fn,
                              PyObject *args, PyObject *kwargs);

/* Runs the future's call in the current thread if the future is still
 * pending, and completes it with the result or the exception.  A cancelled
 * future is marked as notified instead.  Never fails: errors raised by
 * callbacks are logged as the standard library does.  GIL held. */
void ftp_future_run(PyObject *fut);

/* Links a pending future to the asyncio future `afut` of `loop`, which it
 * completes when it is done, and which, cancelled, cancels it before it
 * runs (aiolink.c).  Only for futures that nobody else sees. */
void ftp_future_link_aio(PyObject *fut, PyObject *afut, PyObject *loop);

/* The outcome of a future: *value is a new reference to the result or the
 * exception, NULL otherwise. */
enum {
    FTP_OUTCOME_PENDING,
    FTP_OUTCOME_RESULT,
    FTP_OUTCOME_EXCEPTION,
    FTP_OUTCOME_CANCELLED
};
int ftp_future_outcome(PyObject *fut, PyObject **value);

/* Completes a pending future with `exc` (not run) if it is not done yet.
 * Used when the executor is broken.  GIL held. */
void ftp_future_fail(PyObject *fut, PyObject *exc);

/* Cancels a pending future and notifies its waiters, for work that will
 * never run (dropped from the queue).  GIL held. */
void ftp_future_drop(PyObject *fut);

/* The pending exception as one object, its traceback attached (a new
 * reference, NULL if none is set); ftp_err_restore() raises it again
 * (stealing it; NULL does nothing). */
PyObject *ftp_err_fetch(void);
void ftp_err_restore(PyObject *exc);

/* Logs `msg` (with `arg` as its %-argument if not NULL) and the exception
 * `exc` at `level` ("error", "critical") on the concurrent.futures logger,
 * as the standard library's executors do. */
void ftp_log_exception(const char *level, const char *msg, PyObject *arg,
                       PyObject *exc);

#endif
