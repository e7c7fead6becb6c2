#!/usr/bin/env python3
"""Fails on an include cycle between the project's folders (issue 17).

Reads the #include lines of every .c and .h file under the source folders
(tests/, bench/ and examples/ are not layers and are left out), resolves each
included name to the folder that holds a header of that name (the including
file's own folder first), and draws an arrow FOLDER -> FOLDER for each
include that crosses folders. Folders that reach each other form a cycle;
every arrow inside a cycle is printed with the files that make it.

    tools/check_include_cycles.py [--allow FILE] [ROOT]

An arrow listed in the allowlist (one "from -> to" a line, '#' comments;
default tools/include_cycles.allow) is known and reported but does not fail
the check: only new arrows inside a cycle do. Exit 0 clean, 1 on a new
finding. An allowlist entry that no longer occurs is said, so that the list
can shrink.
"""
import argparse
import os
import re
import sys

from allowlist import read_allowlist

FOLDERS = ["common", "client", "worker", "broker", "optim", "gpu", "local", "include"]
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]')


def scan(root):
    """Maps each folder to its headers, and lists (folder, file, included)."""
    headers = {}  # basename -> [folders holding it]
    includes = []
    for folder in FOLDERS:
        top = os.path.join(root, folder)
        for dirpath, _, files in os.walk(top):
            for name in sorted(files):
                if not name.endswith((".c", ".h", ".cu", ".cpp")):
                    continue
                path = os.path.join(dirpath, name)
                if name.endswith(".h"):
                    headers.setdefault(name, []).append(folder)
                with open(path, encoding="utf-8", errors="replace") as f:
                    for line in f:
                        m = INCLUDE.match(line)
                        if m:
                            includes.append((folder, os.path.relpath(path, root), m.group(1)))
    return headers, includes


def arrows(headers, includes):
    """{(from, to): [files]} for the includes that cross folders."""
    out = {}
    for folder, path, inc in includes:
        holders = headers.get(os.path.basename(inc))
        if not holders or folder in holders:
            continue  # a system header, or one of the folder's own
        out.setdefault((folder, holders[0]), []).append(f"{path} ({inc})")
    return out


def cycles(edges):
    """The strongly connected groups of more than one folder (Tarjan)."""
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, on, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default=os.path.join(os.path.dirname(__file__), ".."))
    ap.add_argument("--allow", default=None, help="allowlist (default tools/include_cycles.allow)")
    args = ap.parse_args()
    allow_path = args.allow or os.path.join(args.root, "tools", "include_cycles.allow")
    allowed = set()
    for entry in read_allowlist(allow_path):
        a, _, b = entry.partition("->")
        allowed.add((a.strip(), b.strip()))
    edges = arrows(*scan(args.root))
    found, new = set(), 0
    for group in cycles(edges):
        print("include cycle between folders: " + ", ".join(sorted(group)))
        for (a, b), files in sorted(edges.items()):
            if a in group and b in group:
                found.add((a, b))
                known = (a, b) in allowed
                new += not known
                print(f"  {a} -> {b}{' (known: in the allowlist)' if known else ' (NEW)'}")
                for f in files[:5]:
                    print(f"      {f}")
                if len(files) > 5:
                    print(f"      ... and {len(files) - 5} more")
    for a, b in sorted(allowed - found):
        print(f"allowlist entry '{a} -> {b}' no longer makes a cycle: remove it from {allow_path}")
    if new:
        print(f"check_include_cycles: {new} new arrow(s) inside a cycle between folders; "
              "make every arrow point down (see issue 17)")
        return 1
    print(f"check_include_cycles: no new include cycle ({len(found)} known arrow(s) in cycles)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
