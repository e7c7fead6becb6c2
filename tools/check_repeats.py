#!/usr/bin/env python3
"""Fails on a run of six or more lines repeated in the same shape (issue 17).

Looks inside broker/, client/ and common/ (.c and .h). Each line is reduced
to its shape: comments and blank lines dropped, string and character literals
become S, numbers N, identifiers I (C keywords stay themselves, so that an
`if` still differs from a `while`), whitespace squeezed. Lines without an
identifier or keyword (a lone '}', usage text, a table row of literals) and
enumerators (NAME = 3,) are left out: they carry no logic and would make
every block, table or enum look alike. A window of RUN (6) consecutive shaped lines
that occurs twice or more, in one file or across files, is a finding;
overlapping windows of one repeat are merged into one run and printed with
where it occurs.

    tools/check_repeats.py [--allow FILE] [--run N] [ROOT]

A finding is named by the files it is in and a hash of its shape, e.g.
`broker/pd_broker.c client/pd_client.c 3f2a9c01d4e5`: a line of the allowlist
(default tools/repeats.allow; '#' comments) with that name is known, printed
but not failing. Line numbers are not part of the name, so unrelated edits
do not make a known repeat new. Exit 0 clean, 1 on a new finding.
"""
import argparse
import hashlib
import os
import re
import sys

from allowlist import read_allowlist

FOLDERS = ["broker", "client", "common"]
KEYWORDS = set("""auto break case char const continue default do double else enum extern
float for goto if inline int long register restrict return short signed sizeof static
struct switch typedef union unsigned void volatile while bool true false NULL""".split())
ENUMERATOR = re.compile(r"^I( = [-NI()<>|~+* ]+)? ,?$")
# A declaration without an initialiser (a struct member, a prototype or a
# function's signature, a local declared before use): a type, then a name,
# no '='. Such lines state what exists, not what is done (no C statement
# starts with a type), and any two structs would look alike.
DECLARATION = re.compile(r"^(?:(?:const|static|extern|struct|enum|union|unsigned|signed|volatile|"
                         r"inline|typedef) )*(?:I|int|char|double|float|long|short|bool|void)"
                         r"(?: (?:\*|const|long|int|char))* I\b[^=]*$")
# The lines that open and close a struct, enum or union declaration.
AGGREGATE = re.compile(r"^(?:(?:typedef )?(?:struct|enum|union)(?: I)? \{|\} I ;)$")
TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|[A-Za-z_]\w*|\d[\w.]*|\S')


def strip_comments(text):
    """Blanks /* */ and // comments, keeping the line breaks and string literals."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def shape(line):
    toks = []
    for t in TOKEN.findall(line):
        if t[0] in "\"'":
            toks.append("S")
        elif t[0].isdigit():
            toks.append("N")
        elif t[0].isalpha() or t[0] == "_":
            toks.append(t if t in KEYWORDS else "I")
        else:
            toks.append(t)
    # Lines of literals and punctuation only (usage text, table rows, a lone
    # brace) carry no logic of their own, nor do the enumerators of an enum
    # (NAME = 3,), nor declarations: left out.
    s = " ".join(toks)
    if (not any(t == "I" or t in KEYWORDS for t in toks) or ENUMERATOR.match(s)
            or DECLARATION.match(s) or AGGREGATE.match(s)):
        return ""
    return s


# A row of an X-macro table inside a #define (common/pd_proto_defs.h's
# F(T, req, UINT, DEF, 0)): one macro call of names and numbers, a line of
# data like an enumerator, not of logic.
TABLE_ROW = re.compile(r"^I \( (?:[INS] , )*[INS] \)(?: \\)?$")


def shaped_lines(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = strip_comments(f.read())
    out = []
    in_define = False  # inside a #define's continued lines
    for no, line in enumerate(text.split("\n"), 1):
        stripped, continued = line.lstrip(), line.rstrip().endswith("\\")
        if stripped.startswith("#"):
            in_define = stripped.startswith("#define") and continued
            continue  # preprocessor lines: includes and guards look alike everywhere
        row_of_define, in_define = in_define, in_define and continued
        s = shape(line)
        if s and not (row_of_define and TABLE_ROW.match(s)):
            out.append((no, s))
    return out


def find_repeats(root, run):
    files = {}
    for folder in FOLDERS:
        for dirpath, _, names in os.walk(os.path.join(root, folder)):
            for name in sorted(names):
                if name.endswith((".c", ".h")):
                    path = os.path.join(dirpath, name)
                    files[os.path.relpath(path, root)] = shaped_lines(path)
    windows = {}  # hash of RUN shapes -> [(file, index)]
    for path, lines in sorted(files.items()):
        for i in range(len(lines) - run + 1):
            key = hashlib.sha1("\n".join(s for _, s in lines[i:i + run]).encode()).hexdigest()
            windows.setdefault(key, []).append((path, i))
    # A repeat is a pair of places; merge the windows that continue one
    # another into one run, named by its first window.
    seen, findings = set(), {}
    for key, places in windows.items():
        if len(places) < 2:
            continue
        for a in range(len(places)):
            for b in range(a + 1, len(places)):
                (fa, ia), (fb, ib) = places[a], places[b]
                if fa == fb and abs(ia - ib) < run:
                    continue  # a window overlapping itself (repetitive lines)
                if (fa, ia, fb, ib) in seen:
                    continue
                length = run
                while (ia + length - run + 1 < len(files[fa]) - run + 1 and
                       ib + length - run + 1 < len(files[fb]) - run + 1 and
                       files[fa][ia + length][1] == files[fb][ib + length][1] and
                       not (fa == fb and ia + length >= ib)):
                    seen.add((fa, ia + length - run + 1, fb, ib + length - run + 1))
                    length += 1
                name = f"{fa} {fb} {key[:12]}"
                where = (f"{fa}:{files[fa][ia][0]}-{files[fa][ia + length - 1][0]} and "
                         f"{fb}:{files[fb][ib][0]}-{files[fb][ib + length - 1][0]}")
                findings.setdefault(name, []).append((length, where))
    return findings


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default=os.path.join(os.path.dirname(__file__), ".."))
    ap.add_argument("--allow", default=None, help="allowlist (default tools/repeats.allow)")
    ap.add_argument("--run", type=int, default=6, help="lines in a run (default 6)")
    ap.add_argument("--list", action="store_true", help="print only the findings' names")
    args = ap.parse_args()
    allow_path = args.allow or os.path.join(args.root, "tools", "repeats.allow")
    allowed = read_allowlist(allow_path)
    findings = find_repeats(args.root, args.run)
    if args.list:
        for name in sorted(findings):
            print(name)
        return 0
    new = 0
    for name in sorted(findings):
        known = name in allowed
        new += not known
        if known:
            continue
        runs = sorted(findings[name], reverse=True)
        more = f" (and {len(runs) - 1} more place(s))" if len(runs) > 1 else ""
        print(f"NEW repeat of {runs[0][0]} lines: {runs[0][1]}{more}  [{name}]")
    for name in sorted(allowed - set(findings)):
        print(f"allowlist entry '{name}' no longer occurs: remove it from {allow_path}")
    known = len(findings) - new
    if new:
        print(f"check_repeats: {new} new run(s) of {args.run}+ lines repeated in the same shape "
              f"in {', '.join(FOLDERS)} ({known} known); make one function of each")
        return 1
    print(f"check_repeats: no new repeated run ({known} known in the allowlist)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
