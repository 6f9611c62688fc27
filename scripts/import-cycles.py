"""Fails if the top-level modules of a crate import each other in a circle (issue #35: "no import
circle in crates/"). A module is a file or folder under src/; an import is any `crate::NAME`
path in its code (tests left out). Prints each circle found, as `crate: a -> b -> a`.
Usage: python3 scripts/import-cycles.py   (from the repository root; .ci/run runs it)
"""
import os
import re
import sys
from collections import defaultdict


def modules(crate):
    src = f"crates/{crate}/src"
    files = defaultdict(list)
    for root, _, names in os.walk(src):
        for f in names:
            if f.endswith(".rs"):
                rel = os.path.relpath(os.path.join(root, f), src)[:-3]
                if rel not in ("lib", "main"):
                    files[rel.split("/")[0]].append(os.path.join(root, f))
    graph = defaultdict(set)
    for module, paths in files.items():
        for path in paths:
            text = re.sub(r"#\[cfg\(test\)\]\s*mod tests\s*\{.*", "", open(path).read(), flags=re.S)
            for used in re.findall(r"crate::([a-z_0-9]+)", text):
                if used in files and used != module:
                    graph[module].add(used)
    return graph


def circles(graph):
    found, seen = [], set()

    def walk(node, stack):
        for nxt in sorted(graph[node]):
            if nxt in stack:
                circle = stack[stack.index(nxt):] + [nxt]
                if frozenset(circle) not in seen:
                    seen.add(frozenset(circle))
                    found.append(circle)
            elif len(stack) < 12:
                walk(nxt, stack + [nxt])

    for node in sorted(graph):
        walk(node, [node])
    return found


def main():
    bad = [(c, circle) for c in sorted(os.listdir("crates")) for circle in circles(modules(c))]
    for crate, circle in bad:
        print(f"{crate}: {' -> '.join(circle)}")
    if bad:
        print(f"error: {len(bad)} import circle(s) between modules of crates/ (above); move the shared part where both can import it")
        sys.exit(1)
    print("import-cycles: no circle between the modules of any crate")


if __name__ == "__main__":
    main()
