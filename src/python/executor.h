/*
 * executor.h - names shared by the files of the concurrent.futures
 * executor: executor.c (ThreadPoolExecutor), future.c (its Future) and
 * aiolink.c (asyncio's run_in_executor() without a Future in between).
 * The dependencies run one way: executor.c -> future.c -> aiolink.c.
 */
#ifndef FTP_EXECUTOR_H
#define FTP_EXECUTOR_H

#include "ftp.h"

/* The outcome of a future. */
enum {
    FTP_OUTCOME_PENDING,
    FTP_OUTCOME_RESULT,
    FTP_OUTCOME_EXCEPTION,
    FTP_OUTCOME_CANCELLED
};

/* ---- future.c ----------------------------------------------------------- */

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
 * callbacks are logged as the standard library does. */
void ftp_future_run(PyObject *fut);

/* Links a pending future to the asyncio future `afut` of `loop`, which it
 * completes when it is done, and which, cancelled, cancels it before it
 * runs.  Only for futures that nobody else sees. */
void ftp_future_link_aio(PyObject *fut, PyObject *afut, PyObject *loop);

/* Completes a pending future with `exc` (not run) if it is not done yet.
 * Used when the executor is broken. */
void ftp_future_fail(PyObject *fut, PyObject *exc);

/* Cancels a pending future and notifies its waiters, for work that will
 * never run (dropped from the queue). */
void ftp_future_drop(PyObject *fut);

/* Logs `msg` (with `arg` as its %-argument if not NULL) and the exception
 * `exc` at `level` ("error", "critical") on the concurrent.futures logger,
 * as the standard library's executors do. */
void ftp_log_exception(const char *level, const char *msg, PyObject *arg,
                       PyObject *exc);

/* ---- aiolink.c ---------------------------------------------------------- */

/* If the Python code calling submit() (on an executor of `executor_type`)
 * is asyncio's BaseEventLoop.run_in_executor: makes its loop's asyncio
 * future and returns 1 with new references in *afut and *loop.  0 for any
 * other caller; -1 with an exception set if the loop could not make a
 * future. */
int ftp_aio_caller_future(PyTypeObject *executor_type, PyObject **afut,
                          PyObject **loop);
/* afut.cancelled(); errors are reported as unraisable and read as 0. */
int ftp_aio_cancelled(ftp_state *st, PyObject *afut);
/* Completes the asyncio future `afut` on `loop` (both references stolen)
 * with an outcome (FTP_OUTCOME_*; `value` the result or the exception,
 * borrowed), from any thread.  Never fails. */
void ftp_aio_complete(ftp_state *st, int outcome, PyObject *value,
                      PyObject *afut, PyObject *loop);

#endif /* FTP_EXECUTOR_H */
