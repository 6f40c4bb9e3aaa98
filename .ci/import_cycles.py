#!/usr/bin/env python3
"""Import circles between the files of a Rust crate's source tree.

Reads every `use` of `crate::`, `self::`, `super::` or a child module, and every such path
written inline in code, resolves it to the file
that defines the item (following `pub use` re-exports, so a facade `mod.rs` is not a circle),
and prints each strongly connected group of two or more files. A child file that adds methods
to its parent's type imports the parent; the parent must import nothing back from it.

Usage: import_cycles.py SRC_DIR [MODULE_PREFIX] [--forbid FROM=TO,TO...]
  exit 1 when a circle exists, or when a file under module FROM imports one under a module TO
  (the layering rule: `--forbid call=transport,media,metrics`); with a prefix, also prints that
  part of the graph
"""
import os
import re
import sys


def modules(root):
    mods = {}
    for d, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(d, f)
            parts = os.path.relpath(path, root)[:-3].split("/")
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            if "tests" in parts:
                continue
            mods["::".join(parts)] = path
    return mods


def uses(text):
    # Stop at the first inline test module (`mod tests {`, `mod debug_tests {`, ...): tests may
    # import anything, and their `super` is this file, not its parent.
    cut = re.search(r"#\[cfg\(test\)\]\s*(pub(\([a-z]+\))?\s+)?mod \w+\s*\{", text)
    if cut:
        text = text[: cut.start()]
    for m in re.finditer(r"^\s*(pub(?:\([a-z]+\))?\s+)?use\s+([^;]+);", text, re.M):
        body = re.sub(r"\s+as\s+\w+", "", m.group(2))
        for path in expand(re.sub(r"\s+", "", body)):
            path = re.sub(r"::(self|\*)$", "", path)
            yield bool(m.group(1)), path
    # Paths written inline in code (`super::engine::CalleeRequest`), comments aside.
    code = "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("//"))
    code = re.sub(r"^\s*(pub(?:\([a-z]+\))?\s+)?use\s+[^;]+;", "", code, flags=re.M)
    for m in re.finditer(r"\b(?:crate|super)(?:::super)*::[A-Za-z_][\w]*(?:::[A-Za-z_][\w]*)*", code):
        yield False, m.group(0)


def expand(s):
    m = re.match(r"^(.*?)\{(.*)\}$", s)
    if not m:
        return [s]
    pre, inner, depth, cur, items = m.group(1), m.group(2), 0, "", []
    for ch in inner:
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        items.append(cur)
    return [pre + e for it in items for e in expand(it)]


def main():
    args = sys.argv[1:]
    rules = []
    while "--forbid" in args:
        i = args.index("--forbid")
        src, dests = args[i + 1].split("=")
        rules.append((src, dests.split(",")))
        del args[i : i + 2]
    sys.argv = [sys.argv[0]] + args
    root = sys.argv[1]
    mods = modules(root)
    reexports = {}

    def resolve(cur, path):
        segs = path.split("::")
        base = cur.split("::") if cur else []
        i = 0
        if segs[0] == "crate":
            base, i = [], 1
        elif segs[0] == "self":
            i = 1
        elif segs[0] == "super":
            while i < len(segs) and segs[i] == "super":
                base, i = base[:-1], i + 1
        elif "::".join(base + [segs[0]]) not in mods:
            return None
        full = base + segs[i:]
        for k in range(len(full), -1, -1):
            m = "::".join(full[:k])
            if m in mods:
                # `m::Item` or `m::Item::Variant`: a re-exported item counts where it is defined.
                if k < len(full):
                    return reexports.get((m, full[k]), m)
                return m
        return None

    texts = {m: open(p).read() for m, p in mods.items()}
    edges = {}
    for _ in range(4):  # re-exports of re-exports settle in a few rounds
        edges = {m: set() for m in mods}
        for m in mods:
            for public, path in uses(texts[m]):
                r = resolve(m, path)
                if r is None:
                    continue
                if r != m:
                    edges[m].add(r)
                if public:
                    reexports[(m, path.split("::")[-1])] = r

    index, low, stack, on, cycles = {}, {}, [], set(), []
    sys.setrecursionlimit(10000)

    def strong(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    for c in cycles:
        print("circle:", " <-> ".join(c))
    under = lambda m, top: m == top or m.startswith(top + "::")
    broken = [
        (m, d)
        for src, dests in rules
        for m in sorted(edges)
        if under(m, src)
        for d in sorted(edges[m])
        if any(under(d, top) for top in dests)
    ]
    for m, d in broken:
        print(f"layering: {m} imports {d}")
    if len(sys.argv) > 2:
        for m in sorted(edges):
            if m.startswith(sys.argv[2]):
                print(m or "(root)", "->", ", ".join(sorted(edges[m])) or "-")
    sys.exit(1 if cycles or broken else 0)


main()
