/*
 * alloc.c - the process-wide allocator and error strings.
 */
#include <stdlib.h>

#include "internal.h"

static void *
std_alloc(size_t size, void *ctx)
{
    (void)ctx;
    return malloc(size);
}

static void
std_free(void *ptr, void *ctx)
{
    (void)ctx;
    free(ptr);
}

/* A copy, so that the caller's struct need not outlive the call.  Set before
 * pools are created (see ftpool.h), hence no lock.  Each pool and semaphore
 * keeps its own copy, so memory is always freed by the allocator that
 * allocated it even if this one changes later. */
static ftpool_allocator process_allocator = {std_alloc, std_free, NULL};

void
ftpool_set_allocator(const ftpool_allocator *allocator)
{
    if (allocator == NULL || allocator->alloc == NULL
            || allocator->free == NULL) {
        process_allocator.alloc = std_alloc;
        process_allocator.free = std_free;
        process_allocator.ctx = NULL;
    }
    else {
        process_allocator = *allocator;
    }
}

void
ftpool__default_allocator(ftpool_allocator *out)
{
    *out = process_allocator;
}

const char *
ftpool_strerror(int err)
{
    switch (err) {
    case FTPOOL_OK:
        return "success";
    case FTPOOL_ENOMEM:
        return "out of memory";
    case FTPOOL_EINVAL:
        return "invalid argument";
    case FTPOOL_ESTOPPED:
        return "pool is closed";
    case FTPOOL_ETIMEDOUT:
        return "timed out";
    case FTPOOL_ENOTFOUND:
        return "no such job or timer";
    case FTPOOL_ESPAWN:
        return "could not start a worker";
    case FTPOOL_EBUSY:
        return "operation not allowed from a worker of the pool";
    default:
        return "unknown error";
    }
}
