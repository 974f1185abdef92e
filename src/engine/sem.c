/*
 * sem.c - a counting semaphore.
 *
 * The permit count is an atomic integer: acquiring a free permit is one
 * compare-and-swap, releasing with nobody waiting is one atomic add.  Only
 * a thread that finds no permit takes the mutex and sleeps.  A permit is
 * only ever taken by a successful compare-and-swap from a positive value,
 * so the count never goes below zero: no waiter is admitted twice.
 */
#include <stdint.h>

#include "internal.h"

struct ftpool_sem {
    _Atomic int64_t value;      /* free permits, never negative */
    /* Threads inside the slow path.  Written under lock, read without it
     * by release(), which only takes the lock when it is non-zero. */
    _Atomic int64_t waiters;
    ftpool__mutex lock;         /* protects the sleep on cond */
    ftpool__cond cond;          /* signalled by release() */
    ftpool_allocator alloc;
};

int
ftpool_sem_create(int64_t value, ftpool_sem_t **sem_out)
{
    ftpool_allocator a;
    ftpool_sem_t *sem;

    if (sem_out == NULL || value < 0 || value > INT32_MAX) {
        return FTPOOL_EINVAL;
    }
    ftpool__default_allocator(&a);
    sem = ftpool__alloc(&a, sizeof(*sem));
    if (sem == NULL) {
        return FTPOOL_ENOMEM;
    }
    sem->alloc = a;
    atomic_init(&sem->value, value);
    atomic_init(&sem->waiters, 0);
    if (ftpool__mutex_init(&sem->lock) != 0) {
        ftpool__free(&a, sem);
        return FTPOOL_ENOMEM;
    }
    if (ftpool__cond_init(&sem->cond) != 0) {
        ftpool__mutex_destroy(&sem->lock);
        ftpool__free(&a, sem);
        return FTPOOL_ENOMEM;
    }
    *sem_out = sem;
    return FTPOOL_OK;
}

void
ftpool_sem_destroy(ftpool_sem_t *sem)
{
    ftpool_allocator a;

    if (sem == NULL) {
        return;
    }
    a = sem->alloc;
    ftpool__cond_destroy(&sem->cond);
    ftpool__mutex_destroy(&sem->lock);
    ftpool__free(&a, sem);
}

/* Takes a permit if one is free. */
static int
try_take(ftpool_sem_t *sem)
{
    int64_t v = atomic_load_explicit(&sem->value, memory_order_relaxed);

    while (v > 0) {
        if (atomic_compare_exchange_weak_explicit(
                &sem->value, &v, v - 1, memory_order_acquire,
                memory_order_relaxed)) {
            return 1;
        }
    }
    return 0;
}

int
ftpool_sem_try_acquire(ftpool_sem_t *sem)
{
    if (sem == NULL) {
        return FTPOOL_EINVAL;
    }
    return try_take(sem) ? FTPOOL_OK : FTPOOL_ETIMEDOUT;
}

int
ftpool_sem_acquire(ftpool_sem_t *sem, int64_t timeout_ns)
{
    int64_t deadline = 0;
    int rc = FTPOOL_OK;

    if (sem == NULL) {
        return FTPOOL_EINVAL;
    }
    if (try_take(sem)) {
        return FTPOOL_OK;
    }
    if (timeout_ns == 0) {
        return FTPOOL_ETIMEDOUT;
    }
    if (timeout_ns > 0) {
        deadline = ftpool__now_ns() + timeout_ns;
    }
    ftpool__mutex_lock(&sem->lock);
    /* Announce the wait before the last look at the count.  release() adds
     * permits before it reads waiters (both sequentially consistent), so
     * either it sees us and signals under the lock - which it cannot take
     * before we sleep - or our next try_take() sees its permits. */
    atomic_fetch_add(&sem->waiters, 1);
    while (!try_take(sem)) {
        if (timeout_ns < 0) {
            ftpool__cond_wait(&sem->cond, &sem->lock);
        }
        else if (ftpool__cond_timedwait(&sem->cond, &sem->lock, deadline)
                 != 0) {
            /* One last look: a permit may have come with the timeout. */
            if (!try_take(sem)) {
                rc = FTPOOL_ETIMEDOUT;
            }
            break;
        }
    }
    atomic_fetch_sub(&sem->waiters, 1);
    ftpool__mutex_unlock(&sem->lock);
    return rc;
}

int
ftpool_sem_release(ftpool_sem_t *sem, int64_t n)
{
    int64_t v, w;

    if (sem == NULL || n < 1 || n > INT32_MAX) {
        return FTPOOL_EINVAL;
    }
    v = atomic_load_explicit(&sem->value, memory_order_relaxed);
    do {
        if (v > INT32_MAX - n) {
            return FTPOOL_EINVAL;
        }
    } while (!atomic_compare_exchange_weak(&sem->value, &v, v + n));
    w = atomic_load(&sem->waiters);
    if (w > 0) {
        ftpool__mutex_lock(&sem->lock);
        if (n >= w) {
            ftpool__cond_broadcast(&sem->cond);
        }
        else {
            while (n-- > 0) {
                ftpool__cond_signal(&sem->cond);
            }
        }
        ftpool__mutex_unlock(&sem->lock);
    }
    return FTPOOL_OK;
}

int64_t
ftpool_sem_value(const ftpool_sem_t *sem)
{
    if (sem == NULL) {
        return 0;
    }
    /* The object is never const: the cast only drops the qualifier from
     * the pointer, as C11 atomic loads want a non-const object. */
    return atomic_load(&((ftpool_sem_t *)sem)->value);
}
