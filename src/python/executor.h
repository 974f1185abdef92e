/* The concurrent.futures executor and its Future (executor.c, future.c). */
#ifndef FTP_EXECUTOR_H
#define FTP_EXECUTOR_H

#include <Python.h>

/* Adds ThreadPoolExecutor (and its Future type) to the module.  Called from
 * the module's exec slot; returns 0 on success, -1 with an exception set. */
int ftp_executor_exec(PyObject *module);

#endif
