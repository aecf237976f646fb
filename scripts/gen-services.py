#!/usr/bin/env python3
"""Compile IANA's port registry CSV into the C table behind gnezdo's
registry functions (src/services.c, src/services_table.h).

Usage: gen-services.py REGISTRY.csv REGISTRY.date OUT.c

Every CSV row becomes one gn_service, in registry order, plus three index
arrays that make look-ups binary searches:

  gn__services_by_name    named rows, by ASCII-lowercased name (compared
                          as bytes, as services.c compares), then registry
                          order
  gn__services_by_port    single-port rows, by (port, named before unnamed,
                          registry order)
  gn__services_ranges     range rows, by (protocol, first port, registry
                          order); gn__services_ranges_start[p] is where
                          protocol p's group begins.  Ranges never overlap
                          within a group (checked here), so a port lies in
                          at most one range per protocol and one binary
                          search per group finds it.

Malformed data stops the build (exit 1) rather than shipping a table that
answers wrongly.  The output depends only on the two input files.
Python 3 standard library only.
"""

import csv
import datetime
import os
import re
import sys

HEADER = [
    "Service Name", "Port Number", "Transport Protocol", "Description",
    "Assignee", "Contact", "Registration Date", "Modification Date",
    "Reference", "Service Code", "Unauthorized Use Reported",
    "Assignment Notes",
]

# Registry protocol -> gn_proto enumerator; the order is gn_proto's values,
# which index gn__services_ranges_start.
PROTOS = [
    ("", "GN_PROTO_ANY"),
    ("tcp", "GN_PROTO_TCP"),
    ("udp", "GN_PROTO_UDP"),
    ("sctp", "GN_PROTO_SCTP"),
    ("dccp", "GN_PROTO_DCCP"),
]
PROTO_VALUE = {text: value for value, (text, _) in enumerate(PROTOS)}

# Indices are uint16_t in C.
INDEX_MAX = 0xFFFF

PORT_RE = re.compile(r"^([0-9]{1,5})(?:-([0-9]{1,5}))?$")
DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class DataError(Exception):
    """Malformed input: the message names the file and line."""


class Entry:
    __slots__ = ("name", "description", "port_lo", "port_hi", "has_port",
                 "proto", "line")

    def __init__(self, name, description, port_lo, port_hi, has_port, proto,
                 line):
        self.name = name
        self.description = description
        self.port_lo = port_lo
        self.port_hi = port_hi
        self.has_port = has_port
        self.proto = proto
        self.line = line

    @property
    def is_single(self):
        return self.has_port and self.port_lo == self.port_hi

    @property
    def is_range(self):
        return self.has_port and self.port_lo < self.port_hi


def read_date(path):
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: {e}")
    if not DATE_RE.match(text):
        raise DataError(f"{path}: expected one date YYYY-MM-DD, got {text!r}")
    try:
        datetime.date.fromisoformat(text)
    except ValueError as e:
        raise DataError(f"{path}: {text!r} is not a date: {e}")
    return text


def parse_port(text, where):
    """(lo, hi, has_port) for "", "80" or "6000-6063".  "X-X" is a single
    port: the registry writes a few unassigned ports that way."""
    if text == "":
        return 0, 0, False
    m = PORT_RE.match(text)
    if not m:
        raise DataError(f"{where}: malformed port number {text!r}")
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) is not None else lo
    if lo > 65535 or hi > 65535:
        raise DataError(f"{where}: port {text!r} is out of range 0-65535")
    if hi < lo:
        raise DataError(f"{where}: port range {text!r} ends before it starts")
    return lo, hi, True


def parse_row(row, where):
    if len(row) != len(HEADER):
        raise DataError(f"{where}: {len(row)} fields, expected {len(HEADER)}")
    name, port, proto, description = row[0], row[1], row[2], row[3]
    # C strings end at NUL: a NUL inside would silently cut the text short.
    for field in (name, port, proto, description):
        if "\0" in field:
            raise DataError(f"{where}: NUL byte in a field")
    if proto not in PROTO_VALUE:
        raise DataError(f"{where}: unknown transport protocol {proto!r}")
    lo, hi, has_port = parse_port(port, where)
    if name == "" and not has_port:
        raise DataError(f"{where}: row has neither a service name nor a port")
    return Entry(name, description, lo, hi, has_port, PROTO_VALUE[proto], where)


def read_entries(path):
    entries = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f, strict=True)
            header = next(reader, None)
            if header != HEADER:
                raise DataError(f"{path}:1: expected IANA's header {HEADER!r}, got {header!r}")
            start = reader.line_num + 1
            for row in reader:
                where = f"{path}:{start}"
                start = reader.line_num + 1
                entries.append(parse_row(row, where))
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV: {e}")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: {e}")
    if not entries:
        raise DataError(f"{path}: no data rows")
    if len(entries) > INDEX_MAX:
        raise DataError(f"{path}: {len(entries)} rows; uint16_t indices hold {INDEX_MAX}")
    return entries


def ascii_lower(text):
    """The name as services.c compares it: UTF-8 bytes, only A-Z folded."""
    return bytes(b + 32 if 0x41 <= b <= 0x5A else b for b in text.encode("utf-8"))


def index_by_name(entries):
    named = [i for i, e in enumerate(entries) if e.name]
    return sorted(named, key=lambda i: (ascii_lower(entries[i].name), i))


def index_by_port(entries):
    singles = [i for i, e in enumerate(entries) if e.is_single]
    return sorted(singles, key=lambda i: (entries[i].port_lo, entries[i].name == "", i))


def index_ranges(entries):
    """Range rows by (protocol, first port) and where each protocol's group
    starts; fails when two ranges of one protocol overlap."""
    ranges = sorted((i for i, e in enumerate(entries) if e.is_range),
                    key=lambda i: (entries[i].proto, entries[i].port_lo, i))
    for a, b in zip(ranges, ranges[1:]):
        ea, eb = entries[a], entries[b]
        if ea.proto == eb.proto and eb.port_lo <= ea.port_hi:
            raise DataError(
                f"{eb.line}: range {eb.port_lo}-{eb.port_hi} overlaps "
                f"{ea.port_lo}-{ea.port_hi} ({ea.line}) for protocol "
                f"{PROTOS[ea.proto][0] or '(none)'}; services.c assumes "
                f"ranges of one protocol are disjoint")
    starts = []
    pos = 0
    for value in range(len(PROTOS)):
        starts.append(pos)
        while pos < len(ranges) and entries[ranges[pos]].proto == value:
            pos += 1
    starts.append(pos)
    return ranges, starts


def c_string(text):
    """A C string literal for text's UTF-8 bytes.  Non-ASCII and control
    bytes become three-digit octal escapes, which (unlike \\x) cannot
    swallow the digits after them; every '?' is escaped so no trigraph
    ("??/" etc.) can form."""
    out = ['"']
    for b in text.encode("utf-8"):
        if b == 0x5C:
            out.append("\\\\")
        elif b == 0x22:
            out.append('\\"')
        elif b == 0x3F:
            out.append("\\?")
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x09:
            out.append("\\t")
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append("\\%03o" % b)
    out.append('"')
    return "".join(out)


def c_index_array(name, values, size_expr=""):
    lines = [f"const uint16_t {name}[{size_expr}] = {{"]
    for k in range(0, len(values), 12):
        lines.append("    " + " ".join(f"{v}," for v in values[k:k + 12]))
    lines.append("};")
    return lines


def render(entries, date, csv_name):
    by_name = index_by_name(entries)
    by_port = index_by_port(entries)
    ranges, starts = index_ranges(entries)
    out = [
        f"/* Generated by scripts/gen-services.py from data/{csv_name}",
        f" * (IANA registry of {date}).  Do not edit: change the data or the",
        " * generator.  Fields: name, description, port_lo, port_hi, has_port,",
        " * proto. */",
        '#include "services_table.h"',
        "",
        f"const char gn__services_date[] = {c_string(date)};",
        "",
        "const gn_service gn__services_table[] = {",
    ]
    for e in entries:
        out.append(f"    {{{c_string(e.name)}, {c_string(e.description)}, {e.port_lo}, "
                   f"{e.port_hi}, {'true' if e.has_port else 'false'}, "
                   f"{PROTOS[e.proto][1]}}},")
    out += [
        "};",
        "const size_t gn__services_table_len = sizeof(gn__services_table) / "
        "sizeof(gn__services_table[0]);",
        "",
    ]
    out += c_index_array("gn__services_by_name", by_name)
    out.append(f"const size_t gn__services_by_name_len = {len(by_name)};")
    out.append("")
    out += c_index_array("gn__services_by_port", by_port)
    out.append(f"const size_t gn__services_by_port_len = {len(by_port)};")
    out.append("")
    out += c_index_array("gn__services_ranges", ranges or [0])
    out.append("")
    out += c_index_array("gn__services_ranges_start", starts, "GN_PROTO_DCCP + 2")
    return "\n".join(out) + "\n"


def write_atomically(path, text):
    """Write then rename, so a failed run never leaves a half table that
    make would take as up to date."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="ascii", newline="\n") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv):
    if len(argv) != 4:
        print(f"usage: {argv[0]} REGISTRY.csv REGISTRY.date OUT.c", file=sys.stderr)
        return 2
    csv_path, date_path, out_path = argv[1:]
    try:
        date = read_date(date_path)
        entries = read_entries(csv_path)
        text = render(entries, date, os.path.basename(csv_path))
    except DataError as e:
        print(f"gen-services.py: {e}", file=sys.stderr)
        return 1
    write_atomically(out_path, text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
