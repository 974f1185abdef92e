"""The original's echo server usage, which must keep working: a job runs an
accept loop and submits one job per connection while the main thread waits
in pool.join(); every connection is served, however many arrive at once
(up to max_children - 1 concurrently)."""
import os
import socket
import threading
import time

import pytest


def echo_client(conn, bufsize):
    with conn:
        buf = bytearray(bufsize)
        while True:
            n = conn.recv_into(buf)
            if not n:
                break
            conn.sendall(buf[:n])


def echo_server(pool, lsock, stop, bufsize):
    while True:
        try:
            conn, _ = lsock.accept()
        except OSError:
            break
        if stop.is_set():
            conn.close()
            break
        conn.setblocking(True)
        pool.submit(echo_client, conn, bufsize)
    lsock.close()


def recv_exact(sock, n):
    chunks = []
    while n:
        data = sock.recv(min(n, 65536))
        if not data:
            raise ConnectionError("server closed early")
        chunks.append(data)
        n -= len(data)
    return b"".join(chunks)


def run_echo(ftp, n_clients, max_children, messages):
    pool = ftp.Pool(max_children)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)
    addr = lsock.getsockname()
    stop = threading.Event()
    # Every client echoes its first message, then waits until all clients
    # got theirs: this only completes if all connections are served at once.
    barrier = threading.Barrier(n_clients, timeout=3)
    errors = []
    received = {}

    def client(i):
        # Connect once the main thread sits in pool.join(), as in the
        # original usage where clients arrive while the server runs.
        time.sleep(0.1)
        try:
            with socket.create_connection(addr, timeout=3) as s:
                got = []
                for k, msg in enumerate(messages(i)):
                    s.sendall(msg)
                    got.append(recv_exact(s, len(msg)))
                    if k == 0:
                        barrier.wait()
                s.shutdown(socket.SHUT_WR)
                tail = s.recv(1)
                received[i] = (got, tail)
        except Exception as exc:  # reported by the main thread
            errors.append((i, repr(exc)))
            barrier.abort()

    def stopper(clients):
        for t in clients:
            t.join(10)
        stop.set()
        # Wake the accept loop so it sees the flag.
        try:
            socket.create_connection(addr, timeout=2).close()
        except OSError:
            pass

    pool.submit(echo_server, pool, lsock, stop, 4096)
    clients = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(n_clients)]
    for t in clients:
        t.start()
    stopper_thread = threading.Thread(target=stopper, args=(clients,),
                                      daemon=True)
    stopper_thread.start()
    try:
        joined = pool.join(10)
    finally:
        stop.set()
        lsock.close()
        stopper_thread.join(5)
    return pool, joined, errors, received


def _messages(i):
    return [bytes([65 + i]) * 100,
            os.urandom(3000 + i),
            os.urandom(50000),
            b"end-%d" % i]


@pytest.mark.parametrize("n_clients, max_children", [(5, 6), (5, 8), (1, 2),
                                                     (1, 4)])
def test_echo_server_serves_simultaneous_clients(ftp, n_clients,
                                                 max_children):
    msgs = {i: _messages(i) for i in range(n_clients)}
    pool, joined, errors, received = run_echo(ftp, n_clients, max_children,
                                              msgs.__getitem__)
    assert errors == []
    assert joined is True
    assert sorted(received) == list(range(n_clients))
    for i, (got, tail) in received.items():
        assert got == msgs[i]
        assert tail == b"", "server must not send extra bytes"
    assert list(pool.failed) == []
    assert pool.child_cnt == 0


def test_echo_server_many_sequential_clients(ftp):
    msgs = {i: [b"x%d" % i] for i in range(3)}
    pool, joined, errors, received = run_echo(ftp, 3, 4, msgs.__getitem__)
    assert errors == [] and joined is True
    assert {i: got for i, (got, _) in received.items()} == msgs
