"""The original benchmark's echo client, made honest.

    python3 bench/echo/client.py --port P [--host H] [--workers 5]
        [--msize 1000] (--num N | --duration S) [--count-surplus] [--json]

As in the original: --workers Python processes, each with one TCP_NODELAY
connection, each sending msize bytes and then reading until msize bytes came
back, in lock-step.  Unlike the original:
  - every reply is verified: the message content depends on the connection
    and on the sequence number, a byte that differs, a surplus byte (also
    after the last reply), a stall (--timeout) or a closed connection fails
    the run with exit code 1;
  - an error in any worker fails the run (the original ignored them and
    reported absurd rates against a dead server);
  - the wall time starts when all workers are connected and ready (behind a
    barrier), so process start-up is not measured.
--count-surplus is for a server that is not an echo: replies are not
verified; a reply is complete once msize bytes came back, counted the way
the original client counted them, and the surplus (bytes received - bytes
sent, including what arrives after the client's EOF) is reported.

Rates: messages/s = messages / wall time; MB/s = messages/s * msize / 2**20.
"""
import argparse
import json
import multiprocessing
import queue
import random
import socket
import sys
import time

# A message is a window into a per-connection random block, shifted by the
# sequence number, so that a reply from another connection or another
# request does not match.
SHIFTS = 251


def payload_block(idx, msize):
    return random.Random(idx * 1000003 + msize).randbytes(msize + SHIFTS)


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i, x, y
    return min(len(a), len(b)), None, None


def run_verify(sock, idx, args, deadline):
    msize = args.msize
    block = memoryview(payload_block(idx, msize))
    buf = bytearray(msize)
    view = memoryview(buf)
    sendall = sock.sendall
    recv_into = sock.recv_into
    clock = time.perf_counter
    num = args.num
    k = 0
    while (k < num) if num else (clock() < deadline):
        off = k % SHIFTS
        msg = block[off:off + msize]
        sendall(msg)
        got = 0
        while got < msize:
            n = recv_into(view[got:], msize - got)
            if n == 0:
                raise ConnectionError(
                    "connection %d closed by the server (message %d, %d of "
                    "%d bytes back)" % (idx, k, got, msize))
            got += n
        if buf != msg:
            i, x, y = first_difference(buf, msg)
            raise ValueError("connection %d: byte %d of message %d differs "
                             "(got 0x%02x, sent 0x%02x)" % (idx, i, k, x, y))
        k += 1
    return k, k * msize


def run_count(sock, idx, args, deadline):
    """The original client's loop: count bytes, look at nothing."""
    msize = args.msize
    msg = payload_block(idx, msize)[:msize]
    sendall = sock.sendall
    recv = sock.recv
    clock = time.perf_counter
    num = args.num
    received = 0
    k = 0
    while (k < num) if num else (clock() < deadline):
        sendall(msg)
        nrecv = 0
        while nrecv < msize:
            r = recv(msize)
            if not r:
                raise ConnectionError(
                    "connection %d closed by the server (message %d)"
                    % (idx, k))
            nrecv += len(r)
        received += nrecv
        k += 1
    return k, received


def drain(sock, args):
    """Half-closes and reads until the server's EOF: bytes arriving now are
    surplus.  Returns their count."""
    sock.shutdown(socket.SHUT_WR)
    sock.settimeout(args.drain_timeout)
    extra = 0
    try:
        while True:
            r = sock.recv(65536)
            if not r:
                break
            extra += len(r)
    except (socket.timeout, ConnectionError):
        pass
    return extra


def worker(idx, args, barrier, results):
    try:
        sock = socket.create_connection((args.host, args.port),
                                        timeout=args.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(args.timeout)   # a stall raises socket.timeout
        barrier.wait(timeout=60)
        t0 = time.perf_counter()
        deadline = t0 + (args.duration or 0)
        if args.count_surplus:
            n, received = run_count(sock, idx, args, deadline)
        else:
            n, received = run_verify(sock, idx, args, deadline)
        t1 = time.perf_counter()
        extra = drain(sock, args)
        if extra and not args.count_surplus:
            raise ValueError("connection %d: %d surplus byte(s) after the "
                             "last reply" % (idx, extra))
        sock.close()
        results.put({"idx": idx, "t0": t0, "t1": t1, "messages": n,
                     "sent": n * args.msize, "received": received + extra})
    except BaseException as e:
        if isinstance(e, socket.timeout):
            msg = "stall: no reply for %g s" % args.timeout
        else:
            msg = "%s: %s" % (type(e).__name__, e)
        try:
            barrier.abort()
        except Exception:
            pass
        results.put({"idx": idx, "error": "worker %d: %s" % (idx, msg)})


def run(args):
    ctx = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods()
        else None)
    barrier = ctx.Barrier(args.workers)
    results = ctx.Queue()
    procs = [ctx.Process(target=worker, args=(i, args, barrier, results),
                         daemon=True)
             for i in range(args.workers)]
    for p in procs:
        p.start()
    got = {}
    errors = []
    while len(got) < args.workers:
        try:
            r = results.get(timeout=0.5)
        except queue.Empty:
            dead = [i for i, p in enumerate(procs)
                    if not p.is_alive() and i not in got]
            if dead:
                # A result may still be in the pipe; look once more.
                try:
                    r = results.get(timeout=1.0)
                except queue.Empty:
                    errors.append("worker(s) %s died without a result"
                                  % dead)
                    break
            else:
                continue
        got[r["idx"]] = r
        if "error" in r:
            errors.append(r["error"])
    for p in procs:
        p.join(timeout=args.timeout + args.drain_timeout + 5)
        if p.is_alive():
            p.kill()
            errors.append("worker did not exit")
        elif p.exitcode not in (0, None):
            errors.append("worker exit code %s" % p.exitcode)
    out = {"ok": not errors, "client": "python", "workers": args.workers,
           "msize": args.msize,
           "mode": "count-surplus" if args.count_surplus else "verify"}
    if errors:
        out["error"] = "; ".join(errors)
        return out
    rs = list(got.values())
    secs = max(r["t1"] for r in rs) - min(r["t0"] for r in rs)
    messages = sum(r["messages"] for r in rs)
    sent = sum(r["sent"] for r in rs)
    received = sum(r["received"] for r in rs)
    rate = messages / secs if secs > 0 else 0.0
    out.update({"messages": messages, "seconds": secs, "msg_per_s": rate,
                "mb_per_s": rate * args.msize / 2 ** 20,
                "bytes_sent": sent, "bytes_received": received,
                "surplus_bytes": max(0, received - sent)})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=25000)
    ap.add_argument("--workers", type=int, default=5)
    ap.add_argument("--msize", type=int, default=1000)
    ap.add_argument("--num", type=int, default=0,
                    help="messages per worker (default 20000 without "
                         "--duration)")
    ap.add_argument("--duration", type=float, default=0.0,
                    help="run for this many seconds instead of --num")
    ap.add_argument("--timeout", type=float, default=5.0,
                    help="stall timeout in seconds")
    ap.add_argument("--drain-timeout", type=float, default=1.0)
    ap.add_argument("--count-surplus", action="store_true")
    ap.add_argument("--json", action="store_true",
                    help="print one JSON line instead of text")
    args = ap.parse_args()
    if args.num and args.duration:
        ap.error("give --num or --duration, not both")
    if not args.num and not args.duration:
        args.num = 20000
    out = run(args)
    if args.json:
        print(json.dumps(out), flush=True)
    elif out["ok"]:
        print("%d messages of %d bytes in %.3f s: %.0f msg/s, %.2f MB/s%s"
              % (out["messages"], args.msize, out["seconds"],
                 out["msg_per_s"], out["mb_per_s"],
                 ", surplus %d bytes" % out["surplus_bytes"]
                 if args.count_surplus else ""))
    if not out["ok"]:
        print("client: FAIL:", out["error"], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
