#!/bin/sh
# The manual pages render without a warning, and gnezdo(1) has every
# command and every flag that `gnezdo --help` lists, so the page cannot
# fall behind the tool unnoticed.
#   man_test.sh BUILD_DIR          install BUILD_DIR into a scratch prefix, check its pages
#   man_test.sh --installed PREFIX check PREFIX/bin/gnezdo and PREFIX/share/man (the package test)
# Exits 77 (skipped) when man or groff is missing.
set -eu
for tool in man groff lexgrog; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "man_test: skipped: '$tool' is not installed (scripts/install-deps installs it)"
        exit 77
    fi
done
if [ "$1" = "--installed" ]; then
    prefix=$(cd "$2" && pwd)
else
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    cmake --install "$1" --prefix "$scratch/prefix" >/dev/null
    prefix=$scratch/prefix
fi
page1=$prefix/share/man/man1/gnezdo.1
page3=$prefix/share/man/man3/gnezdo.3
test -f "$page1" || { echo "man_test: $page1 is not installed"; exit 1; }
test -f "$page3" || { echo "man_test: $page3 is not installed"; exit 1; }

fail=0
for page in "$page1" "$page3"; do
    # groff -ww: every warning; man -l: what a reader sees, at 80 columns.
    warnings=$(groff -man -Tutf8 -ww -z "$page" 2>&1 || echo "groff failed")
    warnings="$warnings$(MANWIDTH=80 man -l --warnings "$page" 2>&1 >/dev/null)"
    lines=$(MANWIDTH=80 man -l "$page" 2>/dev/null | wc -l)
    # lexgrog: the NAME line parses, so whatis and man -k find the page.
    if ! lexgrog "$page" >/dev/null 2>&1; then
        echo "man_test: $page: lexgrog cannot parse its NAME section"
        fail=1
    elif [ -n "$warnings" ]; then
        echo "man_test: $page: $warnings"
        fail=1
    elif [ "$lines" -le 50 ]; then
        echo "man_test: $page renders to $lines lines"
        fail=1
    else
        echo "man_test: $page: $lines lines, no warnings"
    fi
done

# Every command (the first word of a usage line) and every flag of --help.
text=$(MANWIDTH=200 man -l "$page1" 2>/dev/null)
help=$("$prefix/bin/gnezdo" --help)
commands=$(printf '%s\n' "$help" | sed -n 's/^  \([a-z][a-z]*\) .*/\1/p' | sort -u)
flags=$(printf '%s\n' "$help" | grep -o -- '--[a-z][a-z-]*' | sort -u)
[ -n "$commands" ] && [ -n "$flags" ] || { echo "man_test: cannot read 'gnezdo --help'"; exit 1; }
for c in $commands; do
    printf '%s\n' "$text" | grep -q "^       $c " || { echo "man_test: gnezdo.1 lacks the command '$c'"; fail=1; }
done
for f in $flags; do
    printf '%s\n' "$text" | grep -q -- "$f\\b" || { echo "man_test: gnezdo.1 lacks the flag '$f'"; fail=1; }
done
echo "man_test: commands: $(echo $commands); flags: $(echo $flags | wc -w)"
[ "$fail" -eq 0 ] && echo "man_test: ok"
exit "$fail"
