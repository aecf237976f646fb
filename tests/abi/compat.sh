#!/bin/sh
# The ABI promise, tried: a program built against this header runs with a
# library from a "next minor" header that turned reserved space into a new
# field in every struct that has some (and the structs keep their sizes);
# and a program built against that newer header, setting the new field, is
# refused by this library with a clear error instead of being ignored.
#   compat.sh SOURCE_DIR BUILD_DIR
set -eu
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cc=${CC:-cc}

# The next minor: every GN_RESERVED(n) gives one slot to a new field.
tar -C "$src" --exclude=./.git --exclude='./build*' -cf - . | tar -C "$scratch" -xf -
mkdir -p "$scratch/next"
mv "$scratch/include" "$scratch/next/include.orig"
mkdir "$scratch/include"
perl -pe '
    s/^(#define GN_VERSION_MINOR\s+)(\d+)/$1.($2+1)/e;
    s/^(#define GN_VERSION_STRING\s+"\d+\.)(\d+)(\.\d+")/$1.($2+1).".0\""/e;
    s/^(\s*)GN_RESERVED\((\d+)\);/"$1uint64_t added_in_next_minor;\n$1GN_RESERVED(".($2-1).");"/e;
    s/^(\s*)GN_RESERVED_HANDLERS\((\d+)\);/"$1void (*on_added_in_next_minor)(void);\n$1GN_RESERVED_HANDLERS(".($2-1).");"/e;
' "$scratch/next/include.orig/gnezdo.h" >"$scratch/include/gnezdo.h"
added=$(grep -c 'added_in_next_minor' "$scratch/include/gnezdo.h")
echo "next-minor header: $added structs gained a field"
[ "$added" -ge 10 ]

# Every struct keeps its size across the two headers.
structs=$(sed -n 's/^} \(gn_[a-z_]*\);$/\1/p' "$src/include/gnezdo.h" | sort -u)
{
    echo '#include <gnezdo.h>'
    echo '#include <stdio.h>'
    echo 'int main(void) {'
    for s in $structs; do printf 'printf("%%s %%zu\\n", "%s", sizeof(%s));\n' "$s" "$s"; done
    echo 'return 0; }'
} >"$scratch/sizes.c"
for side in this next; do
    header_dir="$src/include"
    [ $side = next ] && header_dir="$scratch/include"
    $cc -std=c17 -I"$header_dir" "$scratch/sizes.c" -o "$scratch/sizes"
    "$scratch/sizes" >"$scratch/sizes.$side"
done
if ! diff "$scratch/sizes.this" "$scratch/sizes.next"; then
    echo "compat: a struct changed size between the headers" >&2
    exit 1
fi
echo "sizes of $(wc -l <"$scratch/sizes.this") structs: equal"

cmake -S "$scratch" -B "$scratch/build" -DGN_BUILD_TESTS=OFF -DGN_BUILD_EXAMPLES=OFF \
    -DGN_BUILD_BENCH=OFF >/dev/null
cmake --build "$scratch/build" -j 2 --target gnezdo >/dev/null

flags="-std=c17 -Wall -Wextra -Werror"
# shellcheck disable=SC2086
$cc $flags -I"$src/include" "$src/tests/abi/consumer.c" -L"$build" -lgnezdo -o "$scratch/old_consumer"
for lib in "$build" "$scratch/build"; do
    out=$(LD_LIBRARY_PATH="$lib" "$scratch/old_consumer")
    echo "$out"
    [ "$(echo "$out" | tail -n 1)" = ok ]
done
next_version=$(sed -n 's/^#define GN_VERSION_STRING "\(.*\)"/\1/p' "$scratch/include/gnezdo.h")
echo "$out" | grep -q "running with $next_version\$" # the next minor's library was the one run
# shellcheck disable=SC2086
$cc $flags -DGN_SETS_NEWER_FIELD -I"$scratch/include" "$src/tests/abi/consumer.c" \
    -L"$scratch/build" -lgnezdo -o "$scratch/new_consumer"
out=$(LD_LIBRARY_PATH="$build" "$scratch/new_consumer")
echo "$out"
[ "$(echo "$out" | tail -n 1)" = ok ]
# 0.1's names still build, each with a warning that names its replacement.
$cc -std=c17 -Wall -Wextra -I"$src/include" "$src/tests/abi/old_names.c" -L"$build" -lgnezdo \
    -o "$scratch/old_names" 2>"$scratch/old_names.warnings"
for replacement in gn_thread_fn gn_io_ops gn_server_get_endpoint gn_server_get_thread_stats; do
    grep -q "use $replacement" "$scratch/old_names.warnings" || {
        cat "$scratch/old_names.warnings" >&2
        echo "compat: no deprecation warning pointing at $replacement" >&2
        exit 1
    }
done
out=$(LD_LIBRARY_PATH="$build" "$scratch/old_names")
[ "$out" = ok ]
echo "0.1 names: build with $(grep -c 'deprecated' "$scratch/old_names.warnings") deprecation warnings, and run"
echo "abi compat: ok"
