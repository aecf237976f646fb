#!/bin/sh
# Installs the built tree into a scratch prefix, then builds and runs a
# program against the installed copy three ways: pkg-config, CMake's
# find_package with the shared library, and with the static one.
#   install_consumer.sh BUILD_DIR CONSUMER_SOURCE_DIR
set -eu
build=$1
consumer=$2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
version=$(sed -n 's/^#define GN_VERSION_STRING "\(.*\)"/\1/p' "$consumer/../../include/gnezdo.h")
want="gnezdo $version: [::1]:80, https is port 443"

cmake --install "$build" --prefix "$scratch/prefix" >/dev/null
test -x "$scratch/prefix/bin/gnezdo"
test -f "$scratch/prefix/include/gnezdo.h"

libdir=$(dirname "$(find "$scratch/prefix" -name gnezdo.pc)")
flags=$(PKG_CONFIG_PATH="$libdir" pkg-config --cflags --libs gnezdo)
echo "pkg-config: $flags"
cc -std=c17 -Wall -Wextra -Werror "$consumer/main.c" $flags -o "$scratch/by_pkgconfig"
got=$(LD_LIBRARY_PATH="$(dirname "$libdir")" "$scratch/by_pkgconfig")
echo "$got"
[ "$got" = "$want" ]

cmake -S "$consumer" -B "$scratch/cmake-build" -DCMAKE_PREFIX_PATH="$scratch/prefix" >/dev/null
cmake --build "$scratch/cmake-build" >/dev/null
for exe in consumer_shared consumer_static; do
    got=$("$scratch/cmake-build/$exe")
    echo "$exe: $got"
    [ "$got" = "$want" ]
done
"$scratch/prefix/bin/gnezdo" --version
echo "install_consumer: ok"
