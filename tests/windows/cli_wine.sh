#!/bin/bash
# The Windows gnezdo.exe under Wine against the Linux side on loopback
# (issue 12, docs/windows.md):
#   tests/windows/cli_wine.sh [WINDOWS_BUILD_DIR [LINUX_BUILD_DIR]]
# defaults build-windows and build.  Needs wine, python3 and sha256sum,
# and the Linux gnezdo for send and recv.  Checks ports and addr; listen
# --echo (event loop, and --threads 4) answering Python clients and the
# Linux `gnezdo connect`, stopped by Ctrl+C (SIGINT, which Wine turns
# into the console's CTRL_C_EVENT); listen printing binary data; connect
# (event-driven and --sync) to a Linux echo server, and its Ctrl+C; send
# to a Linux recv
# and recv from a Linux send with the SHA-256 of both ends and of the
# file matching; demo.  Wine runs in a private prefix in the build
# directory (WINEPREFIX overrides it), created on first use.  Every wait
# is bounded; only processes started here are stopped.  Prints a line per
# check and exits 1 if any failed.
set -u

win_build=$(cd "${1:-build-windows}" && pwd) || exit 2
linux_build=$(cd "${2:-build}" && pwd) || exit 2
exe=$win_build/tools/gnezdo.exe
linux_gnezdo=$linux_build/tools/gnezdo
export WINEPREFIX=${WINEPREFIX:-$win_build/wineprefix}
export WINEDEBUG=-all

for need in "$exe" "$linux_gnezdo"; do
    if [ ! -x "$need" ] && [ ! -f "$need" ]; then
        echo "cli_wine: $need is missing: build it first" >&2
        exit 2
    fi
done
for tool in wine python3 sha256sum timeout; do
    command -v "$tool" >/dev/null || {
        echo "cli_wine: $tool is not installed" >&2
        exit 2
    }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/cli_wine.XXXXXX")
started=() # the background PIDs this script started and has not reaped
failures=0

cleanup() {
    for pid in "${started[@]}"; do
        kill -KILL "$pid" 2>/dev/null
    done
    rm -rf "$work"
}
trap cleanup EXIT

ok() { echo "ok    $*"; }
fail() {
    echo "FAIL  $*"
    failures=$((failures + 1))
}

# win ARGS...: gnezdo.exe under Wine in the foreground, at most 60 s.
win() { timeout 60 wine "$exe" "$@"; }

# start_bg NAME CMD...: CMD in the background, its stdout and stderr in
# $work/NAME.out and .err; the PID in $bg.  Wine's PID is the Windows
# process itself, so signals reach gnezdo.exe.
start_bg() {
    local name=$1
    shift
    "$@" >"$work/$name.out" 2>"$work/$name.err" &
    bg=$!
    started+=("$bg")
}

# port_of NAME: the port of the first "listening on HOST:PORT" in
# $work/NAME.err, waiting up to 90 s for it; empty if none came.
port_of() {
    local line
    for _ in $(seq 900); do
        line=$(grep -m1 '^listening on ' "$work/$1.err" 2>/dev/null)
        if [ -n "$line" ]; then
            line=${line#listening on }
            line=${line%% *}
            echo "${line##*:}"
            return
        fi
        sleep 0.1
    done
}

# stop PID SIGNAL: send SIGNAL, wait up to 15 s for the exit, then KILL;
# the exit status in $status (137 after the KILL).
stop() {
    local pid=$1
    kill "-$2" "$pid" 2>/dev/null
    for _ in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid"
    status=$?
    forget "$pid"
}

# forget PID: reaped, so its number may be another process's from now on.
forget() {
    local kept=() p
    for p in "${started[@]}"; do
        [ "$p" = "$1" ] || kept+=("$p")
    done
    started=("${kept[@]}")
}

# wait_exit PID: wait up to 60 s for PID to end by itself; $status.
wait_exit() {
    local pid=$1
    for _ in $(seq 600); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    stop "$pid" KILL
}

# sha_of FILE: the digest sha256sum computes; sha_said NAME: the one
# gnezdo printed on $work/NAME.err.
sha_of() { sha256sum "$1" | cut -d' ' -f1; }
sha_said() { sed -n 's/^sha256 //p' "$work/$1.err" | tr -d '\r'; }

# Data that text mode would change: random bytes with CR LF, LF and ^Z.
head -c 4000000 /dev/urandom >"$work/data.bin"
printf 'line\r\nline\n\032end\n' >>"$work/data.bin"
want=$(sha_of "$work/data.bin")

# Echo clients in Python: N connections at once, each sends the file,
# half-closes and must get every byte back.
cat >"$work/echo_clients.py" <<'EOF'
import socket, sys, threading
port, count, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
data = open(path, "rb").read()
bad = []
def client(i):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR))).start()
        got = bytearray()
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            got += chunk
        if got != data:
            bad.append("client %d: %d of %d bytes back, %s" % (i, len(got), len(data),
                       "different" if got != data[:len(got)] else "a prefix"))
        s.close()
    except Exception as e:
        bad.append("client %d: %s" % (i, e))
threads = [threading.Thread(target=client, args=(i,)) for i in range(count)]
for t in threads: t.start()
for t in threads: t.join(60)
print("\n".join(bad) if bad else "all %d echoed" % count)
sys.exit(1 if bad else 0)
EOF

# A client that says one byte, reads it back, then waits for the server
# to close: prints its local port, then "closed" at the end of the stream.
cat >"$work/holder.py" <<'EOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=50)
s.sendall(b"x")
s.recv(1)
print(s.getsockname()[1], flush=True)
while s.recv(1 << 16):
    pass
print("closed")
EOF

echo "cli_wine: $exe under Wine (WINEPREFIX=$WINEPREFIX)"
# The first start creates the prefix (several seconds), with Wine's own
# services, which inherit the standard streams: let them take /dev/null.
# Keep this prefix's wineserver (and the services it starts for the first
# socket) up between the checks: it ends by itself 60 s after the last
# Wine process.  Without it a server started after a pause waited for
# Wine to start again, and once (CI, a fresh machine) took over 30 s to
# print its address.  It must come first: a server already running keeps
# its own setting (make check-windows starts it so, before wineboot).
mkdir -p "$WINEPREFIX"
wineserver -p 60 </dev/null >/dev/null 2>&1 || true
timeout 180 wine "$exe" --version </dev/null >/dev/null 2>&1 ||
    echo "cli_wine: note: the first Wine start failed or was slow"

# ---- ports, addr --------------------------------------------------------
win ports http >"$work/ports.out" 2>"$work/ports.err"
rc=$?
if [ $rc = 0 ] && grep -q '^http  *80/tcp ' "$work/ports.out"; then
    ok "ports http: 80/tcp"
else
    fail "ports http: exit $rc, $(head -c 300 "$work/ports.out" "$work/ports.err")"
fi
win addr 127.0.0.1:https --json >"$work/addr.out" 2>"$work/addr.err"
rc=$?
if [ $rc = 0 ] && grep -q '"port":443,"service":"https"' "$work/addr.out"; then
    ok "addr 127.0.0.1:https --json: port 443 (https)"
else
    fail "addr: exit $rc, $(head -c 300 "$work/addr.out" "$work/addr.err")"
fi
win addr 'not a host:99999' >/dev/null 2>&1
rc=$?
if [ $rc = 2 ]; then
    ok "addr with a bad port: usage error (2)"
else
    fail "addr with a bad port: exit $rc, not 2"
fi

# ---- listen --echo, event loop and threads ------------------------------
for mode in "" "--threads 4"; do
    name="listen --echo${mode:+ $mode}"
    # shellcheck disable=SC2086 # $mode is two words or none
    start_bg listen wine "$exe" listen 127.0.0.1:0 --echo $mode
    pid=$bg
    port=$(port_of listen)
    if [ -z "$port" ]; then
        fail "$name: no 'listening on' line: $(head -c 300 "$work/listen.err")"
        stop "$pid" KILL
        continue
    fi
    if result=$(timeout 90 python3 "$work/echo_clients.py" "$port" 6 "$work/data.bin" 2>&1); then
        ok "$name on port $port: Python, $result"
    else
        fail "$name: Python clients: $result"
    fi
    timeout 60 "$linux_gnezdo" connect "127.0.0.1:$port" <"$work/data.bin" \
        >"$work/linux_connect.out" 2>"$work/linux_connect.err"
    rc=$?
    if [ $rc = 0 ] && [ "$(sha_of "$work/linux_connect.out")" = "$want" ]; then
        ok "$name: the Linux gnezdo connect got its 4 MB back"
    else
        fail "$name: Linux gnezdo connect: exit $rc, $(head -c 300 "$work/linux_connect.err")"
    fi
    # A client still connected at Ctrl+C: a graceful stop closes it and
    # logs it ("disconnect"); Wine's default action would just end the
    # process, silently (and with status 0 as well).
    start_bg holder timeout 60 python3 "$work/holder.py" "$port"
    holder_pid=$bg
    held=
    for _ in $(seq 300); do
        held=$(head -n1 "$work/holder.out")
        [ -n "$held" ] && grep -q "^connect .*:$held -> " "$work/listen.err" && break
        sleep 0.1
    done
    stop "$pid" INT
    listen_status=$status
    wait_exit "$holder_pid"
    if [ "$listen_status" = 0 ] && grep -q "^disconnect .*:$held -> " "$work/listen.err" &&
        grep -q '^closed$' "$work/holder.out"; then
        ok "$name: Ctrl+C (SIGINT) stops it, closing the client still connected"
    else
        fail "$name: after SIGINT exit $listen_status, client $held: $(tail -c 300 "$work/listen.err")"
    fi
done

# ---- listen printing what a client sends --------------------------------
start_bg print wine "$exe" listen 127.0.0.1:0
pid=$bg
port=$(port_of print)
if [ -n "$port" ]; then
    timeout 60 "$linux_gnezdo" send "$work/data.bin" "127.0.0.1:$port" --quiet >/dev/null 2>&1
    for _ in $(seq 100); do # the server prints what it read before the close
        grep -q '^disconnect ' "$work/print.err" && break
        sleep 0.1
    done
fi
stop "$pid" INT
if [ -n "$port" ] && [ "$(sha_of "$work/print.out")" = "$want" ]; then
    ok "listen (printing): stdout holds the client's bytes unchanged (binary)"
else
    fail "listen (printing): $(stat -c %s "$work/print.out") bytes out, exit $status"
fi

# ---- connect, event-driven and --sync, to a Linux echo server -----------
start_bg linux_echo "$linux_gnezdo" listen 127.0.0.1:0 --echo --quiet
linux_pid=$bg
port=$(port_of linux_echo)
for mode in "" "--sync"; do
    name="connect${mode:+ $mode}"
    # shellcheck disable=SC2086
    win connect "127.0.0.1:$port" $mode <"$work/data.bin" >"$work/connect.out" 2>"$work/connect.err"
    rc=$?
    if [ $rc = 0 ] && [ "$(sha_of "$work/connect.out")" = "$want" ]; then
        ok "$name: stdin through a Linux echo server back to stdout, unchanged"
    else
        fail "$name: exit $rc, $(stat -c %s "$work/connect.out") bytes, $(head -c 300 "$work/connect.err")"
    fi
done
# Ctrl+C while connected, stdin open and silent (a FIFO this shell holds
# open, so it never ends): the console's CTRL_C_EVENT stops the loop.
# Wine's default action would end it too: this guards against a handler
# that takes Ctrl+C and never stops the loop (a hang), and the stdin
# reader thread keeping the process alive.
mkfifo "$work/stdin.fifo"
exec 7<>"$work/stdin.fifo"
start_bg connect_int wine "$exe" connect "127.0.0.1:$port" <"$work/stdin.fifo"
pid=$bg
for _ in $(seq 300); do
    grep -q '^connected ' "$work/connect_int.err" && break
    sleep 0.1
done
stop "$pid" INT
exec 7>&-
if [ "$status" = 0 ] && grep -q '^connected ' "$work/connect_int.err"; then
    ok "connect: Ctrl+C (SIGINT) while waiting on stdin ends it at once, exit 0"
else
    fail "connect: after SIGINT exit $status: $(head -c 300 "$work/connect_int.err")"
fi
stop "$linux_pid" TERM

# ---- send: Windows to Linux; recv: Linux to Windows ---------------------
start_bg linux_recv timeout 90 "$linux_gnezdo" recv 127.0.0.1:0 "$work/linux_recv.bin"
recv_pid=$bg
port=$(port_of linux_recv)
win send "$work/data.bin" "127.0.0.1:$port" >"$work/win_send.out" 2>"$work/win_send.err"
rc=$?
wait_exit "$recv_pid"
sent=$(sha_said win_send)
got=$(sha_said linux_recv)
if [ $rc = 0 ] && [ "$status" = 0 ] && [ "$sent" = "$want" ] && [ "$got" = "$want" ] &&
    [ "$(sha_of "$work/linux_recv.bin")" = "$want" ]; then
    ok "gnezdo.exe send -> Linux recv: sha256 $want on both ends and of the file"
else
    fail "send -> Linux recv: exits $rc/$status, sha256 sent $sent, received $got, file $(sha_of "$work/linux_recv.bin") (want $want)"
fi

for dest in stdout file; do
    if [ $dest = stdout ]; then
        start_bg win_recv wine "$exe" recv 127.0.0.1:0
        out=$work/win_recv.out
    else
        start_bg win_recv wine "$exe" recv 127.0.0.1:0 "$work/win_recv.bin"
        out=$work/win_recv.bin
    fi
    recv_pid=$bg
    port=$(port_of win_recv)
    timeout 60 "$linux_gnezdo" send "$work/data.bin" "127.0.0.1:$port" \
        >"$work/linux_send.out" 2>"$work/linux_send.err"
    rc=$?
    wait_exit "$recv_pid"
    sent=$(sha_said linux_send)
    got=$(sha_said win_recv)
    if [ $rc = 0 ] && [ "$status" = 0 ] && [ "$sent" = "$want" ] && [ "$got" = "$want" ] &&
        [ -f "$out" ] && [ "$(sha_of "$out")" = "$want" ]; then
        ok "Linux send -> gnezdo.exe recv to $dest: sha256 matches on both ends and of the output"
    else
        fail "Linux send -> recv to $dest: exits $rc/$status, sha256 sent $sent, received $got, output $(sha_of "$out" 2>/dev/null) (want $want)"
    fi
done

# ---- demo -----------------------------------------------------------------
win demo >"$work/demo.out" 2>"$work/demo.err"
rc=$?
if [ $rc = 0 ] && grep -q 'every message delivered, all closed' "$work/demo.out"; then
    ok "demo: 3 clients served, exit 0"
else
    fail "demo: exit $rc, $(tail -c 300 "$work/demo.out" "$work/demo.err")"
fi

if [ $failures -gt 0 ]; then
    echo "cli_wine: $failures check(s) failed"
    exit 1
fi
echo "cli_wine: all checks passed"
