#!/bin/sh
# Runs one libFuzzer target of build-fuzz/ for a bounded time (make fuzz):
#   sh fuzz/run.sh NAME SECONDS       e.g. sh fuzz/run.sh conn 20
# NAME is a target without its fuzz_ prefix.  The seeds are read from
# fuzz/corpus/NAME; what the run learns goes to build-fuzz/corpus/NAME
# (kept between runs, never committed).  A crash, leak or timeout fails
# with the reproducer's path and the command that replays it.
set -eu
name=$1
seconds=$2
bin=build-fuzz/fuzz/fuzz_$name
out=build-fuzz/artifacts/$name
case $name in
endpoint) flags="-max_len=2048 -dict=fuzz/endpoint.dict" ;;
http_request) flags="-max_len=10000 -dict=fuzz/http_request.dict" ;;
cli_args) flags="-max_len=512 -dict=fuzz/cli_args.dict" ;;
conn | framing) flags="-max_len=512" ;;
tls_server) flags="-max_len=4096" ;;
*) echo "fuzz/run.sh: no target '$name'" >&2; exit 2 ;;
esac
mkdir -p "build-fuzz/corpus/$name" "$out"
echo "fuzz_$name: $seconds s"
# -timeout: an input that takes this long is a hang (a loop that never
# gets quiet); -rss_limit_mb: ASan's quarantine counts towards it.
# shellcheck disable=SC2086
if ! "$bin" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=4096 -print_final_stats=1 \
    $flags -artifact_prefix="$out/" "build-fuzz/corpus/$name" "fuzz/corpus/$name" \
    >"$out/log" 2>&1; then
    grep -v '^"' "$out/log" | tail -n 60 >&2
    for f in "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-*; do
        [ -e "$f" ] || continue
        echo "fuzz_$name failed on $f; replay: $bin $f" >&2
    done
    exit 1
fi
grep -E '^(Done|stat::number_of_executed_units)' "$out/log" | head -n 1
