#!/usr/bin/python3
"""Byte-compile the Python modules in /usr/lib/python3/dist-packages after dpkg.

Managed by stackwright: node preparation writes this file to every node
(/usr/local/lib/stackwright/compile-dist-packages) and apt's DPkg::Post-Invoke runs it
(releases/modern/apt_node.py). It runs on the node's own python3: standard library only.

It does what `python3 -m compileall -q -j 0 -x /tests/ DIR` does, with the files handed to the
workers in chunks: compileall's `-j` sends one file per task, and those round trips made it cost
about a fifth more CPU than one process compiling everything (docs/benchmarks.md). Files whose .pyc
is up to date are skipped; test suites are not compiled (no service imports them); a file that
does not compile is reported and the others are compiled all the same. Exit status 0 unless the
directory is missing: a module left uncompiled is compiled in memory when imported.
"""

from __future__ import annotations

import compileall
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from functools import partial

DIST_PACKAGES = "/usr/lib/python3/dist-packages"
TESTS = re.compile("/tests/")
CHUNK = 64


def sources(root: str) -> list[str]:
    """Every .py file under `root`, symlinked directories not followed (as compileall)."""
    found: list[str] = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
        found += [os.path.join(directory, n) for n in sorted(names) if n.endswith(".py")]
    return found


def compile_tree(root: str, workers: int | None = None) -> bool:
    """Compile what is out of date under `root`; False when a file did not compile."""
    files = sources(root)
    compile_one = partial(compileall.compile_file, rx=TESTS, quiet=1)
    workers = min(workers or os.cpu_count() or 1, -(-len(files) // CHUNK))
    if workers <= 1:
        results = [compile_one(f) for f in files]
    else:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(compile_one, files, chunksize=CHUNK))
    return all(results)


def main(argv: list[str]) -> int:
    root = argv[1] if len(argv) > 1 else DIST_PACKAGES
    if not os.path.isdir(root):
        print(f"{root}: no such directory", file=sys.stderr)
        return 1
    compile_tree(root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
