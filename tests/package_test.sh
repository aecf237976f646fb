#!/bin/sh
# The .deb that `make package` built, installed as a user would
# (apt-get install ./gnezdo_*.deb), then used: the consumer programs
# build against it, `man gnezdo` finds the pages, /usr/bin/gnezdo runs.
# The package is removed at the end, so the machine is left as it was.
#   package_test.sh BUILD_DIR
# Installs into /usr: needs root, and is not part of `make check` (run by
# `make check-package` and CI).  Exits 77 (skipped) without root or dpkg,
# or when a gnezdo package is installed already (it is not ours to remove).
set -eu
build=$(cd "$1" && pwd)
tests=$(cd "$(dirname "$0")" && pwd)

skip() {
    echo "package_test: skipped: $*"
    exit 77
}
[ "$(id -u)" -eq 0 ] || skip "installing a package needs root (sudo make check-package)"
command -v dpkg >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 || skip "not a Debian system"
if dpkg-query -W -f='${Status}' gnezdo 2>/dev/null | grep -q 'install ok installed'; then
    skip "a gnezdo package is installed already; remove it first (apt-get purge gnezdo)"
fi

set -- "$build"/gnezdo_*.deb
[ -f "$1" ] && [ $# -eq 1 ] || { echo "package_test: want one $build/gnezdo_*.deb (make package)"; exit 1; }
deb=$1
echo "package_test: $deb"
dpkg-deb --info "$deb" | sed -n 's/^ \(Package\|Version\|Depends\):/  \1:/p'

trap 'apt-get purge -y -qq gnezdo >/dev/null 2>&1 || dpkg --purge gnezdo >/dev/null 2>&1 || true' EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$deb" >/dev/null
dpkg-query -W -f='package_test: installed ${Package} ${Version}\n' gnezdo

[ "$(command -v gnezdo)" = /usr/bin/gnezdo ] || echo "package_test: note: gnezdo on PATH is $(command -v gnezdo)"
/usr/bin/gnezdo --version
/usr/bin/gnezdo ports https --tcp

# Some images tell dpkg to leave out /usr/share/man (Debian's slim ones):
# then the pages must at least be in the package.
if [ -f /usr/share/man/man1/gnezdo.1 ]; then
    found=$(man -w gnezdo)
    [ "$found" = /usr/share/man/man1/gnezdo.1 ] || { echo "package_test: man -w gnezdo gave '$found'"; exit 1; }
    man -w 3 gnezdo
    sh "$tests/man_test.sh" --installed /usr
else
    echo "package_test: dpkg left out /usr/share/man here (path-exclude); checking the package holds the pages"
    dpkg-deb --contents "$deb" | grep -q '/usr/share/man/man1/gnezdo.1$'
    dpkg-deb --contents "$deb" | grep -q '/usr/share/man/man3/gnezdo.3$'
fi

sh "$tests/install_consumer.sh" --installed /usr "$tests/consumer"

apt-get purge -y -qq gnezdo >/dev/null
trap - EXIT
[ ! -e /usr/bin/gnezdo ] || { echo "package_test: /usr/bin/gnezdo is still there after removal"; exit 1; }
echo "package_test: removed again; ok"
