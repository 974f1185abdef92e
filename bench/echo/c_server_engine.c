/*
 * c_server_engine.c - an echo server on the ftpool engine.
 *
 * The main thread accepts; every connection becomes one pool job that loops
 * on blocking recv() / send() of exactly the bytes received, with its own
 * buffer of --bufsize bytes, until the peer closes.  A connection ties up a
 * worker for its whole life, so --threads must be at least the number of
 * concurrent connections (more connections wait in the queue until a worker
 * is free).
 *
 * Prints "READY <port>" on stdout once it listens.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ftpool.h"

static size_t bufsize = 65536;

/* Sends all of buf; 0 on success, -1 if the peer is gone. */
static int
send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static void
serve_connection(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char *buf = malloc(bufsize);

    if (buf != NULL) {
        for (;;) {
            ssize_t n = recv(fd, buf, bufsize, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0 || send_all(fd, buf, (size_t)n) < 0)
                break;
        }
        free(buf);
    }
    close(fd);
}

/* A connection that was queued but never served (pool torn down). */
static void
drop_connection(void *arg)
{
    close((int)(intptr_t)arg);
}

static void
usage(FILE *f)
{
    fprintf(f,
"usage: c_server_engine [--host ADDR] [--port PORT] [--bufsize BYTES]\n"
"                       [--threads N] [--cpu N]\n"
"  --host ADDR     listen address (default 127.0.0.1)\n"
"  --port PORT     listen port (default 25000; 0 picks a free one)\n"
"  --bufsize N     per-connection buffer (default 65536)\n"
"  --threads N     maximum pool workers = concurrent connections "
"(default 64)\n"
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
        {"threads", required_argument, NULL, 't'},
        {"cpu", required_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'H'},
        {NULL, 0, NULL, 0}
    };
    const char *host = "127.0.0.1";
    int port = 25000, cpu = -1, threads = 64, ch, rc, one = 1;

    while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        switch (ch) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'b': bufsize = strtoul(optarg, NULL, 10); break;
        case 't': threads = atoi(optarg); break;
        case 'u': cpu = atoi(optarg); break;
        case 'H': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || bufsize == 0 || bufsize > 1u << 30
        || threads < 1) {
        usage(stderr);
        return 2;
    }
    if (cpu >= 0) {
        /* Set before the pool starts threads: they inherit it. */
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof(set), &set) < 0) {
            perror("sched_setaffinity");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in addr = {0};
    socklen_t alen = sizeof(addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "c_server_engine: bad IPv4 address %s\n", host);
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        perror("socket");
        return 1;
    }
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0
        || listen(lfd, 1024) < 0
        || getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0) {
        fprintf(stderr, "c_server_engine: listen on %s:%d: %s\n", host,
                port, strerror(errno));
        return 1;
    }

    ftpool_options o = {0};
    ftpool_t *pool;
    o.max_workers = (unsigned)threads;
    if ((rc = ftpool_create(&o, &pool)) != FTPOOL_OK) {
        fprintf(stderr, "c_server_engine: ftpool_create: %s\n",
                ftpool_strerror(rc));
        return 1;
    }
    printf("READY %d\n", ntohs(addr.sin_port));
    fflush(stdout);

    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            perror("accept");
            break;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        rc = ftpool_submit_ex(pool, serve_connection, drop_connection,
                              (void *)(intptr_t)fd, 0, NULL);
        /* FTPOOL_ESPAWN: queued, served once a worker is free. */
        if (rc != FTPOOL_OK && rc != FTPOOL_ESPAWN) {
            fprintf(stderr, "c_server_engine: submit: %s\n",
                    ftpool_strerror(rc));
            close(fd);
        }
    }
    ftpool_destroy(pool);
    close(lfd);
    return 1;
}
