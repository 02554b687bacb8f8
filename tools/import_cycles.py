#!/usr/bin/env python3
"""Import cycles between Sluice's top-level modules (src/<module>.rs or src/<module>/).

An edge A -> B is any `crate::B` path in A's files (use declarations and inline paths).
Prints each cycle (strongly connected component of more than one module) and exits 1 if
there is one. Run from the repository root: python3 tools/import_cycles.py
"""
import os, re, sys
from collections import defaultdict

SRC = "src"
ROOTS = {"main.rs", "lib.rs"}

def module_of(path):
    rel = os.path.relpath(path, SRC)
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first

edges = defaultdict(set)
modules = set()
for dirpath, _, files in os.walk(SRC):
    for f in files:
        if not f.endswith(".rs"):
            continue
        path = os.path.join(dirpath, f)
        if os.path.relpath(path, SRC) in ROOTS:
            continue
        m = module_of(path)
        modules.add(m)
        text = open(path).read()
        # test modules may reach anywhere
        text = re.split(r"#\[cfg\(test\)\]\s*mod tests", text)[0]
        # comments (doc links name modules without importing them)
        text = re.sub(r"//[^\n]*", "", text)
        for other in re.findall(r"crate::([a-z_]+)", text):
            if other != m:
                edges[m].add(other)
        # `use crate::{a, b::c}` groups
        for group in re.findall(r"use crate::\{([^}]*)\}", text):
            for other in re.findall(r"(?:^|,)\s*([a-z_]+)", group):
                if other != m:
                    edges[m].add(other)

index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
def strong(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in edges[v]:
        if w not in modules:
            continue
        if w not in index:
            strong(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            sccs.append(sorted(comp))

sys.setrecursionlimit(10000)
for m in sorted(modules):
    if m not in index:
        strong(m)
for comp in sccs:
    inner = [f"{a} -> {b}" for a in comp for b in sorted(edges[a]) if b in comp]
    print("cycle:", ", ".join(comp), "(" + "; ".join(inner) + ")")
print(f"{len(modules)} modules, {sum(len(v) for v in edges.values())} edges, {len(sccs)} cycles")
sys.exit(1 if sccs else 0)
