#!/usr/bin/env python3
"""Issue 9's three scenarios against a running echo server:
    scripts/threads_load.py HOST PORT [a|b|c|all]
a: 200 clients at once, 4 KiB each, echoed; b: 2,000 short connections in
a burst; c: 500 silent connections held for a second, and a fresh client
meanwhile.  E.g. against `gnezdo listen 127.0.0.1:7000 --echo --threads 16`.
Every wait is bounded; prints served/closed counts."""
import socket, sys, time, threading, resource, select

host, port = sys.argv[1], int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))

def echo_client(payload, results, i, timeout=20.0):
    try:
        s = socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        results[i] = "connect:" + type(e).__name__; barrier.abort(); return
    try:
        barrier.wait(30)
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            b = s.recv(65536)
            if not b:
                break
            got += b
        results[i] = "served" if got == payload else "closed"
    except OSError as e:
        results[i] = "closed:" + type(e).__name__
    finally:
        s.close()

barrier = None
def concurrent(n, size):
    global barrier
    barrier = threading.Barrier(n)
    res = [None] * n
    ts = [threading.Thread(target=echo_client, args=(b"x" * size, res, i)) for i in range(n)]
    t0 = time.time()
    for t in ts: t.start()
    for t in ts: t.join(60)
    return res, time.time() - t0

def count(res):
    out = {}
    for r in res:
        k = r if r == "served" else ("closed" if r and r.startswith("closed") else str(r))
        out[k] = out.get(k, 0) + 1
    return out

which = sys.argv[3] if len(sys.argv) > 3 else "all"
if which in ("all", "a"):
    res, dt = concurrent(200, 4096)
    print(f"A 200 concurrent x 4 KiB: {count(res)} in {dt:.2f}s")
if which in ("all", "b"):
    # 2,000 short connections in a burst: connect all at once, then echo each
    socks, res = [], []
    t0 = time.time()
    for i in range(2000):
        s = socket.socket(); s.setblocking(False)
        s.connect_ex((host, port)); socks.append(s)
    for s in socks:
        s.setblocking(True); s.settimeout(20)
        try:
            s.sendall(b"ping\n")
            got = b""
            while len(got) < 5:
                b = s.recv(64)
                if not b: break
                got += b
            res.append("served" if got == b"ping\n" else "closed")
        except OSError as e:
            res.append("closed:" + type(e).__name__)
        s.close()
    print(f"B 2000 short burst: {count(res)} in {time.time()-t0:.2f}s")
if which in ("all", "c"):
    silent = []
    for i in range(500):
        s = socket.create_connection((host, port), timeout=5); silent.append(s)
    t0 = time.time()
    fresh = socket.create_connection((host, port), timeout=5)
    fresh.sendall(b"fresh\n")
    try:
        got = fresh.recv(64); lat = time.time() - t0
        fresh_res = f"answered in {lat*1000:.1f} ms" if got == b"fresh\n" else f"closed ({got!r})"
    except OSError as e:
        fresh_res = "error " + type(e).__name__
    time.sleep(max(0.0, 1.0 - (time.time() - t0)))
    closed = 0
    for s in silent:
        r, _, _ = select.select([s], [], [], 0)
        if r:
            try:
                if s.recv(1, socket.MSG_PEEK) == b"": closed += 1
            except OSError: closed += 1
    print(f"C 500 silent held 1 s: {closed} closed by the server; fresh client: {fresh_res}")
    for s in silent: s.close()
    fresh.close()
