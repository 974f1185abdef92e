/*
 * c_server_libuv.c - an echo server on libuv, the C reference point.
 *
 * One loop in one thread.  Each connection owns one buffer of --bufsize
 * bytes; every read is written back as it is, exactly the bytes read.  The
 * write is first tried synchronously (uv_try_write), as uvloop does; if the
 * socket cannot take it all, the rest goes through uv_write and reading
 * pauses until it completes, so the buffer is never overwritten while a
 * write still needs it.
 *
 * Prints "READY <port>" on stdout once it listens.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct client {
    uv_tcp_t tcp;
    uv_write_t wreq;
    char *buf;
} client;

static size_t bufsize = 65536;

static void
on_close(uv_handle_t *h)
{
    client *c = h->data;

    free(c->buf);
    free(c);
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    client *c = h->data;

    (void)suggested;
    *out = uv_buf_init(c->buf, (unsigned)bufsize);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void
on_write(uv_write_t *req, int status)
{
    client *c = req->data;

    if (status < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void
on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    client *c = s->data;

    if (n < 0) {
        /* EOF or an error: the peer is done. */
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (n == 0)
        return;
    uv_buf_t out = uv_buf_init(buf->base, (unsigned)n);
    int w = uv_try_write(s, &out, 1);
    if (w == n)
        return;
    if (w < 0 && w != UV_EAGAIN) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (w > 0)
        out = uv_buf_init(buf->base + w, (unsigned)(n - w));
    uv_read_stop(s);
    c->wreq.data = c;
    if (uv_write(&c->wreq, s, &out, 1, on_write) < 0)
        uv_close((uv_handle_t *)s, on_close);
}

static void
on_connection(uv_stream_t *server, int status)
{
    client *c;

    if (status < 0)
        return;
    c = calloc(1, sizeof(*c));
    if (c == NULL || (c->buf = malloc(bufsize)) == NULL) {
        free(c);
        return;
    }
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_close);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void
usage(FILE *f)
{
    fprintf(f,
"usage: c_server_libuv [--host ADDR] [--port PORT] [--bufsize BYTES]"
" [--cpu N]\n"
"  --host ADDR     listen address (default 127.0.0.1)\n"
"  --port PORT     listen port (default 25000; 0 picks a free one)\n"
"  --bufsize N     per-connection read buffer (default 65536)\n"
"  --cpu N         pin the server to CPU N\n"
"Prints \"READY <port>\" once it listens.\n");
}

int
main(int argc, char **argv)
{
    static const struct option lopts[] = {
        {"host", required_argument, NULL, 'h'},
        {"port", required_argument, NULL, 'p'},
        {"bufsize", required_argument, NULL, 'b'},
        {"cpu", required_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'H'},
        {NULL, 0, NULL, 0}
    };
    const char *host = "127.0.0.1";
    int port = 25000, cpu = -1, ch, rc;

    while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        switch (ch) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'b': bufsize = strtoul(optarg, NULL, 10); break;
        case 'u': cpu = atoi(optarg); break;
        case 'H': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || bufsize == 0 || bufsize > 1u << 30) {
        usage(stderr);
        return 2;
    }
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof(set), &set) < 0) {
            perror("sched_setaffinity");
            return 2;
        }
    }

    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    struct sockaddr_storage addr;
    int namelen = sizeof(addr);

    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0
        && uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0) {
        fprintf(stderr, "c_server_libuv: bad address %s\n", host);
        return 2;
    }
    uv_tcp_init(loop, &server);
    if ((rc = uv_tcp_bind(&server, (struct sockaddr *)&addr, 0)) < 0
        || (rc = uv_listen((uv_stream_t *)&server, 1024,
                           on_connection)) < 0) {
        fprintf(stderr, "c_server_libuv: listen on %s:%d: %s\n", host, port,
                uv_strerror(rc));
        return 1;
    }
    uv_tcp_getsockname(&server, (struct sockaddr *)&addr, &namelen);
    port = ntohs(addr.ss_family == AF_INET6
                 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                 : ((struct sockaddr_in *)&addr)->sin_port);
    printf("READY %d\n", port);
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}
