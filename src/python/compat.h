/*
 * compat.h - what differs between the CPython versions and builds the
 * binding supports (3.9 and newer, with or without the GIL), gathered in
 * one place so that the other files use one spelling.
 *
 * Free-threaded builds (Py_GIL_DISABLED): nothing serialises the threads
 * for us, so shared state is guarded by the primitives below.  With the GIL
 * every one of them compiles to nothing: the GIL already serialises the
 * code they guard, which never releases it (see ftp.h, "Locking").
 */
#ifndef FTP_COMPAT_H
#define FTP_COMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdatomic.h>
#include <stdint.h>

#if PY_VERSION_HEX >= 0x030D0000
#  define ftp_is_finalizing() Py_IsFinalizing()
#else
#  define ftp_is_finalizing() _Py_IsFinalizing()
#endif

#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *
Py_NewRef(PyObject *o)
{
    Py_INCREF(o);
    return o;
}
static inline PyObject *
Py_XNewRef(PyObject *o)
{
    Py_XINCREF(o);
    return o;
}
static inline int
PyModule_AddObjectRef(PyObject *mod, const char *name, PyObject *value)
{
    Py_XINCREF(value);
    if (PyModule_AddObject(mod, name, value) < 0) {
        Py_XDECREF(value);
        return -1;
    }
    return 0;
}
#  define Py_TPFLAGS_IMMUTABLETYPE 0
#  define Py_TPFLAGS_DISALLOW_INSTANTIATION 0
#endif

/* The object a weak reference points to, as a new reference, or NULL
 * (no exception) if it is gone.  Before 3.13 the GIL makes the borrowed
 * reference safe to take. */
#if PY_VERSION_HEX < 0x030D0000
static inline PyObject *
ftp_weakref_get(PyObject *ref)
{
    PyObject *o = PyWeakref_GetObject(ref);
    return o == Py_None ? NULL : Py_NewRef(o);
}
#else
static inline PyObject *
ftp_weakref_get(PyObject *ref)
{
    PyObject *o = NULL;
    if (PyWeakref_GetRef(ref, &o) < 0) {
        PyErr_Clear();
    }
    return o;
}
#endif

/* Thread-local storage: C11 keyword, or the MSVC spelling. */
#if defined(_MSC_VER) && !defined(__clang__)
#  define FTP_THREAD_LOCAL __declspec(thread)
#else
#  define FTP_THREAD_LOCAL _Thread_local
#endif

/* ------------------------------------------------------------------------ */
/* Free-threading primitives                                                */
/* ------------------------------------------------------------------------ */

#ifdef Py_GIL_DISABLED
/* A small lock for private state: held for a few loads and stores, never
 * while calling Python code, blocking or taking another lock (see ftp.h). */
typedef PyMutex ftp_mutex;
#  define ftp_lock(m) PyMutex_Lock(m)
#  define ftp_unlock(m) PyMutex_Unlock(m)
#  define FTP_FREE_THREADED 1
#else
typedef struct { char unused; } ftp_mutex;
#  define ftp_lock(m) ((void)(m))
#  define ftp_unlock(m) ((void)(m))
#  define FTP_FREE_THREADED 0
#endif

/* Per-object critical sections (3.13+, a no-op with the GIL). */
#ifndef Py_BEGIN_CRITICAL_SECTION
#  define Py_BEGIN_CRITICAL_SECTION(op) {
#  define Py_END_CRITICAL_SECTION() }
#endif

/* Counters and flags that several threads read and write.  Relaxed C11
 * atomics: plain loads and stores on the machines we build for, so the GIL
 * build pays nothing; read-modify-write only where two threads may really
 * update at once (FTP_FREE_THREADED), a load and a store otherwise. */
static inline int
ftp_load_int(atomic_int *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

static inline void
ftp_store_int(atomic_int *p, int v)
{
    atomic_store_explicit(p, v, memory_order_relaxed);
}

/* Sequentially consistent without the GIL: a counter that a waiter reads
 * after announcing itself (see ftp_notify in ftp.h). */
static inline long long
ftp_add_llong(atomic_llong *p, long long n)
{
#if FTP_FREE_THREADED
    return atomic_fetch_add_explicit(p, n, memory_order_seq_cst) + n;
#else
    long long v = atomic_load_explicit(p, memory_order_relaxed) + n;
    atomic_store_explicit(p, v, memory_order_relaxed);
    return v;
#endif
}

#endif /* FTP_COMPAT_H */
