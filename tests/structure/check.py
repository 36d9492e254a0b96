#!/usr/bin/env python3
"""Checks the shape of src/ that STYLE.md asks for: no import cycle between files, no file over 500 lines of code (tests aside), every file opening with a line that says what it is for.

Edges are the `crate::...` and `super::...` paths a file names, and the
paths through its own child modules (`mbox::Mbox` in maildrop/mod.rs),
resolved to the file that defines the module. A child naming its own
ancestor (`super::Session` in session/sasl.rs) is no edge: nesting a module
is what lets it extend its parent. Items under `#[cfg(test)]` (wherever they
stand) are ignored; the rest of the file counts.
"""
import os
import re
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else "src"
MAX_CODE_LINES = 500


def module_of(path):
    rel = os.path.relpath(path, SRC)[:-3].split(os.sep)
    if rel == ["main"]:
        # The binary's root beside the library's (src/lib.rs): a file of its own, naming the library's
        # modules as `pop3d::...`.
        return ("<main>",)
    if rel[-1] in ("mod", "main", "lib"):
        rel = rel[:-1]
    return tuple(rel)


def skip_literal(text, i):
    """If a comment, string or character literal starts at `i`, the index just past it; else None."""
    if text.startswith("//", i):
        end = text.find("\n", i)
        return len(text) if end < 0 else end
    if text.startswith("/*", i):
        depth, j = 0, i
        while j < len(text):
            if text.startswith("/*", j):
                depth, j = depth + 1, j + 2
            elif text.startswith("*/", j):
                depth, j = depth - 1, j + 2
                if depth == 0:
                    return j
            else:
                j += 1
        return len(text)
    raw = re.match(r'b?r(#*)"', text[i:i + 260])
    if raw and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
        close = '"' + raw.group(1)
        end = text.find(close, i + raw.end())
        return len(text) if end < 0 else end + len(close)
    if text[i] == '"' or text.startswith('b"', i) and (i == 0 or not text[i - 1].isalnum()):
        j = text.index('"', i) + 1
        while j < len(text) and text[j] != '"':
            j += 2 if text[j] == "\\" else 1
        return j + 1
    char = re.match(r"b?'(\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'])'", text[i:i + 16])
    if char:
        return i + char.end()
    return None


def skip_item(text, i):
    """The index just past the item that starts at `i` (after its attribute): up to its `;`, or its
    braces' end, whichever closes it at depth 0; further attributes on it included."""
    depth = 0
    while i < len(text):
        past = skip_literal(text, i)
        if past is not None:
            i = past
            continue
        c = text[i]
        if c in "{[(":
            depth += 1
        elif c in "}])":
            depth -= 1
            if depth == 0 and c == "}":
                return i + 1
        elif c == ";" and depth == 0:
            return i + 1
        i += 1
    return i


def without_tests(text):
    """The file's code without its `#[cfg(test)]` items: the test module wherever it stands, and any
    helper, import or impl marked for tests alone (the rest of the file still counts)."""
    out, i, start = [], 0, 0
    while i < len(text):
        past = skip_literal(text, i)
        if past is not None:
            i = past
            continue
        if text.startswith("#[cfg(test)]", i):
            out.append(text[start:i])
            i = start = skip_item(text, i + len("#[cfg(test)]"))
            continue
        i += 1
    out.append(text[start:])
    return "".join(out)


def self_test():
    """The test-item cutter on the cases that fooled the first one: a test-only helper in the middle of a
    file (the code after it counts), braces and the attribute inside strings, comments and characters."""
    sample = (
        'fn a() {}\n#[cfg(test)]\nfn helper() { let s = "}"; let c = \'}\'; }\n'
        'fn b<\'a>(x: &\'a str) -> &\'a str { x }\n#[cfg(test)]\nuse std::fmt;\n'
        '// #[cfg(test)] in a comment\nfn c() { let r = r#"#[cfg(test)] {"#; }\n'
        '#[cfg(test)]\n#[allow(dead_code)]\nmod tests {\n    fn t() { if true { } }\n}\nfn d() {}\n'
    )
    kept = without_tests(sample)
    for name in ("fn a", "fn b", "fn c", "fn d", "in a comment"):
        assert name in kept, (name, kept)
    for name in ("helper", "use std::fmt", "mod tests", "fn t"):
        assert name not in kept, (name, kept)


self_test()


def code_lines(text):
    n = 0
    for line in without_tests(text).splitlines():
        s = line.strip()
        if s and not s.startswith("//"):
            n += 1
    return n


files = {}
for root, _, names in os.walk(SRC):
    for name in names:
        if name.endswith(".rs"):
            path = os.path.join(root, name)
            files[module_of(path)] = path
texts = {m: open(p, encoding="utf-8").read() for m, p in files.items()}


def resolve(parts):
    """The longest module prefix of `parts` that is a file."""
    for n in range(len(parts), 0, -1):
        if tuple(parts[:n]) in files:
            return tuple(parts[:n])
    return None


def paths(text):
    """Every `a::b::c` path in `text`, with `{x, y::z}` groups expanded."""
    text = re.sub(r"//.*", "", text)
    out = []
    for m in re.finditer(r"\b((?:[a-z_][a-z0-9_]*::)+)(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)", text):
        prefix = m.group(1).rstrip(":").split("::")
        tail = m.group(2)
        if tail.startswith("{"):
            for item in re.split(r",", tail[1:-1]):
                item = item.strip().split(" as ")[0].strip()
                if item:
                    out.append(prefix + [p for p in item.split("::") if p and p != "self"])
        else:
            out.append(prefix + [tail])
    return out


edges = {m: set() for m in files}
for mod, text in texts.items():
    code = without_tests(text)
    children = set(re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;", code, re.M))
    for parts in paths(code):
        if parts[0] in ("crate", "pop3d"):
            target = resolve(parts[1:])
        elif parts[0] == "super":
            # `super` is the module's parent, whether the module is a file (session/sasl.rs) or a
            # directory (maildrop/mbox/mod.rs): each `super` takes one step up from the module itself.
            base, rest = list(mod), parts
            while rest and rest[0] == "super":
                base, rest = base[:-1], rest[1:]
            target = resolve(base + rest)
        elif parts[0] in children:
            target = resolve(list(mod) + parts)
        else:
            continue
        if target is None or target == mod or mod[: len(target)] == target:
            continue
        edges[mod].add(target)

# Cycles: strongly connected components with more than one file.
index, low, stack, on, sccs = {}, {}, [], set(), []
counter = [0]


def strong(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
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
            sccs.append(comp)


sys.setrecursionlimit(10000)
for v in sorted(files):
    if v not in index:
        strong(v)

problems = []
for comp in sccs:
    names = sorted(files[m] for m in comp)
    ties = ["%s -> %s" % (files[a], files[b]) for a in comp for b in edges[a] if b in comp]
    problems.append("import cycle: %s (%s)" % (", ".join(names), "; ".join(sorted(ties))))
for mod, text in sorted(texts.items()):
    n = code_lines(text)
    if n > MAX_CODE_LINES:
        problems.append("%s: %d lines of code (tests aside), more than %d" % (files[mod], n, MAX_CODE_LINES))
    first = text.split("\n", 1)[0]
    if not first.startswith("//!") or len(first) < 12:
        problems.append("%s: does not open with a //! line saying what it is for" % files[mod])

for p in problems:
    print("structure: " + p, file=sys.stderr)
if problems:
    sys.exit(1)
print("structure: %d files in %s, no import cycle, none over %d lines of code" % (len(files), SRC, MAX_CODE_LINES))
