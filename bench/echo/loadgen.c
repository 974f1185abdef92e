/*
 * loadgen.c - a verifying load generator for echo servers.
 *
 * One thread, epoll, N connections.  Every connection runs request/response
 * in lock-step: it sends one request (mpr messages of msize bytes), waits
 * for exactly that many bytes back, then sends the next.  The content of a
 * request depends on the connection index and the sequence number, and every
 * byte that comes back is compared with what was sent.  The run FAILS (exit
 * code 1, a JSON line with "ok": false and a message on stderr) on:
 *   - a byte that differs from the one sent at that position,
 *   - a surplus byte (more bytes back than were sent),
 *   - a stall (no byte moved on a busy connection for --stall-timeout s),
 *   - a connection closed or reset by the server.
 *
 * --count-surplus measures a server that is *not* an echo (one that sends
 * more than it received).  Verification is impossible then, so the client
 * counts bytes the way the original Python client does: a request is done
 * once at least one request's worth of bytes came back for it (reads of at
 * most one request each), whatever they are.  Surplus bytes left in the
 * socket then complete later requests without a round trip, which is what
 * inflates that client's rate.  bytes_received - bytes_sent is reported as
 * surplus_bytes, not failed on.
 *
 * Output: one JSON line on stdout.  Rates use the original client's units:
 * messages/s and MB/s = messages * msize / 2^20 / seconds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct conn {
    int fd;
    unsigned idx;
    uint64_t seq;           /* sequence number of the current request */
    unsigned char *req;     /* the current request's bytes */
    size_t sent;            /* bytes of the current request sent */
    size_t got;             /* bytes of the current request received */
    int want_out;           /* EPOLLOUT is registered */
    int active;             /* a request is in flight */
    uint64_t total_sent;
    uint64_t total_recv;
    double last_progress;
} conn;

static struct {
    const char *host;
    const char *port;
    unsigned nconns;
    size_t msize;
    unsigned mpr;
    uint64_t num;           /* messages per connection; 0 with duration */
    double duration;        /* seconds; 0 with num */
    double stall_timeout;
    double connect_timeout;
    double drain_timeout;
    int count_surplus;
    int cpu;
} opt = {
    "127.0.0.1", NULL, 5, 1000, 1, 0, 0.0, 5.0, 5.0, 1.0, 0, -1
};

static size_t reqsize;

/* Totals reported in the JSON line. */
static uint64_t requests_done;
static uint64_t verified_bytes;
static uint64_t surplus_bytes;
static double t_start, t_end;

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static conn *conns;

static void
print_result(int ok, const char *error)
{
    double secs = t_end > t_start ? t_end - t_start : 0.0;
    uint64_t messages = requests_done * opt.mpr;
    double rate = secs > 0 ? (double)messages / secs : 0.0;
    uint64_t sent = 0, received = 0;

    for (unsigned i = 0; conns != NULL && i < opt.nconns; i++) {
        sent += conns[i].total_sent;
        received += conns[i].total_recv;
    }
    printf("{\"ok\": %s, \"mode\": \"%s\", \"conns\": %u, \"msize\": %zu, "
           "\"mpr\": %u, \"messages\": %llu, \"requests\": %llu, "
           "\"seconds\": %.6f, \"msg_per_s\": %.1f, \"mb_per_s\": %.3f, "
           "\"bytes_sent\": %llu, \"bytes_received\": %llu, "
           "\"verified_bytes\": %llu, \"surplus_bytes\": %llu, "
           "\"errors\": %d",
           ok ? "true" : "false",
           opt.count_surplus ? "count-surplus" : "verify", opt.nconns,
           opt.msize, opt.mpr, (unsigned long long)messages,
           (unsigned long long)requests_done, secs, rate,
           rate * (double)opt.msize / (1024.0 * 1024.0),
           (unsigned long long)sent, (unsigned long long)received,
           (unsigned long long)verified_bytes,
           (unsigned long long)surplus_bytes, ok ? 0 : 1);
    if (error != NULL) {
        printf(", \"error\": \"");
        for (const char *p = error; *p; p++) {
            if (*p == '"' || *p == '\\')
                putchar('\\');
            putchar(*p);
        }
        putchar('"');
    }
    printf("}\n");
    fflush(stdout);
}

static void
fail(const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (t_end == 0.0)
        t_end = now_s();
    fprintf(stderr, "loadgen: FAIL: %s\n", msg);
    print_result(0, msg);
    exit(1);
}

static void
usage(FILE *f)
{
    fprintf(f,
"usage: loadgen --port PORT [options]\n"
"  --host HOST           server address (default 127.0.0.1)\n"
"  --port PORT           server port (required)\n"
"  --conns N             connections (default 5)\n"
"  --msize BYTES         message size (default 1000)\n"
"  --mpr N               messages per request (default 1)\n"
"  --num N               messages per connection (default 10000); a\n"
"                        connection sends num/mpr requests\n"
"  --duration SECONDS    run for a time instead of --num requests\n"
"  --stall-timeout S     fail if a busy connection moves no byte for S\n"
"                        seconds (default 5)\n"
"  --connect-timeout S   retry refused connections for S seconds "
"(default 5)\n"
"  --drain-timeout S     at the end, wait up to S seconds for the server\n"
"                        to close after our EOF (default 1)\n"
"  --count-surplus       the server is not an echo: count bytes like the\n"
"                        original client and report surplus bytes\n"
"  --cpu N               pin this process to CPU N\n");
}

/* ------------------------------------------------------------------------ */
/* Request content                                                          */
/* ------------------------------------------------------------------------ */

static inline uint64_t
splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Fills the request of connection `idx`, sequence `seq`: a xorshift stream
 * seeded from both, so a byte echoed to the wrong connection or from an
 * earlier request is detected. */
static void
fill_request(unsigned char *buf, size_t len, unsigned idx, uint64_t seq)
{
    uint64_t s = ((uint64_t)idx << 40) ^ seq;
    uint64_t x = splitmix64(&s) | 1;
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(buf + i, &x, 8);
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    for (; i < len; i++, x >>= 8)
        buf[i] = (unsigned char)x;
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */
/* ------------------------------------------------------------------------ */

static int epfd;
static unsigned char *rbuf;     /* receive buffer shared by all connections */
static size_t rbuf_size;

static int
connect_one(const struct addrinfo *ai)
{
    double deadline = now_s() + opt.connect_timeout;

    for (;;) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd < 0)
            fail("socket: %s", strerror(errno));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            return fd;
        int err = errno;
        close(fd);
        if (err != ECONNREFUSED || now_s() > deadline)
            fail("connect to %s:%s: %s", opt.host, opt.port, strerror(err));
        usleep(20000);
    }
}

static void
set_events(conn *c, int want_out)
{
    struct epoll_event ev;

    if (c->want_out == want_out)
        return;
    ev.events = EPOLLIN | (want_out ? EPOLLOUT : 0);
    ev.data.ptr = c;
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        fail("epoll_ctl: %s", strerror(errno));
    c->want_out = want_out;
}

static void finish_request(conn *c);

/* Sends what is left of the current request without blocking. */
static void
try_send(conn *c)
{
    while (c->sent < reqsize) {
        ssize_t n = send(c->fd, c->req + c->sent, reqsize - c->sent,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                set_events(c, 1);
                return;
            }
            fail("connection %u: send: %s", c->idx, strerror(errno));
        }
        c->sent += (size_t)n;
        c->total_sent += (uint64_t)n;
        c->last_progress = now_s();
    }
    set_events(c, 0);
    if (opt.count_surplus && c->got >= reqsize)
        finish_request(c);
}

static int
more_requests(void)
{
    if (opt.duration > 0)
        return now_s() - t_start < opt.duration;
    return 1;
}

static void
start_request(conn *c)
{
    if ((opt.num > 0 && c->seq >= opt.num / opt.mpr) || !more_requests()) {
        c->active = 0;
        return;
    }
    c->active = 1;
    c->sent = 0;
    c->got = 0;
    if (!opt.count_surplus)
        fill_request(c->req, reqsize, c->idx, c->seq);
    try_send(c);
}

static void
finish_request(conn *c)
{
    requests_done++;
    c->seq++;
    start_request(c);
}

/* Reads what is available on `c` and checks it. */
static void
on_readable(conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, rbuf, opt.count_surplus ? reqsize : rbuf_size,
                         0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            fail("connection %u: recv: %s (request %llu)", c->idx,
                 strerror(errno), (unsigned long long)c->seq);
        }
        if (n == 0)
            fail("connection %u closed by the server (request %llu, "
                 "%zu of %zu bytes back)", c->idx,
                 (unsigned long long)c->seq, c->got, reqsize);
        c->total_recv += (uint64_t)n;
        c->last_progress = now_s();

        if (opt.count_surplus) {
            /* Like the original client: a request is done once at least
             * reqsize bytes came back for it, whatever they are; the rest
             * of that read is dropped, later bytes count for later
             * requests. */
            if (c->active) {
                c->got += (size_t)n;
                if (c->got >= reqsize && c->sent == reqsize)
                    finish_request(c);
            }
            return;
        }
        size_t len = (size_t)n;
        if (!c->active || len > c->sent - c->got) {
            size_t ok_len = c->active ? c->sent - c->got : 0;
            surplus_bytes += len - ok_len;
            fail("connection %u: %zu surplus byte(s) after request %llu "
                 "(%zu bytes sent, %zu received)", c->idx, len - ok_len,
                 (unsigned long long)c->seq, c->sent, c->got + len);
        }
        if (memcmp(rbuf, c->req + c->got, len) != 0) {
            size_t i = 0;
            while (rbuf[i] == c->req[c->got + i])
                i++;
            fail("connection %u: byte %zu of request %llu differs "
                 "(got 0x%02x, sent 0x%02x)", c->idx, c->got + i,
                 (unsigned long long)c->seq, rbuf[i], c->req[c->got + i]);
        }
        c->got += len;
        verified_bytes += len;
        if (c->got == reqsize)
            finish_request(c);
        if ((size_t)n < rbuf_size)
            return;
    }
}

/* After the run: half-close every connection and wait for the server's
 * EOF, so that surplus bytes sent after the last response are seen too. */
static void
drain(void)
{
    double deadline = now_s() + opt.drain_timeout;
    unsigned open_conns = opt.nconns;

    for (unsigned i = 0; i < opt.nconns; i++) {
        set_events(&conns[i], 0);
        shutdown(conns[i].fd, SHUT_WR);
    }
    while (open_conns > 0) {
        struct epoll_event evs[64];
        int ms = (int)((deadline - now_s()) * 1000.0);
        if (ms <= 0)
            break;
        int ne = epoll_wait(epfd, evs, 64, ms);
        if (ne < 0 && errno != EINTR)
            fail("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < ne; i++) {
            conn *c = evs[i].data.ptr;
            ssize_t n = recv(c->fd, rbuf, rbuf_size, 0);
            if (n > 0) {
                c->total_recv += (uint64_t)n;
                if (!opt.count_surplus) {
                    surplus_bytes += (uint64_t)n;
                    fail("connection %u: %zd surplus byte(s) after the "
                         "last request", c->idx, n);
                }
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            /* EOF (or a reset after our shutdown): this one is done. */
            epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
            open_conns--;
        }
    }
    for (unsigned i = 0; i < opt.nconns; i++) {
        conn *c = &conns[i];
        if (c->total_recv > c->total_sent)
            surplus_bytes += c->total_recv - c->total_sent;
        close(c->fd);
    }
}

static double
parse_num(const char *name, const char *s, double lo)
{
    char *end;
    double v = strtod(s, &end);

    if (end == s || *end != '\0' || v < lo) {
        fprintf(stderr, "loadgen: bad value for %s: '%s'\n", name, s);
        exit(2);
    }
    return v;
}

int
main(int argc, char **argv)
{
    static const struct option lopts[] = {
        {"host", required_argument, NULL, 'h'},
        {"port", required_argument, NULL, 'p'},
        {"conns", required_argument, NULL, 'c'},
        {"msize", required_argument, NULL, 'm'},
        {"mpr", required_argument, NULL, 'r'},
        {"num", required_argument, NULL, 'n'},
        {"duration", required_argument, NULL, 'd'},
        {"stall-timeout", required_argument, NULL, 's'},
        {"connect-timeout", required_argument, NULL, 'C'},
        {"drain-timeout", required_argument, NULL, 'D'},
        {"count-surplus", no_argument, NULL, 'x'},
        {"cpu", required_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'H'},
        {NULL, 0, NULL, 0}
    };
    int ch;

    while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        switch (ch) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = optarg; break;
        case 'c': opt.nconns = (unsigned)parse_num("--conns", optarg, 1);
                  break;
        case 'm': opt.msize = (size_t)parse_num("--msize", optarg, 1); break;
        case 'r': opt.mpr = (unsigned)parse_num("--mpr", optarg, 1); break;
        case 'n': opt.num = (uint64_t)parse_num("--num", optarg, 1); break;
        case 'd': opt.duration = parse_num("--duration", optarg, 0.001);
                  break;
        case 's': opt.stall_timeout = parse_num("--stall-timeout", optarg,
                                                0.001);
                  break;
        case 'C': opt.connect_timeout = parse_num("--connect-timeout",
                                                  optarg, 0);
                  break;
        case 'D': opt.drain_timeout = parse_num("--drain-timeout", optarg, 0);
                  break;
        case 'x': opt.count_surplus = 1; break;
        case 'u': opt.cpu = (int)parse_num("--cpu", optarg, 0); break;
        case 'H': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (opt.port == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (opt.num == 0 && opt.duration == 0)
        opt.num = 10000;
    if (opt.num > 0 && opt.num < opt.mpr) {
        fprintf(stderr, "loadgen: --num must be at least --mpr\n");
        return 2;
    }
    if (opt.num > 0 && opt.duration > 0) {
        fprintf(stderr, "loadgen: give --num or --duration, not both\n");
        return 2;
    }
    if (opt.cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(opt.cpu, &set);
        if (sched_setaffinity(0, sizeof(set), &set) < 0) {
            fprintf(stderr, "loadgen: sched_setaffinity(%d): %s\n", opt.cpu,
                    strerror(errno));
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);

    reqsize = opt.msize * opt.mpr;
    /* Big enough to take a whole response in one call; one byte more so a
     * surplus byte is seen in the same call. */
    rbuf_size = reqsize + 1 > 65536 ? reqsize + 1 : 65536;
    rbuf = malloc(rbuf_size);
    conns = calloc(opt.nconns, sizeof(*conns));
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (rbuf == NULL || conns == NULL || epfd < 0)
        fail("out of memory or no epoll");

    struct addrinfo hints = {0}, *ai;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(opt.host, opt.port, &hints, &ai);
    if (gai != 0)
        fail("getaddrinfo(%s, %s): %s", opt.host, opt.port,
             gai_strerror(gai));

    for (unsigned i = 0; i < opt.nconns; i++) {
        conn *c = &conns[i];
        int one = 1;
        struct epoll_event ev;

        c->idx = i;
        c->fd = connect_one(ai);
        c->req = malloc(reqsize);
        if (c->req == NULL)
            fail("out of memory");
        /* Without verification the content does not matter; fill once. */
        if (opt.count_surplus)
            fill_request(c->req, reqsize, i, 0);
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0)
            fail("nonblocking socket: %s", strerror(errno));
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            fail("epoll_ctl: %s", strerror(errno));
    }
    freeaddrinfo(ai);

    t_start = now_s();
    for (unsigned i = 0; i < opt.nconns; i++) {
        conns[i].last_progress = t_start;
        start_request(&conns[i]);
    }

    unsigned active;
    do {
        struct epoll_event evs[64];
        /* Woken by socket readiness; the timeout only bounds how late a
         * stall is noticed. */
        int ne = epoll_wait(epfd, evs, 64, 100);
        if (ne < 0 && errno != EINTR)
            fail("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < ne; i++) {
            conn *c = evs[i].data.ptr;
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_readable(c);
            if ((evs[i].events & EPOLLOUT) && c->active)
                try_send(c);
        }
        double t = now_s();
        active = 0;
        for (unsigned i = 0; i < opt.nconns; i++) {
            conn *c = &conns[i];
            if (!c->active)
                continue;
            active++;
            if (t - c->last_progress > opt.stall_timeout)
                fail("connection %u stalled: no byte moved for %.1f s "
                     "(request %llu, %zu of %zu bytes sent, %zu back)",
                     c->idx, t - c->last_progress,
                     (unsigned long long)c->seq, c->sent, reqsize, c->got);
        }
    } while (active > 0);
    t_end = now_s();

    drain();
    print_result(1, NULL);
    return 0;
}
