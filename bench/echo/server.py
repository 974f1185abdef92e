"""Echo servers for the echo benchmark, one mode per process.

    python3 bench/echo/server.py --mode MODE [--host H] [--port P]
                                 [--bufsize N] [--threads N]

Modes:
  asyncio-proto    stdlib asyncio loop, asyncio.Protocol echo
  asyncio-streams  stdlib asyncio loop, start_server reader/writer echo
  uvloop-proto     the same two on uvloop
  uvloop-streams
  threads          fastthreadpool.Pool: a pool job runs the accept loop and
                   submits one job per connection; the job loops
                   n = recv_into(buf) / sendall(view[:n]) on a preallocated
                   buffer of --bufsize bytes.  The main thread sits in
                   pool.join().
  threads-notecho  NOT AN ECHO: the original benchmark's handler, which
                   sends the whole --bufsize buffer after every receive,
                   whatever was received.  Kept only to show where the
                   original published figures came from.

--port 0 picks a free port.  The server prints "READY <port> gil=on|off"
once it listens and stops cleanly on SIGTERM or SIGINT.  --threads is the
pool size; the accept loop occupies one worker, so it must be at least the
number of concurrent connections + 1.
"""
import argparse
import asyncio
import os
import signal
import socket
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

MODES = ("asyncio-proto", "asyncio-streams", "uvloop-proto",
         "uvloop-streams", "threads", "threads-notecho")


def make_listener(host, port, backlog):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


def ready(sock):
    # The GIL's state once everything is imported: free-threaded CPython
    # turns it back on for an extension module not declared safe without
    # it, and the benchmark checks that it did not.
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print("READY", sock.getsockname()[1], "gil=" + ("on" if gil else "off"),
          flush=True)


# --------------------------------------------------------------------------
# asyncio / uvloop
# --------------------------------------------------------------------------

def set_nodelay(transport):
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


class EchoProtocol(asyncio.Protocol):
    transports = set()

    def connection_made(self, transport):
        set_nodelay(transport)
        self.transport = transport
        self.transports.add(transport)

    def connection_lost(self, exc):
        self.transports.discard(self.transport)

    def data_received(self, data):
        self.transport.write(data)

    # eof_received returns None: the transport closes after the client's EOF.


async def serve_async(args, lsock):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    writers = set()

    async def echo_streams(reader, writer):
        set_nodelay(writer.transport)
        writers.add(writer)
        read = reader.read
        write = writer.write
        bufsize = args.bufsize
        try:
            # Lock-step clients never let the write buffer grow, so, as in
            # the uvloop and original benchmarks, there is no drain() here.
            while True:
                data = await read(bufsize)
                if not data:
                    break
                write(data)
        except ConnectionError:
            pass
        finally:
            writers.discard(writer)
            writer.close()

    if args.mode.endswith("proto"):
        server = await loop.create_server(EchoProtocol, sock=lsock)
    else:
        server = await asyncio.start_server(echo_streams, sock=lsock,
                                            limit=max(args.bufsize, 65536))
    ready(lsock)
    await stop.wait()
    server.close()
    for t in list(EchoProtocol.transports):
        t.close()
    for w in list(writers):
        w.close()


def run_async(args):
    lsock = make_listener(args.host, args.port, 128)
    if args.mode.startswith("uvloop"):
        import uvloop
        factory = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop
    if hasattr(asyncio, "Runner"):
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(serve_async(args, lsock))
    else:
        loop = factory()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve_async(args, lsock))
        finally:
            loop.close()
    return 0


# --------------------------------------------------------------------------
# threads on fastthreadpool
# --------------------------------------------------------------------------

class ThreadServer:
    def __init__(self, args):
        # The signals go to the waiter thread only, whatever the main
        # thread does inside pool.join().  Threads created from here on,
        # the pool's included, inherit the mask.
        signal.pthread_sigmask(signal.SIG_BLOCK,
                               {signal.SIGTERM, signal.SIGINT})
        sys.path.insert(0, ROOT)
        import fastthreadpool
        self.args = args
        self.stopping = threading.Event()
        self.lock = threading.Lock()   # protects conns and the totals
        self.conns = set()
        self.received = 0
        self.sent = 0
        self.lsock = make_listener(args.host, args.port, args.threads)
        self.pool = fastthreadpool.Pool(args.threads)

    def accept_loop(self, handler, bufsize):
        lsock = self.lsock
        submit = self.pool.submit
        while True:
            try:
                client, _ = lsock.accept()
            except OSError:
                if self.stopping.is_set():
                    return
                raise
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.conns.add(client)
            submit(handler, client, bufsize)

    def forget(self, sock, received=0, sent=0):
        with self.lock:
            self.conns.discard(sock)
            self.received += received
            self.sent += sent
        sock.close()

    def echo(self, sock, bufsize):
        """The echo: send back exactly the n bytes received."""
        buf = bytearray(bufsize)
        view = memoryview(buf)
        recv_into = sock.recv_into
        sendall = sock.sendall
        try:
            while True:
                n = recv_into(buf)
                if n == 0:
                    break
                sendall(view[:n])
        except OSError:
            if not self.stopping.is_set():
                raise
        finally:
            self.forget(sock)

    def notecho(self, sock, bufsize):
        """NOT AN ECHO: the original handler.  It ignores the byte count of
        recvmsg_into and sends the whole buffer after every receive.  One
        change: it stops at the client's EOF, where the original went on
        sending whole buffers until the client closed, so that the surplus
        that clients report is the surplus of the run itself."""
        buf = bytearray(bufsize)
        bufs = [buf]
        received = sent = 0
        try:
            while True:
                n = sock.recvmsg_into(bufs)[0]
                if n == 0:
                    break
                received += n
                sock.sendall(buf)
                sent += bufsize
        except OSError:
            pass    # the original swallowed every error here
        finally:
            self.forget(sock, received, sent)

    def stop(self):
        self.stopping.set()
        try:
            # Wakes the accept() blocked in the pool worker.
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def wait_for_signal(self):
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
        self.stop()
        # pool.join() returns once the accept loop and the handlers are
        # gone; if it does not, the process must still end.
        threading.Event().wait(10.0)
        print("server: pool did not stop within 10 s", file=sys.stderr,
              flush=True)
        os._exit(3)

    def run(self):
        handler = (self.notecho if self.args.mode == "threads-notecho"
                   else self.echo)
        threading.Thread(target=self.wait_for_signal, daemon=True,
                         name="signal-waiter").start()
        self.pool.submit(self.accept_loop, handler, self.args.bufsize)
        ready(self.lsock)
        self.pool.join()
        self.lsock.close()
        failed = list(self.pool.failed)
        for f in failed:
            print("server: job failed:", f, file=sys.stderr)
        if self.args.mode == "threads-notecho":
            print("STATS received=%d sent=%d" % (self.received, self.sent),
                  flush=True)
        return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", required=True, choices=MODES)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=25000)
    ap.add_argument("--bufsize", type=int, default=65536,
                    help="thread buffer size; read size for streams")
    ap.add_argument("--threads", type=int, default=8,
                    help="pool size (>= connections + 1)")
    args = ap.parse_args()
    if args.mode.startswith("threads"):
        return ThreadServer(args).run()
    return run_async(args)


if __name__ == "__main__":
    sys.exit(main())
