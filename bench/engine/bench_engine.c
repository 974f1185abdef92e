/*
 * bench_engine.c - empty C jobs through ftpool, GLib's GThreadPool and
 * libuv's uv_queue_work, side by side in one run.
 *
 * Throughput: N jobs submitted from the main thread, each an empty function
 * that increments an atomic counter; the time from just before the first
 * submit until every job has run.  The job that brings the counter to N
 * posts a semaphore the main thread waits on (the same code for ftpool and
 * GLib).  libuv has no way to learn that the jobs ran other than its loop:
 * its figure is the full submit -> completed time, i.e. until uv_run() has
 * called every after_work callback on the main thread; the time at which the
 * last work callback ran is reported beside it.
 *
 * Several submitters: the same N jobs submitted by S threads at once, each
 * taking chunks of 1000 submissions from a shared counter until none is
 * left, started and waiting at a gate before the clock starts.  ftpool and
 * GLib are called from each thread (g_thread_pool_push() is thread-safe).
 * uv_queue_work() may only be called on the loop's thread, so a libuv
 * program whose jobs come from other threads hands them to the loop: here
 * each submitter pushes its request onto a lock-free stack and calls
 * uv_async_send() (the one thread-safe libuv call, which coalesces wake-ups
 * while one is pending); the loop's async callback takes the whole stack and
 * calls uv_queue_work() for each request, in each submitter's order.
 *
 * Latency: one job submitted while the workers sleep (after a pause); the
 * time from just before the submit to the first instruction of the job
 * (CLOCK_MONOTONIC in both threads).  Median and p99 over many samples.
 *
 * Every measurement is repeated in rounds, the competitors interleaved
 * within a round; a figure is the median over rounds, with min-max.
 *
 * UV_THREADPOOL_SIZE is read once per process, so every libuv measurement
 * runs in a child process (this program re-executed with --child-libuv).
 * Thread start-up is kept out of every timing: each pool runs a warm-up
 * that starts all its workers first.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <glib.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "ftpool.h"

extern char **environ;

#define MAX_ROUNDS 64
#define MAX_SUBS 3          /* submitter counts per run: 1, 2, 4 */
#define MAX_SUBMITTERS 64   /* threads in one measurement */

static struct {
    long n;             /* jobs per throughput measurement */
    int rounds;
    long lat_iters;     /* samples per latency measurement */
    long pause_us;      /* idle time before each latency sample */
    int do_tp, do_lat;
    int use_ftpool, use_glib, use_libuv;
    unsigned workers[2];
    int nworkers;
    unsigned subs[MAX_SUBS];    /* submitting threads, ascending */
    int nsubs;
    const char *json;
} opt = {
    2000000, 3, 20000, 200, 1, 1, 1, 1, 1, {1, 2}, 2, {1, 2, 4}, 3, NULL
};

static void
die(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fprintf(stderr, "bench_engine: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static inline int64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time of the whole process (all threads), in ns: less sensitive than
 * wall time to other programs on a shared machine. */
static inline int64_t
cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
pause_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ------------------------------------------------------------------------ */
/* The jobs                                                                 */
/* ------------------------------------------------------------------------ */

static atomic_long counter;     /* jobs run in the current measurement */
static long target;             /* jobs in the current measurement */
static sem_t done;              /* posted by the job that reaches target */
static _Atomic int64_t job_start_ns;    /* latency job: its first clock */
static _Atomic int64_t last_run_ns;     /* libuv: when the last job ran */

static inline void
count_job(void)
{
    if (atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed) + 1
        == target)
        sem_post(&done);
}

static void
ftpool_job(void *arg)
{
    (void)arg;
    count_job();
}

static void
glib_job(gpointer data, gpointer user_data)
{
    (void)data;
    (void)user_data;
    count_job();
}

static void
latency_job(void)
{
    atomic_store_explicit(&job_start_ns, now_ns(), memory_order_relaxed);
    sem_post(&done);
}

static void
ftpool_latency_job(void *arg)
{
    (void)arg;
    latency_job();
}

static void
glib_latency_job(gpointer data, gpointer user_data)
{
    (void)data;
    (void)user_data;
    latency_job();
}

/* A job that holds its worker for a moment, so a warm-up of W of them
 * starts W workers. */
static void
warm_job(void)
{
    pause_us(2000);
    count_job();
}

static void
ftpool_warm_job(void *arg)
{
    (void)arg;
    warm_job();
}

static void
glib_warm_job(gpointer data, gpointer user_data)
{
    (void)data;
    (void)user_data;
    warm_job();
}

static void
arm(long n)
{
    atomic_store(&counter, 0);
    target = n;
}

/* Woken by the job that brings the counter to target (or by the latency
 * job). */
static void
wait_done(void)
{
    while (sem_wait(&done) < 0 && errno == EINTR)
        ;
}

/* ------------------------------------------------------------------------ */
/* Submitting threads                                                       */
/* ------------------------------------------------------------------------ */

/* Submitting threads share the n submissions submit(pool, i), i in
 * [0, n): each takes the next CHUNK of them from a shared counter until
 * none is left, so that a thread the scheduler leaves waiting does not hold
 * the end of the run back while the others are done (a fixed share each
 * would time the slowest thread, not the pool).  The threads are started
 * before the clock and wait at the gate, so that the measurement holds no
 * thread creation. */
#define CHUNK 1000

typedef struct submitter {
    pthread_t thread;
    void (*submit)(void *pool, long i);
    void *pool;
    long n;
} submitter;

static atomic_long next_chunk;  /* first submission not yet taken */

/* The gate: the submitters wait for it to open by polling (and yielding),
 * not asleep, so that waking them up is not part of the measurement. */
static atomic_int gate_open;
static sem_t ready;     /* posted by each submitter once it waits */

static void *
submitter_main(void *arg)
{
    submitter *s = arg;

    sem_post(&ready);
    while (!atomic_load_explicit(&gate_open, memory_order_acquire))
        sched_yield();
    for (;;) {
        long first = atomic_fetch_add(&next_chunk, CHUNK);
        long end = first + CHUNK < s->n ? first + CHUNK : s->n;

        if (first >= s->n)
            break;
        for (long i = first; i < end; i++)
            s->submit(s->pool, i);
    }
    return NULL;
}

/* Starts `subs` submitters sharing n submissions; returns once all wait
 * at the gate. */
static void
submitters_start(submitter *s, unsigned subs, void (*submit)(void *, long),
                 void *pool, long n)
{
    if (subs > MAX_SUBMITTERS)
        die("at most %d submitters", MAX_SUBMITTERS);
    atomic_store(&gate_open, 0);
    atomic_store(&next_chunk, 0);
    for (unsigned k = 0; k < subs; k++) {
        s[k].submit = submit;
        s[k].pool = pool;
        s[k].n = n;
        int rc = pthread_create(&s[k].thread, NULL, submitter_main, &s[k]);
        if (rc != 0)
            die("pthread_create: %s", strerror(rc));
    }
    for (unsigned k = 0; k < subs; k++)
        while (sem_wait(&ready) < 0 && errno == EINTR)
            ;
}

static void
submitters_go(void)
{
    atomic_store_explicit(&gate_open, 1, memory_order_release);
}

static void
submitters_join(submitter *s, unsigned subs)
{
    for (unsigned k = 0; k < subs; k++)
        pthread_join(s[k].thread, NULL);
}

/* ------------------------------------------------------------------------ */
/* Samples                                                                  */
/* ------------------------------------------------------------------------ */

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static int
cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Sorts s and returns the value at quantile q (nearest rank). */
static int64_t
quantile(int64_t *s, long n, double q)
{
    long i = (long)(q * (double)n);

    qsort(s, (size_t)n, sizeof(*s), cmp_i64);
    if (i >= n)
        i = n - 1;
    return s[i];
}

typedef struct summary {
    double median, min, max;
} summary;

static summary
summarise(const double *v, int n)
{
    double s[MAX_ROUNDS];
    summary r = {0, 0, 0};

    if (n == 0)
        return r;
    memcpy(s, v, (size_t)n * sizeof(*v));
    qsort(s, (size_t)n, sizeof(*s), cmp_dbl);
    r.min = s[0];
    r.max = s[n - 1];
    r.median = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    return r;
}

typedef struct throughput {
    double jobs_per_s;
    double cpu_ns_per_job;
} throughput;

static throughput
throughput_of(long n, int64_t t0, int64_t t1, int64_t c0, int64_t c1)
{
    throughput r;

    r.jobs_per_s = (double)n * 1e9 / (double)(t1 - t0);
    r.cpu_ns_per_job = (double)(c1 - c0) / (double)n;
    return r;
}

typedef struct latency {
    double median_ns, p99_ns;
} latency;

static int64_t *samples;

static latency
latency_of(long iters)
{
    latency l;

    l.p99_ns = (double)quantile(samples, iters, 0.99);
    l.median_ns = (double)quantile(samples, iters, 0.5);
    return l;
}

/* ------------------------------------------------------------------------ */
/* ftpool                                                                   */
/* ------------------------------------------------------------------------ */

static void
ftpool_check(int rc, const char *what)
{
    if (rc != FTPOOL_OK)
        die("ftpool: %s: %s", what, ftpool_strerror(rc));
}

static ftpool_t *
ftpool_start(unsigned workers)
{
    ftpool_options o = {0};
    ftpool_t *pool;

    o.max_workers = workers;
    ftpool_check(ftpool_create(&o, &pool), "create");
    arm(workers);
    for (unsigned i = 0; i < workers; i++)
        ftpool_check(ftpool_submit(pool, ftpool_warm_job, NULL, NULL),
                     "submit");
    wait_done();
    return pool;
}

static void
ftpool_submit_one(void *pool, long i)
{
    int rc = ftpool_submit(pool, ftpool_job, NULL, NULL);

    (void)i;
    if (rc != FTPOOL_OK)
        ftpool_check(rc, "submit");
}

/* n jobs submitted by the main thread (subs == 1) or by subs threads. */
static throughput
ftpool_throughput(unsigned workers, unsigned subs, long n)
{
    ftpool_t *pool = ftpool_start(workers);
    submitter s[MAX_SUBMITTERS];
    int64_t t0, t1, c0, c1;

    arm(n);
    if (subs > 1)
        submitters_start(s, subs, ftpool_submit_one, pool, n);
    c0 = cpu_ns();
    t0 = now_ns();
    if (subs > 1) {
        submitters_go();
    } else {
        for (long i = 0; i < n; i++)
            ftpool_submit_one(pool, i);
    }
    wait_done();
    t1 = now_ns();
    c1 = cpu_ns();
    if (subs > 1)
        submitters_join(s, subs);
    ftpool_check(ftpool_destroy(pool), "destroy");
    return throughput_of(n, t0, t1, c0, c1);
}

static latency
ftpool_latency(unsigned workers, long iters)
{
    ftpool_t *pool = ftpool_start(workers);

    for (long i = 0; i < iters; i++) {
        pause_us(opt.pause_us);
        int64_t t0 = now_ns();
        ftpool_check(ftpool_submit(pool, ftpool_latency_job, NULL, NULL),
                     "submit");
        wait_done();
        samples[i] = atomic_load(&job_start_ns) - t0;
    }
    ftpool_check(ftpool_destroy(pool), "destroy");
    return latency_of(iters);
}

/* ------------------------------------------------------------------------ */
/* GLib                                                                     */
/* ------------------------------------------------------------------------ */

/* g_thread_pool_push() refuses NULL data. */
#define GLIB_DATA GINT_TO_POINTER(1)

static GThreadPool *
glib_start(GFunc fn, unsigned workers)
{
    GError *err = NULL;
    GThreadPool *pool = g_thread_pool_new(fn, NULL, (gint)workers, FALSE,
                                          &err);

    if (pool == NULL)
        die("g_thread_pool_new: %s", err ? err->message : "?");
    return pool;
}

/* Starts the workers of a GLib pool.  GLib binds the job function to the
 * pool, so the warm-up uses a pool of its own; its threads go back to
 * GLib's shared idle list when it is freed, and the measured pool takes
 * them from there. */
static void
glib_warm(unsigned workers)
{
    GThreadPool *warm = glib_start(glib_warm_job, workers);

    arm(workers);
    for (unsigned i = 0; i < workers; i++)
        g_thread_pool_push(warm, GLIB_DATA, NULL);
    wait_done();
    g_thread_pool_free(warm, FALSE, TRUE);
}

static void
glib_submit_one(void *pool, long i)
{
    (void)i;
    g_thread_pool_push(pool, GLIB_DATA, NULL);
}

static throughput
glib_throughput(unsigned workers, unsigned subs, long n)
{
    GThreadPool *pool;
    submitter s[MAX_SUBMITTERS];
    int64_t t0, t1, c0, c1;

    glib_warm(workers);
    pool = glib_start(glib_job, workers);
    arm(n);
    if (subs > 1)
        submitters_start(s, subs, glib_submit_one, pool, n);
    c0 = cpu_ns();
    t0 = now_ns();
    if (subs > 1) {
        submitters_go();
    } else {
        for (long i = 0; i < n; i++)
            glib_submit_one(pool, i);
    }
    wait_done();
    t1 = now_ns();
    c1 = cpu_ns();
    if (subs > 1)
        submitters_join(s, subs);
    g_thread_pool_free(pool, FALSE, TRUE);
    return throughput_of(n, t0, t1, c0, c1);
}

static latency
glib_latency(unsigned workers, long iters)
{
    GThreadPool *pool;

    glib_warm(workers);
    pool = glib_start(glib_latency_job, workers);
    for (long i = 0; i < iters; i++) {
        pause_us(opt.pause_us);
        int64_t t0 = now_ns();
        g_thread_pool_push(pool, GLIB_DATA, NULL);
        wait_done();
        samples[i] = atomic_load(&job_start_ns) - t0;
    }
    g_thread_pool_free(pool, FALSE, TRUE);
    return latency_of(iters);
}

/* ------------------------------------------------------------------------ */
/* libuv (in a child process)                                               */
/* ------------------------------------------------------------------------ */

static void
uv_count_work(uv_work_t *req)
{
    (void)req;
    if (atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed) + 1
        == target)
        atomic_store_explicit(&last_run_ns, now_ns(), memory_order_relaxed);
}

static void
uv_warm_work(uv_work_t *req)
{
    (void)req;
    pause_us(2000);
}

static void
uv_latency_work(uv_work_t *req)
{
    (void)req;
    atomic_store_explicit(&job_start_ns, now_ns(), memory_order_relaxed);
}

static long after_work_calls;

static void
uv_after(uv_work_t *req, int status)
{
    (void)req;
    if (status != 0)
        die("libuv: after_work status %d", status);
    after_work_calls++;
}

/* A request that a submitting thread hands to the loop's thread. */
typedef struct uv_job {
    uv_work_t req;
    struct uv_job *next;
} uv_job;

/* Pushed by the submitters, taken whole by the loop (push and take-all
 * only: no ABA problem). */
static _Atomic(uv_job *) handoff;
static uv_async_t handoff_async;

static void
uv_handoff_push(void *jobs, long i)
{
    uv_job *j = &((uv_job *)jobs)[i];
    uv_job *head = atomic_load_explicit(&handoff, memory_order_relaxed);

    do {
        j->next = head;
    } while (!atomic_compare_exchange_weak_explicit(
                 &handoff, &head, j, memory_order_release,
                 memory_order_relaxed));
    if (uv_async_send(&handoff_async) != 0)
        die("uv_async_send failed");
}

/* On the loop's thread: queues every request handed over so far. */
static void
uv_handoff_cb(uv_async_t *async)
{
    uv_job *list = atomic_exchange_explicit(&handoff, NULL,
                                            memory_order_acquire);
    uv_job *fifo = NULL;

    /* The stack is newest first: reversed, each submitter's requests are
     * queued in the order it pushed them. */
    while (list != NULL) {
        uv_job *next = list->next;
        list->next = fifo;
        fifo = list;
        list = next;
    }
    for (; fifo != NULL; fifo = fifo->next)
        if (uv_queue_work(async->loop, &fifo->req, uv_count_work, uv_after)
            != 0)
            die("uv_queue_work failed");
}

/* Throughput with subs submitting threads handing requests to the loop
 * (see the top of this file); the loop runs on the calling thread. */
static void
libuv_throughput_mt(uv_loop_t *loop, unsigned subs, long n,
                    int64_t t[4])
{
    submitter s[MAX_SUBMITTERS];
    uv_job *jobs = calloc((size_t)n, sizeof(*jobs));

    if (jobs == NULL)
        die("libuv: out of memory");
    memset(jobs, 0, (size_t)n * sizeof(*jobs));
    if (uv_async_init(loop, &handoff_async, uv_handoff_cb) != 0)
        die("uv_async_init failed");
    arm(n);
    after_work_calls = 0;
    submitters_start(s, subs, uv_handoff_push, jobs, n);
    t[2] = cpu_ns();
    t[0] = now_ns();
    submitters_go();
    /* The async handle keeps each round blocking until there is news. */
    while (after_work_calls < n)
        uv_run(loop, UV_RUN_ONCE);
    t[1] = now_ns();
    t[3] = cpu_ns();
    /* A submitter may still be inside its last uv_async_send(). */
    submitters_join(s, subs);
    uv_close((uv_handle_t *)&handoff_async, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    free(jobs);
}

/* Runs in the child: prints "<jobs/s completed> <jobs/s last work ran>
 * <CPU ns per job>" or "<median ns> <p99 ns> 0". */
static int
libuv_child(const char *mode, unsigned workers, unsigned subs, long n)
{
    uv_loop_t *loop = uv_default_loop();
    uv_work_t warm[64];
    uv_work_t *reqs;
    long nreq = strcmp(mode, "tp") == 0 && subs == 1 ? n : 1;

    /* Every request of a throughput run is alive until the loop has
     * completed it, so they are all allocated (and touched) up front, off
     * the clock. */
    reqs = calloc((size_t)nreq, sizeof(*reqs));
    if (reqs == NULL)
        die("libuv: out of memory");
    memset(reqs, 0, (size_t)nreq * sizeof(*reqs));

    /* The first uv_queue_work starts all UV_THREADPOOL_SIZE threads. */
    for (unsigned i = 0; i < workers && i < 64; i++)
        uv_queue_work(loop, &warm[i], uv_warm_work, uv_after);
    uv_run(loop, UV_RUN_DEFAULT);

    if (strcmp(mode, "tp") == 0 && subs > 1) {
        int64_t t[4];

        libuv_throughput_mt(loop, subs, n, t);
        if (after_work_calls != n || atomic_load(&counter) != n)
            die("libuv: %ld of %ld jobs completed", after_work_calls, n);
        printf("%.1f %.1f %.1f\n", (double)n * 1e9 / (double)(t[1] - t[0]),
               (double)n * 1e9 / (double)(atomic_load(&last_run_ns) - t[0]),
               (double)(t[3] - t[2]) / (double)n);
    } else if (strcmp(mode, "tp") == 0) {
        int64_t t0, t1, c0, c1;

        arm(n);
        after_work_calls = 0;
        c0 = cpu_ns();
        t0 = now_ns();
        for (long i = 0; i < n; i++)
            if (uv_queue_work(loop, &reqs[i], uv_count_work, uv_after) != 0)
                die("uv_queue_work failed");
        uv_run(loop, UV_RUN_DEFAULT);
        t1 = now_ns();
        c1 = cpu_ns();
        if (after_work_calls != n || atomic_load(&counter) != n)
            die("libuv: %ld of %ld jobs completed", after_work_calls, n);
        printf("%.1f %.1f %.1f\n", (double)n * 1e9 / (double)(t1 - t0),
               (double)n * 1e9 / (double)(atomic_load(&last_run_ns) - t0),
               (double)(c1 - c0) / (double)n);
    } else {
        for (long i = 0; i < n; i++) {
            pause_us(opt.pause_us);
            int64_t t0 = now_ns();
            uv_queue_work(loop, &reqs[0], uv_latency_work, uv_after);
            uv_run(loop, UV_RUN_DEFAULT);
            samples[i] = atomic_load(&job_start_ns) - t0;
        }
        latency l = latency_of(n);
        printf("%.1f %.1f 0\n", l.median_ns, l.p99_ns);
    }
    free(reqs);
    return 0;
}

static char self_path[4096];

/* Runs one libuv measurement in a child process and reads its three
 * figures. */
static void
libuv_measure(const char *mode, unsigned workers, unsigned subs, long n,
              double out[3])
{
    char env_size[64], arg_w[32], arg_n[32], arg_p[32], arg_s[32];
    char buf[256];
    char *argv[] = {self_path, "--child-libuv", (char *)mode, arg_w, arg_n,
                    arg_p, arg_s, NULL};
    size_t nenv = 0;
    int fds[2], status;
    pid_t pid;
    posix_spawn_file_actions_t fa;

    snprintf(env_size, sizeof(env_size), "UV_THREADPOOL_SIZE=%u", workers);
    snprintf(arg_w, sizeof(arg_w), "%u", workers);
    snprintf(arg_n, sizeof(arg_n), "%ld", n);
    snprintf(arg_p, sizeof(arg_p), "%ld", opt.pause_us);
    snprintf(arg_s, sizeof(arg_s), "%u", subs);
    while (environ[nenv] != NULL)
        nenv++;
    char **envp = calloc(nenv + 2, sizeof(*envp));
    size_t k = 0;
    if (envp == NULL)
        die("out of memory");
    for (size_t i = 0; i < nenv; i++)
        if (strncmp(environ[i], "UV_THREADPOOL_SIZE=", 19) != 0)
            envp[k++] = environ[i];
    envp[k++] = env_size;

    if (pipe(fds) < 0)
        die("pipe: %s", strerror(errno));
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    int rc = posix_spawn(&pid, self_path, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    close(fds[1]);
    if (rc != 0)
        die("posix_spawn %s: %s", self_path, strerror(rc));

    size_t len = 0;
    ssize_t r;
    while (len < sizeof(buf) - 1
           && ((r = read(fds[0], buf + len, sizeof(buf) - 1 - len)) > 0
               || (r < 0 && errno == EINTR)))
        if (r > 0)
            len += (size_t)r;
    buf[len] = '\0';
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0
        || sscanf(buf, "%lf %lf %lf", &out[0], &out[1], &out[2]) != 3)
        die("libuv child (%s, %u workers) failed: '%s'", mode, workers, buf);
}

/* ------------------------------------------------------------------------ */
/* The run                                                                  */
/* ------------------------------------------------------------------------ */

enum { P_FTPOOL, P_GLIB, P_LIBUV, NPOOLS };
static const char *const pool_names[NPOOLS] = {
    "ftpool", "GLib GThreadPool", "libuv uv_queue_work"
};
static const char *const pool_keys[NPOOLS] = {"ftpool", "glib", "libuv"};

typedef struct result {
    double tp[MAX_ROUNDS];          /* jobs/s */
    double tp_ran[MAX_ROUNDS];      /* libuv: jobs/s until the last ran */
    double cpu[MAX_ROUNDS];         /* CPU ns per job, all threads */
    double lat_med[MAX_ROUNDS];
    double lat_p99[MAX_ROUNDS];
    int ntp, nlat;
} result;

/* [submitters index][workers index][pool]; latency does not depend on
 * the submitters and is kept under index 0. */
static result results[MAX_SUBS][2][NPOOLS];

static int
pool_used(int p)
{
    return p == P_FTPOOL ? opt.use_ftpool
         : p == P_GLIB ? opt.use_glib : opt.use_libuv;
}

static void
run_round(int round)
{
    for (int wi = 0; wi < opt.nworkers; wi++) {
        unsigned w = opt.workers[wi];
        for (int si = 0; opt.do_tp && si < opt.nsubs; si++) {
            unsigned subs = opt.subs[si];
            for (int k = 0; k < NPOOLS; k++) {
                /* Rotate the order every round so that no pool always
                 * runs first (or right after another one) on a noisy
                 * machine. */
                int p = (k + round) % NPOOLS;
                result *r = &results[si][wi][p];
                double three[3];
                throughput t;

                if (!pool_used(p))
                    continue;
                fprintf(stderr, "  round %d: %-20s %u worker(s), %u "
                        "submitter(s): throughput...\n", round + 1,
                        pool_names[p], w, subs);
                if (p == P_FTPOOL) {
                    t = ftpool_throughput(w, subs, opt.n);
                } else if (p == P_GLIB) {
                    t = glib_throughput(w, subs, opt.n);
                } else {
                    libuv_measure("tp", w, subs, opt.n, three);
                    t.jobs_per_s = three[0];
                    t.cpu_ns_per_job = three[2];
                    r->tp_ran[r->ntp] = three[1];
                }
                r->tp[r->ntp] = t.jobs_per_s;
                r->cpu[r->ntp] = t.cpu_ns_per_job;
                r->ntp++;
            }
        }
        for (int k = 0; opt.do_lat && k < NPOOLS; k++) {
            int p = (k + round) % NPOOLS;
            result *r = &results[0][wi][p];
            double three[3];
            latency l;

            if (!pool_used(p))
                continue;
            fprintf(stderr, "  round %d: %-20s %u worker(s): latency...\n",
                    round + 1, pool_names[p], w);
            if (p == P_FTPOOL) {
                l = ftpool_latency(w, opt.lat_iters);
            } else if (p == P_GLIB) {
                l = glib_latency(w, opt.lat_iters);
            } else {
                libuv_measure("lat", w, 1, opt.lat_iters, three);
                l.median_ns = three[0];
                l.p99_ns = three[1];
            }
            r->lat_med[r->nlat] = l.median_ns;
            r->lat_p99[r->nlat] = l.p99_ns;
            r->nlat++;
        }
    }
}

static double
median_tp(int si, int wi, int p)
{
    return summarise(results[si][wi][p].tp, results[si][wi][p].ntp).median;
}

/* The faster of GLib and libuv (by median throughput) for submitters
 * index si and workers index wi, or -1. */
static int
best_competitor(int si, int wi)
{
    int best = -1;
    double bv = 0;

    for (int p = P_GLIB; p < NPOOLS; p++) {
        if (!pool_used(p) || results[si][wi][p].ntp == 0)
            continue;
        double v = median_tp(si, wi, p);
        if (best < 0 || v > bv) {
            best = p;
            bv = v;
        }
    }
    return best;
}

/* The index of the single-submitter runs, or -1 if there are none. */
static int
single_index(void)
{
    return opt.subs[0] == 1 ? 0 : -1;
}

static void
fmt_rate(char *out, size_t size, summary s)
{
    snprintf(out, size, "%.2fM (%.2f-%.2f)", s.median / 1e6, s.min / 1e6,
             s.max / 1e6);
}

static void
fmt_us(char *out, size_t size, summary s)
{
    snprintf(out, size, "%.1f (%.1f-%.1f)", s.median / 1e3, s.min / 1e3,
             s.max / 1e3);
}

/* The throughput rows of one pool: jobs/s, ftpool / this, and with
 * several submitters this pool's figure over its figure with one. */
static void
print_tp_rows(int si, int wi, int p)
{
    result *r = &results[si][wi][p];
    int multi = opt.subs[si] > 1, one = single_index();
    char a[64], b[64], c[64], v[64], subs[32];
    summary s = summarise(r->tp, r->ntp);
    double f = median_tp(si, wi, P_FTPOOL);

    fmt_rate(a, sizeof(a), s);
    if (opt.use_ftpool && p != P_FTPOOL)
        snprintf(b, sizeof(b), "%.2fx", f / s.median);
    else
        snprintf(b, sizeof(b), "-");
    summary cs = summarise(r->cpu, r->ntp);
    snprintf(c, sizeof(c), "%.0f (%.0f-%.0f)", cs.median, cs.min, cs.max);
    if (one >= 0)
        snprintf(v, sizeof(v), " %.2fx |", s.median / median_tp(one, wi, p));
    else
        snprintf(v, sizeof(v), " - |");
    snprintf(subs, sizeof(subs), " %u |", opt.subs[si]);
    printf("| %u |%s %s%s | %s | %s |%s %s |\n", opt.workers[wi],
           multi ? subs : "", pool_names[p],
           p != P_LIBUV ? ""
           : multi ? " via uv_async (until all after_work ran)"
           : " (until all after_work ran)",
           a, b, multi ? v : "", c);
    if (p == P_LIBUV) {
        summary s2 = summarise(r->tp_ran, r->ntp);
        fmt_rate(a, sizeof(a), s2);
        printf("| %u |%s libuv (until the last work_cb ran; for "
               "information) | %s | %.2fx |%s |\n", opt.workers[wi],
               multi ? subs : "", a, f / s2.median, multi ? " |" : "");
    }
}

static void
print_markdown(void)
{
    int one = single_index();
    char b[64], c[64];

    printf("## Engine: empty C jobs\n\n");
    printf("%ld jobs per throughput run, %ld latency samples (%ld us pause "
           "before each), %d rounds; median over rounds (min-max).  "
           "%ld CPUs online.  GLib %u.%u.%u, libuv %s.\n\n",
           opt.n, opt.lat_iters, opt.pause_us, opt.rounds,
           sysconf(_SC_NPROCESSORS_ONLN), glib_major_version,
           glib_minor_version, glib_micro_version, uv_version_string());
    if (opt.do_tp && one >= 0) {
        printf("| workers | pool | jobs/s | ftpool / this | "
               "CPU ns per job |\n");
        printf("| ---: | --- | ---: | ---: | ---: |\n");
        for (int wi = 0; wi < opt.nworkers; wi++)
            for (int p = 0; p < NPOOLS; p++)
                if (pool_used(p))
                    print_tp_rows(one, wi, p);
        printf("\n");
        for (int wi = 0; opt.use_ftpool && wi < opt.nworkers; wi++) {
            int b2 = best_competitor(one, wi);
            if (b2 < 0)
                continue;
            printf("%u worker(s): ftpool / best competitor (%s) = "
                   "**%.2fx** (goal: >= 3x)\n", opt.workers[wi],
                   pool_names[b2],
                   median_tp(one, wi, P_FTPOOL) / median_tp(one, wi, b2));
        }
        printf("\nlibuv's figure is submit -> completed: the time until "
               "uv_run() has called every after_work callback on the "
               "submitting thread (its only completion signal).  CPU ns "
               "per job: CPU time of all the process's threads during "
               "the run, divided by the jobs.\n\n");
    }
    if (opt.do_tp && opt.subs[opt.nsubs - 1] > 1) {
        printf("### Several submitting threads\n\n");
        printf("The same jobs submitted by several threads at once.  "
               "uv_queue_work() may only be called on the loop's thread: "
               "libuv's submitters push each request onto a lock-free "
               "stack and call uv_async_send(), and the loop's callback "
               "queues what was handed over.  \"vs 1 submitter\": this "
               "pool's jobs/s over its own with one submitter (the table "
               "above).\n\n");
        printf("| workers | submitters | pool | jobs/s | ftpool / this | "
               "vs 1 submitter | CPU ns per job |\n");
        printf("| ---: | ---: | --- | ---: | ---: | ---: | ---: |\n");
        for (int wi = 0; wi < opt.nworkers; wi++)
            for (int si = 0; si < opt.nsubs; si++)
                for (int p = 0; p < NPOOLS; p++)
                    if (opt.subs[si] > 1 && pool_used(p))
                        print_tp_rows(si, wi, p);
        printf("\n");
        for (int wi = 0; opt.use_ftpool && wi < opt.nworkers; wi++) {
            for (int si = 0; si < opt.nsubs; si++) {
                int b2 = best_competitor(si, wi);
                double f = median_tp(si, wi, P_FTPOOL);
                if (opt.subs[si] == 1)
                    continue;
                printf("%u worker(s), %u submitters: ", opt.workers[wi],
                       opt.subs[si]);
                if (b2 >= 0)
                    printf("ftpool / best competitor (%s) = **%.2fx**",
                           pool_names[b2], f / median_tp(si, wi, b2));
                if (one >= 0)
                    printf("%sftpool / ftpool with 1 submitter = "
                           "**%.2fx**", b2 >= 0 ? "; " : "",
                           f / median_tp(one, wi, P_FTPOOL));
                printf("\n");
            }
        }
        printf("\n");
    }
    if (opt.do_lat) {
        printf("| workers | pool | submit->start median (us) | "
               "p99 (us) |\n");
        printf("| ---: | --- | ---: | ---: |\n");
        for (int wi = 0; wi < opt.nworkers; wi++) {
            for (int p = 0; p < NPOOLS; p++) {
                result *r = &results[0][wi][p];
                if (!pool_used(p))
                    continue;
                fmt_us(b, sizeof(b), summarise(r->lat_med, r->nlat));
                fmt_us(c, sizeof(c), summarise(r->lat_p99, r->nlat));
                printf("| %u | %s | %s | %s |\n", opt.workers[wi],
                       pool_names[p], b, c);
            }
        }
        printf("\n");
    }
}

static void
json_summary(FILE *f, const char *key, const double *v, int n)
{
    summary s = summarise(v, n);

    fprintf(f, "\"%s\": {\"median\": %.1f, \"min\": %.1f, \"max\": %.1f, "
            "\"rounds\": [", key, s.median, s.min, s.max);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%.1f", i ? ", " : "", v[i]);
    fprintf(f, "]}");
}

/* One entry of a results list: throughput (of submitters index si) if tp
 * is set, latency if lat is set. */
static void
json_result(FILE *f, int si, int wi, int p, int tp, int lat, int first)
{
    result *r = &results[si][wi][p];

    fprintf(f, "%s\n    {\"pool\": \"%s\", ", first ? "" : ",",
            pool_keys[p]);
    if (tp && opt.subs[si] > 1)
        fprintf(f, "\"case\": \"%u submitters\", ", opt.subs[si]);
    fprintf(f, "\"workers\": %u", opt.workers[wi]);
    if (tp && r->ntp) {
        fprintf(f, ", \"submitters\": %u, ", opt.subs[si]);
        json_summary(f, "jobs_per_s", r->tp, r->ntp);
        fprintf(f, ", ");
        json_summary(f, "cpu_ns_per_job", r->cpu, r->ntp);
        if (p == P_LIBUV) {
            fprintf(f, ", ");
            json_summary(f, "jobs_per_s_last_run", r->tp_ran, r->ntp);
        }
    }
    if (lat && results[0][wi][p].nlat) {
        r = &results[0][wi][p];
        fprintf(f, ", ");
        json_summary(f, "latency_median_ns", r->lat_med, r->nlat);
        fprintf(f, ", ");
        json_summary(f, "latency_p99_ns", r->lat_p99, r->nlat);
    }
    fprintf(f, "}");
}

static void
write_json(const char *path)
{
    FILE *f = fopen(path, "w");
    int one = single_index(), first;

    if (f == NULL)
        die("cannot write %s: %s", path, strerror(errno));
    fprintf(f, "{\n  \"benchmark\": \"engine\",\n  \"jobs\": %ld,\n"
            "  \"rounds\": %d,\n  \"latency_samples\": %ld,\n"
            "  \"latency_pause_us\": %ld,\n  \"cpus\": %ld,\n"
            "  \"glib_version\": \"%u.%u.%u\",\n"
            "  \"libuv_version\": \"%s\",\n"
            "  \"libuv_note\": \"libuv jobs_per_s is submit -> completed "
            "(all after_work callbacks run by uv_run on the main thread); "
            "jobs_per_s_last_run is until the last work callback ran; "
            "with several submitters, each hands its requests to the loop "
            "thread (lock-free stack + uv_async_send), which calls "
            "uv_queue_work\",\n"
            "  \"results\": [", opt.n, opt.rounds, opt.lat_iters,
            opt.pause_us, sysconf(_SC_NPROCESSORS_ONLN),
            glib_major_version, glib_minor_version, glib_micro_version,
            uv_version_string());
    /* "results": one submitter (and latency), as the charts expect;
     * "results_submitters": the runs with several. */
    first = 1;
    for (int wi = 0; wi < opt.nworkers; wi++) {
        for (int p = 0; p < NPOOLS; p++) {
            if (!pool_used(p))
                continue;
            if (one >= 0 || opt.do_lat) {
                json_result(f, one >= 0 ? one : 0, wi, p, one >= 0, 1,
                            first);
                first = 0;
            }
        }
    }
    fprintf(f, "\n  ],\n  \"results_submitters\": [");
    first = 1;
    for (int wi = 0; opt.do_tp && wi < opt.nworkers; wi++)
        for (int si = 0; si < opt.nsubs; si++)
            for (int p = 0; p < NPOOLS; p++)
                if (opt.subs[si] > 1 && pool_used(p)) {
                    json_result(f, si, wi, p, 1, 0, first);
                    first = 0;
                }
    fprintf(f, "\n  ],\n  \"ratios\": [");
    first = 1;
    for (int wi = 0; opt.use_ftpool && opt.do_tp && one >= 0
                     && wi < opt.nworkers; wi++) {
        int b = best_competitor(one, wi);
        if (b < 0)
            continue;
        fprintf(f, "%s\n    {\"workers\": %u, \"best_competitor\": \"%s\", "
                "\"throughput_ftpool_over_best\": %.3f",
                first ? "" : ",", opt.workers[wi], pool_keys[b],
                median_tp(one, wi, P_FTPOOL) / median_tp(one, wi, b));
        if (opt.do_lat) {
            double fl = summarise(results[0][wi][P_FTPOOL].lat_med,
                                  results[0][wi][P_FTPOOL].nlat).median;
            double bl = summarise(results[0][wi][b].lat_med,
                                  results[0][wi][b].nlat).median;
            fprintf(f, ", \"latency_median_best_over_ftpool\": %.3f",
                    bl / fl);
        }
        fprintf(f, "}");
        first = 0;
    }
    fprintf(f, "\n  ],\n  \"ratios_submitters\": [");
    first = 1;
    for (int wi = 0; opt.use_ftpool && opt.do_tp && wi < opt.nworkers;
         wi++) {
        for (int si = 0; si < opt.nsubs; si++) {
            int b = best_competitor(si, wi);
            double fm = median_tp(si, wi, P_FTPOOL);
            if (opt.subs[si] == 1)
                continue;
            fprintf(f, "%s\n    {\"workers\": %u, \"submitters\": %u",
                    first ? "" : ",", opt.workers[wi], opt.subs[si]);
            if (b >= 0)
                fprintf(f, ", \"best_competitor\": \"%s\", "
                        "\"throughput_ftpool_over_best\": %.3f",
                        pool_keys[b], fm / median_tp(si, wi, b));
            if (one >= 0)
                fprintf(f, ", \"ftpool_over_ftpool_1_submitter\": %.3f",
                        fm / median_tp(one, wi, P_FTPOOL));
            fprintf(f, "}");
            first = 0;
        }
    }
    fprintf(f, "\n  ]\n}\n");
    fclose(f);
}

static void
usage(FILE *f)
{
    fprintf(f,
"usage: bench_engine [options]\n"
"  --quick             300000 jobs, 3000 latency samples\n"
"  --jobs N            jobs per throughput run (default 2000000)\n"
"  --rounds N          rounds (default 3)\n"
"  --lat-samples N     latency samples per run (default 20000)\n"
"  --pause-us N        idle time before each latency sample (default 200)\n"
"  --workers LIST      1, 2 or 1,2 (default 1,2)\n"
"  --submitters LIST   submitting threads, ascending, up to 3 counts\n"
"                      (default 1,2,4)\n"
"  --only LIST         pools to run: ftpool,glib,libuv (default all)\n"
"  --no-throughput     skip the throughput runs\n"
"  --no-latency        skip the latency runs\n"
"  --json FILE         also write the results as JSON\n");
}

static long
parse_long(const char *name, const char *s, long lo)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (end == s || *end != '\0' || v < lo) {
        fprintf(stderr, "bench_engine: bad value for %s: '%s'\n", name, s);
        exit(2);
    }
    return v;
}

/* --submitters: up to MAX_SUBS ascending counts, e.g. "1,2,4". */
static void
parse_submitters(const char *arg)
{
    char buf[64], *tok, *save = NULL;

    snprintf(buf, sizeof(buf), "%s", arg);
    opt.nsubs = 0;
    for (tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        long v = parse_long("--submitters", tok, 1);
        if (opt.nsubs == MAX_SUBS || v > MAX_SUBMITTERS
            || (opt.nsubs > 0 && (unsigned)v <= opt.subs[opt.nsubs - 1])) {
            fprintf(stderr, "bench_engine: --submitters: up to %d "
                    "ascending counts of 1 to %d\n", MAX_SUBS,
                    MAX_SUBMITTERS);
            exit(2);
        }
        opt.subs[opt.nsubs++] = (unsigned)v;
    }
    if (opt.nsubs == 0) {
        fprintf(stderr, "bench_engine: --submitters: no count\n");
        exit(2);
    }
}

int
main(int argc, char **argv)
{
    static const struct option lopts[] = {
        {"quick", no_argument, NULL, 'q'},
        {"jobs", required_argument, NULL, 'n'},
        {"rounds", required_argument, NULL, 'r'},
        {"lat-samples", required_argument, NULL, 'l'},
        {"pause-us", required_argument, NULL, 'p'},
        {"workers", required_argument, NULL, 'w'},
        {"submitters", required_argument, NULL, 's'},
        {"only", required_argument, NULL, 'o'},
        {"no-throughput", no_argument, NULL, 'T'},
        {"no-latency", no_argument, NULL, 'L'},
        {"json", required_argument, NULL, 'j'},
        {"child-libuv", no_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}
    };
    int ch, child = 0, quick = 0;
    long n = -1, lat = -1;

    while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        switch (ch) {
        case 'q': quick = 1; break;
        case 'n': n = parse_long("--jobs", optarg, 1); break;
        case 'r':
            opt.rounds = (int)parse_long("--rounds", optarg, 1);
            if (opt.rounds > MAX_ROUNDS)
                opt.rounds = MAX_ROUNDS;
            break;
        case 'l': lat = parse_long("--lat-samples", optarg, 1); break;
        case 'p': opt.pause_us = parse_long("--pause-us", optarg, 0); break;
        case 'w':
            if (strcmp(optarg, "1") == 0 || strcmp(optarg, "2") == 0) {
                opt.workers[0] = (unsigned)(optarg[0] - '0');
                opt.nworkers = 1;
            } else if (strcmp(optarg, "1,2") != 0) {
                fprintf(stderr, "bench_engine: --workers 1, 2 or 1,2\n");
                return 2;
            }
            break;
        case 's':
            parse_submitters(optarg);
            break;
        case 'o':
            opt.use_ftpool = strstr(optarg, "ftpool") != NULL;
            opt.use_glib = strstr(optarg, "glib") != NULL;
            opt.use_libuv = strstr(optarg, "libuv") != NULL;
            break;
        case 'T': opt.do_tp = 0; break;
        case 'L': opt.do_lat = 0; break;
        case 'j': opt.json = optarg; break;
        case 'c': child = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (sem_init(&done, 0, 0) < 0 || sem_init(&ready, 0, 0) < 0)
        die("sem_init: %s", strerror(errno));

    if (child) {
        /* --child-libuv MODE WORKERS N PAUSE_US SUBMITTERS */
        if (argc - optind != 5)
            die("bad --child-libuv arguments");
        unsigned w = (unsigned)parse_long("workers", argv[optind + 1], 1);
        n = parse_long("n", argv[optind + 2], 1);
        opt.pause_us = parse_long("pause", argv[optind + 3], 0);
        unsigned subs = (unsigned)parse_long("submitters",
                                             argv[optind + 4], 1);
        samples = malloc((size_t)n * sizeof(*samples));
        if (samples == NULL)
            die("out of memory");
        return libuv_child(argv[optind], w, subs, n);
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (quick) {
        opt.n = 300000;
        opt.lat_iters = 3000;
    }
    if (n > 0)
        opt.n = n;
    if (lat > 0)
        opt.lat_iters = lat;
    if (!opt.use_ftpool && !opt.use_glib && !opt.use_libuv)
        die("--only: no known pool named");

    ssize_t len = readlink("/proc/self/exe", self_path,
                           sizeof(self_path) - 1);
    if (len <= 0)
        die("readlink /proc/self/exe: %s", strerror(errno));
    self_path[len] = '\0';
    samples = malloc((size_t)opt.lat_iters * sizeof(*samples));
    if (samples == NULL)
        die("out of memory");

    for (int r = 0; r < opt.rounds; r++)
        run_round(r);
    print_markdown();
    if (opt.json != NULL)
        write_json(opt.json);
    free(samples);
    return 0;
}
