#!/bin/sh
# The event-driven, blocking, datagram and TLS suites under Valgrind's
# memcheck (make check-valgrind, docs/reliability.md).
#
#   valgrind.sh BUILD_DIR [all|ci] [JOBS]
#
# all: every event-loop suite (GN_LOOP_SUITES in tests/CMakeLists.txt,
#      which holds test_dgram and test_tls) on the epoll and the poll
#      backend, and the blocking suites (BLOCKING_SUITES below) once.
# ci:  on the epoll backend only, and of the event-loop suites only
#      CI_LOOP_SUITES below (echo, close, back-pressure, framing, pairs,
#      memory, connect, limits, several loops, timers, posted tasks,
#      datagrams, TLS), to fit CI's time; left out there: test_transports,
#      test_watch, test_conn_message, test_conn_features, test_faults,
#      and the reconnect and rate-limit suites, which mostly wait out
#      their timers (about 200 s of 490).
#
# Not io_uring: Valgrind 3.19 knows io_uring's system calls but not what
# the kernel does through the rings: the receive buffers are mapped (so
# "defined" from the start) and it never sees the kernel write them.  It
# would check less there than on epoll and poll, which run the same
# connection code (docs/reliability.md).  The same holds for the blocking
# calls' ring (src/blocking_wait_uring.c), which GN_BACKEND=epoll turns
# off: the blocking suites run so.
#
# Criterion runs each test in a child process it starts by exec'ing the
# test binary again; --trace-children puts that child under memcheck
# too, with its own log.  Criterion does not pass a child's exit status
# on, so --error-exitcode alone cannot fail the run: every log is read
# afterwards, and any "ERROR SUMMARY" other than 0 fails it (with
# --errors-for-leak-kinds a definite or indirect leak is an error too).
# A test process forks only to exec (sh, openssl, the CLI) or to run
# raw-socket clients; --child-silent-after-fork keeps those quiet, and
# programs under /bin and /usr/bin are not traced, nor the CLI
# (tools/gnezdo), which a few TLS tests start as a peer and wait for.
set -eu
one=
if [ "${1:-}" = --one ]; then # xargs calls back in here: --one BUILD SUITE BACKEND
    one=1
    shift
fi
build=$1
src=$(cd "$(dirname "$0")/.." && pwd)
logs=$build/valgrind
BLOCKING_SUITES="test_blocking test_deadline test_server_threads"
CI_LOOP_SUITES="test_tls test_dgram test_client_connect test_server_loops
    test_conn_close test_loop_timers test_conn_pair test_conn_memory
    test_conn_echo test_conn_framing test_server_limits test_loop_post test_conn_backpressure"

# One suite on one backend: its output in NAME.out, its status and
# seconds in NAME.status, one memcheck log per process in NAME.PID.log.
run_one() {
    suite=$1 backend=$2 name=$1_$2
    if [ "$backend" = default ]; then unset GN_BACKEND; else export GN_BACKEND="$backend"; fi
    t0=$(date +%s)
    # GN_TEST_VALGRIND: the few tests that measure memory skip themselves.
    GN_TEST_VALGRIND=1 valgrind --trace-children=yes --trace-children-skip='/bin/*,/usr/bin/*,*/tools/gnezdo' \
        --child-silent-after-fork=yes --leak-check=full --show-leak-kinds=definite,indirect \
        --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --num-callers=30 \
        --suppressions="$src/tests/valgrind.supp" --log-file="$logs/$name.%p.log" \
        "$build/tests/$suite" --jobs 1 >"$logs/$name.out" 2>&1 && rc=0 || rc=$?
    secs=$(($(date +%s) - t0))
    echo "$rc $secs" >"$logs/$name.status"
    echo "valgrind: $name: exit $rc in $secs s;" \
        "$(grep -h 'Synthesis' "$logs/$name.out" | tail -n 1 | sed 's/.*Synthesis: //')"
}

if [ "$one" ]; then
    run_one "$2" "$3"
    exit 0
fi

subset=${2:-all}
jobs=${3:-2}
case $subset in
all) backends="epoll poll" ;;
ci) backends="epoll" ;;
*)
    echo "valgrind.sh: subset '$subset': expected all or ci" >&2
    exit 2
    ;;
esac
command -v valgrind >/dev/null || {
    echo "valgrind.sh: valgrind not found (scripts/install-deps --valgrind)" >&2
    exit 2
}

# The list CMake parametrises over backends, read from its one home.
loop_suites=$(sed -n '/^set(GN_LOOP_SUITES/,/)/p' "$src/tests/CMakeLists.txt" |
    sed 's/set(GN_LOOP_SUITES//; s/)//' | tr -s ' \n' '  ')
[ -n "$loop_suites" ] || {
    echo "valgrind.sh: no GN_LOOP_SUITES in tests/CMakeLists.txt" >&2
    exit 2
}

[ "$subset" = ci ] && loop_suites=$CI_LOOP_SUITES

rm -rf "$logs"
mkdir -p "$logs"
runs=$logs/runs
: >"$runs"
# epoll: blocking calls then wait with poll(2), not through a ring
for s in $BLOCKING_SUITES; do echo "$s epoll" >>"$runs"; done
for b in $backends; do
    for s in $loop_suites; do echo "$s $b" >>"$runs"; done
done

start=$(date +%s)
echo "valgrind: $(wc -l <"$runs") runs ($subset), $jobs at a time, logs in $logs"
xargs -P "$jobs" -L 1 sh "$0" --one "$build" <"$runs" || true

failed=0
while read -r suite backend; do
    name=${suite}_$backend
    if [ ! -f "$logs/$name.status" ]; then
        echo "valgrind: $name did not run"
        failed=1
        continue
    fi
    read -r rc secs <"$logs/$name.status"
    if [ "$rc" -ne 0 ]; then
        echo "valgrind: $name: the suite exited $rc"
        tail -n 30 "$logs/$name.out"
        failed=1
    fi
done <"$runs"
checked=0 bad=0
for log in "$logs"/*.log; do
    grep -q 'ERROR SUMMARY' "$log" || continue # exec'd a program not traced
    checked=$((checked + 1))
    grep -q 'ERROR SUMMARY: 0 errors' "$log" && continue
    echo "valgrind: errors in $log:"
    cat "$log"
    bad=$((bad + 1))
    failed=1
done
tests=$(sed -n 's/.*Tested: \([0-9]*\).*/\1/p' "$logs"/*.out | awk '{n += $1} END {print n + 0}')
echo "valgrind: $subset: $(wc -l <"$runs") runs, $tests tests, $checked processes checked," \
    "$bad with errors, in $(($(date +%s) - start)) s"
exit $failed
