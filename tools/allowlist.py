"""The allowlists of the CI checks (tools/*.allow): what both checks share.

An allowlist names the findings that were known when a check came in, one a
line, '#' starting a comment; a check prints them but fails only on others.
"""
import os


def read_allowlist(path):
    """The entries of the allowlist at path (none when it does not exist),
    each with its runs of blanks squeezed to one space."""
    entries = set()
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if line:
                    entries.add(" ".join(line.split()))
    return entries
