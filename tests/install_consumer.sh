#!/bin/sh
# Builds and runs a program against an installed gnezdo three ways:
# pkg-config, CMake's find_package with the shared library, and with the
# static one.
#   install_consumer.sh BUILD_DIR CONSUMER_SOURCE_DIR
#       installs BUILD_DIR into a scratch prefix first
#   install_consumer.sh --installed PREFIX CONSUMER_SOURCE_DIR
#       uses what is installed in PREFIX (tests/package_test.sh: /usr)
set -eu
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
if [ "$1" = "--installed" ]; then
    prefix=$2
    consumer=$3
else
    prefix=$scratch/prefix
    consumer=$2
    cmake --install "$1" --prefix "$prefix" >/dev/null
fi
version=$(sed -n 's/^#define GN_VERSION_STRING "\(.*\)"/\1/p' "$consumer/../../include/gnezdo.h")
want="gnezdo $version: [::1]:80, https is port 443"

test -x "$prefix/bin/gnezdo"
test -f "$prefix/include/gnezdo.h"
test -f "$prefix/share/man/man1/gnezdo.1"
test -f "$prefix/share/man/man3/gnezdo.3"

libdir=$(dirname "$(find "$prefix"/lib* -maxdepth 3 -name gnezdo.pc -path '*/pkgconfig/*' | head -n 1)")
flags=$(PKG_CONFIG_PATH="$libdir" pkg-config --cflags --libs gnezdo)
echo "pkg-config: $flags"
cc -std=c17 -Wall -Wextra -Werror "$consumer/main.c" $flags -o "$scratch/by_pkgconfig"
got=$(LD_LIBRARY_PATH="$(dirname "$libdir")" "$scratch/by_pkgconfig")
echo "$got"
[ "$got" = "$want" ]

cmake -S "$consumer" -B "$scratch/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$scratch/cmake-build" >/dev/null
for exe in consumer_shared consumer_static; do
    got=$("$scratch/cmake-build/$exe")
    echo "$exe: $got"
    [ "$got" = "$want" ]
done
"$prefix/bin/gnezdo" --version
echo "install_consumer: ok"
