/*
 * timer.c - timers: a min-heap of deadlines and one thread that waits for
 * the earliest.
 *
 * The heap lives under the pool lock, next to the queue, so that firing a
 * timer (taking it off the heap and pushing its run to the queue front) is
 * one critical section.  The timer thread is started by the first timer and
 * is the only thread that sleeps on a deadline; it never runs a job, it only
 * queues runs.  Timer runs use the job node inside the timer, so firing
 * never allocates.
 */
#include "internal.h"

int64_t
ftpool_now_ns(void)
{
    return ftpool__now_ns();
}

/* ------------------------------------------------------------------------ */
/* The heap, ordered by (due, id): equal deadlines fire in arming order.    */
/* ------------------------------------------------------------------------ */

static int
earlier(const ftpool__timer *a, const ftpool__timer *b)
{
    return a->due < b->due || (a->due == b->due && a->run.id < b->run.id);
}

static void
heap_set(ftpool_t *pool, size_t i, ftpool__timer *t)
{
    pool->heap[i] = t;
    t->heap_pos = i;
}

static void
sift_up(ftpool_t *pool, size_t i)
{
    ftpool__timer *t = pool->heap[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;

        if (!earlier(t, pool->heap[parent])) {
            break;
        }
        heap_set(pool, i, pool->heap[parent]);
        i = parent;
    }
    heap_set(pool, i, t);
}

static void
sift_down(ftpool_t *pool, size_t i)
{
    ftpool__timer *t = pool->heap[i];
    size_t n = pool->heap_len;

    for (;;) {
        size_t child = 2 * i + 1;

        if (child >= n) {
            break;
        }
        if (child + 1 < n && earlier(pool->heap[child + 1],
                                     pool->heap[child])) {
            child++;
        }
        if (!earlier(pool->heap[child], t)) {
            break;
        }
        heap_set(pool, i, pool->heap[child]);
        i = child;
    }
    heap_set(pool, i, t);
}

static void
heap_remove(ftpool_t *pool, ftpool__timer *t)
{
    size_t i = t->heap_pos;
    ftpool__timer *last = pool->heap[--pool->heap_len];

    t->heap_pos = FTPOOL__UNARMED;
    if (last != t) {
        heap_set(pool, i, last);
        sift_down(pool, i);
        sift_up(pool, last->heap_pos);
    }
}

/* ------------------------------------------------------------------------ */
/* References                                                               */
/* ------------------------------------------------------------------------ */

static ftpool__timer *
unref_locked(ftpool_t *pool, ftpool__timer *t)
{
    if (--t->refs > 0) {
        return NULL;
    }
    pool->ntimers--;
    t->next_done = NULL;
    return t;
}

ftpool__timer *
ftpool__timer_run_done_locked(ftpool_t *pool, ftpool__timer *t, int ran)
{
    if (ran && t->interval == 0) {
        t->consumed = 1;
    }
    return unref_locked(pool, t);
}

void
ftpool__timer_finish(ftpool_t *pool, ftpool__timer *list)
{
    while (list != NULL) {
        ftpool__timer *next = list->next_done;

        if (!list->consumed && list->drop != NULL) {
            list->drop(list->run.arg);
        }
        ftpool__free(&pool->alloc, list);
        list = next;
    }
}

ftpool__timer *
ftpool__timer_disarm_all_locked(ftpool_t *pool, size_t *count)
{
    ftpool__timer *done = NULL;
    size_t i;

    for (i = 0; i < pool->heap_len; i++) {
        ftpool__timer *t = pool->heap[i];

        t->heap_pos = FTPOOL__UNARMED;
        t = unref_locked(pool, t);
        if (t != NULL) {
            t->next_done = done;
            done = t;
        }
    }
    *count = pool->heap_len;
    pool->heap_len = 0;
    return done;
}

/* ------------------------------------------------------------------------ */
/* The timer thread                                                         */
/* ------------------------------------------------------------------------ */

/* The due time after `due` for a periodic timer fired at `now`: one interval
 * later, or - if the thread was late by whole intervals - the first due time
 * after now.  The skipped runs would only have found the run still queued.
 * Saturates instead of overflowing. */
static int64_t
next_due(int64_t due, int64_t interval, int64_t now)
{
    int64_t skip;

    if (due > INT64_MAX - interval) {
        return INT64_MAX;
    }
    due += interval;
    if (due > now) {
        return due;
    }
    skip = (now - due) / interval + 1;
    if (skip > (INT64_MAX - due) / interval) {
        return INT64_MAX;
    }
    return due + skip * interval;
}

/* Takes every due timer off the heap (or re-arms it) and chains its run.
 * While the pool is closed runs are skipped: a one-shot timer then ends
 * (its drop is due); a periodic one waits for its next due time. */
static size_t
fire_due_locked(ftpool_t *pool, int64_t now, ftpool__job **first,
                ftpool__job **last, ftpool__timer **done)
{
    int closed = atomic_load_explicit(&pool->closed, memory_order_relaxed);
    size_t n = 0;

    while (pool->heap_len > 0 && pool->heap[0]->due <= now) {
        ftpool__timer *t = pool->heap[0];

        if (t->interval > 0) {
            t->due = next_due(t->due, t->interval, now);
            sift_down(pool, 0);
            /* A run still queued is not queued twice. */
            if (closed || t->queued) {
                continue;
            }
            t->refs++;
        }
        else {
            heap_remove(pool, t);
            if (closed) {
                t = unref_locked(pool, t);
                if (t != NULL) {
                    t->next_done = *done;
                    *done = t;
                }
                continue;
            }
            /* The armed reference now belongs to the run. */
        }
        t->queued = 1;
        t->run.next = NULL;
        if (*last != NULL) {
            (*last)->next = &t->run;
        }
        else {
            *first = &t->run;
        }
        *last = &t->run;
        n++;
    }
    return n;
}

static void
timer_main(void *arg)
{
    ftpool_t *pool = arg;

    ftpool__mutex_lock(&pool->lock);
    while (!pool->destroying) {
        ftpool__job *first = NULL, *last = NULL;
        ftpool__timer *done = NULL;
        unsigned spawn = 0;
        int64_t now;
        size_t n;

        /* Woken by a new earliest timer or by ftpool_destroy(). */
        if (pool->heap_len == 0) {
            ftpool__cond_wait(&pool->timer_cond, &pool->lock);
            continue;
        }
        now = ftpool__now_ns();
        if (pool->heap[0]->due > now) {
            ftpool__cond_timedwait(&pool->timer_cond, &pool->lock,
                                   pool->heap[0]->due);
            continue;
        }
        n = fire_due_locked(pool, now, &first, &last, &done);
        if (n > 0) {
            spawn = ftpool__push_front_locked(pool, first, last, n);
        }
        /* A run not queued twice may still wait for a worker (one queued
         * while a spawn failed found none). */
        spawn += ftpool__cover_locked(pool, 0);
        if (spawn > 0 || done != NULL) {
            ftpool__mutex_unlock(&pool->lock);
            if (spawn > 0) {
                ftpool__spawn_workers(pool, spawn);
            }
            ftpool__timer_finish(pool, done);
            ftpool__mutex_lock(&pool->lock);
        }
    }
    ftpool__mutex_unlock(&pool->lock);
}

void
ftpool__timer_stop_thread(ftpool_t *pool)
{
    int state;

    ftpool__mutex_lock(&pool->lock);
    state = pool->timer_thread_state;
    ftpool__cond_signal(&pool->timer_cond);
    ftpool__mutex_unlock(&pool->lock);
    if (state == 2) {
        ftpool__thread_join(&pool->timer_thread);
    }
}

/* ------------------------------------------------------------------------ */
/* Public functions                                                         */
/* ------------------------------------------------------------------------ */

int
ftpool_timer_at(ftpool_t *pool, int64_t due_ns, int64_t interval_ns,
                ftpool_fn fn, ftpool_fn drop, void *arg, uint64_t *id_out)
{
    ftpool__timer *t;
    int rc = FTPOOL_OK;

    if (pool == NULL || fn == NULL || interval_ns < 0) {
        return FTPOOL_EINVAL;
    }
    t = ftpool__alloc(&pool->alloc, sizeof(*t));
    if (t == NULL) {
        return FTPOOL_ENOMEM;
    }
    t->run.next = NULL;
    t->run.fn = fn;
    t->run.drop = NULL;
    t->run.arg = arg;
    t->run.timer = t;
    t->due = due_ns;
    t->interval = interval_ns;
    t->drop = drop;
    t->heap_pos = FTPOOL__UNARMED;
    t->refs = 1;
    t->queued = 0;
    t->consumed = 0;
    t->next_done = NULL;

    ftpool__mutex_lock(&pool->lock);
    /* Everything that can fail is done before the timer is armed; both
     * steps unlock, so the loop checks again afterwards. */
    for (;;) {
        if (atomic_load_explicit(&pool->closed, memory_order_relaxed)) {
            rc = FTPOOL_ESTOPPED;
            break;
        }
        if (pool->heap_len == pool->heap_cap) {
            size_t cap = pool->heap_cap ? 2 * pool->heap_cap : 16;
            ftpool__timer **heap, **spare;

            ftpool__mutex_unlock(&pool->lock);
            heap = ftpool__alloc(&pool->alloc, cap * sizeof(*heap));
            ftpool__mutex_lock(&pool->lock);
            if (heap == NULL) {
                rc = FTPOOL_ENOMEM;
                break;
            }
            spare = heap;
            if (pool->heap_cap < cap) {
                size_t i;

                for (i = 0; i < pool->heap_len; i++) {
                    heap[i] = pool->heap[i];
                }
                spare = pool->heap;
                pool->heap = heap;
                pool->heap_cap = cap;
            }
            ftpool__mutex_unlock(&pool->lock);
            ftpool__free(&pool->alloc, spare);
            ftpool__mutex_lock(&pool->lock);
            continue;
        }
        if (pool->timer_thread_state == 0) {
            int started;

            pool->timer_thread_state = 1;
            pool->timer_thread.fn = timer_main;
            pool->timer_thread.arg = pool;
            ftpool__mutex_unlock(&pool->lock);
            started = ftpool__thread_start(&pool->timer_thread) == 0;
            ftpool__mutex_lock(&pool->lock);
            pool->timer_thread_state = started ? 2 : 0;
            if (!started) {
                rc = FTPOOL_ENOMEM;
                break;
            }
            continue;
        }
        break;
    }
    if (rc != FTPOOL_OK) {
        ftpool__mutex_unlock(&pool->lock);
        ftpool__free(&pool->alloc, t);
        return rc;
    }
    /* Ids are shared with jobs, which take theirs under tail_lock. */
    ftpool__spin_lock(&pool->tail_lock);
    t->run.id = pool->next_id++;
    ftpool__spin_unlock(&pool->tail_lock);
    pool->ntimers++;
    t->heap_pos = pool->heap_len++;
    pool->heap[t->heap_pos] = t;
    sift_up(pool, t->heap_pos);
    if (t->heap_pos == 0) {
        /* A new earliest deadline: the timer thread sleeps on the old one. */
        ftpool__cond_signal(&pool->timer_cond);
    }
    /* Before unlocking: a run may start at once and read the id. */
    if (id_out != NULL) {
        *id_out = t->run.id;
    }
    ftpool__mutex_unlock(&pool->lock);
    return FTPOOL_OK;
}

int
ftpool_timer_after(ftpool_t *pool, int64_t delay_ns, int64_t interval_ns,
                   ftpool_fn fn, ftpool_fn drop, void *arg, uint64_t *id_out)
{
    int64_t now = ftpool__now_ns();
    int64_t due;

    if (delay_ns < 0) {
        delay_ns = 0;
    }
    due = delay_ns > INT64_MAX - now ? INT64_MAX : now + delay_ns;
    return ftpool_timer_at(pool, due, interval_ns, fn, drop, arg, id_out);
}

int
ftpool_timer_cancel(ftpool_t *pool, uint64_t timer_id)
{
    ftpool__timer *t = NULL;
    size_t i;

    if (pool == NULL) {
        return FTPOOL_EINVAL;
    }
    ftpool__mutex_lock(&pool->lock);
    /* A linear search of the armed timers: there are few of them. */
    for (i = 0; i < pool->heap_len; i++) {
        if (pool->heap[i]->run.id == timer_id) {
            t = pool->heap[i];
            break;
        }
    }
    if (t == NULL) {
        ftpool__mutex_unlock(&pool->lock);
        return FTPOOL_ENOTFOUND;
    }
    heap_remove(pool, t);
    t = unref_locked(pool, t);
    ftpool__mutex_unlock(&pool->lock);
    ftpool__timer_finish(pool, t);
    return FTPOOL_OK;
}

size_t
ftpool_timer_cancel_all(ftpool_t *pool)
{
    ftpool__timer *done;
    size_t n;

    if (pool == NULL) {
        return 0;
    }
    ftpool__mutex_lock(&pool->lock);
    done = ftpool__timer_disarm_all_locked(pool, &n);
    ftpool__mutex_unlock(&pool->lock);
    ftpool__timer_finish(pool, done);
    return n;
}
