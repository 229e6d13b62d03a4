#!/usr/bin/env python3
"""check-layers.py - holds the source tree to the layer order written in README.md (Layout).

    scripts/check-layers.py [--root DIR] [--objects BUILD/obj]

Reads the layer table between the README's `<!-- layers -->` and `<!-- /layers -->` markers
(layer number, folders, and who a folder's files may use), then checks:

  includes  every `#include "..."` of every C, C++ and CUDA file in those folders (and every
            `#include <...>` that names a file of those folders) resolves to exactly one file,
            of the same layer or a lower one; a folder marked "`include/` only" (the programs)
            may include the public header and its own folder's headers, nothing else;
  calls     (with --objects) in the built objects, every symbol a file uses from another file
            is defined in the same layer or a lower one, and no files call each other in a
            circle, directly or through others (file-level strongly connected components).

Prints each violation and exits 1 when there is any, 0 otherwise. Objects whose source is
unknown (tests) are ignored. Run by the suite (tests/test_layout.c) on every `make test`.
"""
import argparse
import collections
import os
import re
import subprocess
import sys

SOURCE_EXT = ('.c', '.cc', '.h', '.cu', '.cuh')


def read_layers(readme):
    """[(layer, folder, public_only)] from the README table between the markers."""
    text = open(readme, encoding='utf-8').read()
    m = re.search(r'<!-- layers[^>]*-->(.*?)<!-- /layers -->', text, re.S)
    if not m:
        sys.exit(f'check-layers: no <!-- layers --> table in {readme}')
    rows = []
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) < 3 or not cells[0].isdigit():
            continue
        public_only = 'only' in cells[2]
        for folder in re.findall(r'`([^`]+/)`', cells[1]):
            rows.append((int(cells[0]), folder.rstrip('/'), public_only))
    if not rows:
        sys.exit(f'check-layers: the layer table in {readme} has no rows')
    return rows


def sources(root, folders):
    for folder in folders:
        d = os.path.join(root, folder)
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if name.endswith(SOURCE_EXT) and os.path.isfile(os.path.join(d, name)):
                yield os.path.join(folder, name)


def check_includes(root, layers):
    layer_of = {f: (n, p) for n, f, p in layers}
    search = [f for _, f, _ in layers]  # the include path: every layer folder
    problems = []
    for path in sources(root, layer_of):
        folder = os.path.dirname(path)
        n, public_only = layer_of[folder]
        text = open(os.path.join(root, path), encoding='utf-8', errors='replace').read()
        for lineno, line in enumerate(text.splitlines(), 1):
            m = re.match(r'\s*#\s*include\s+([<"])([^">]+)[">]', line)
            if not m:
                continue
            quoted, name = m.group(1) == '"', m.group(2)
            where = f'{path}:{lineno}'
            if quoted and os.path.isfile(os.path.join(root, folder, name)):
                found = os.path.normpath(os.path.join(folder, name))  # the includer's own folder first
            else:
                hits = sorted({os.path.normpath(os.path.join(d, name)) for d in search
                               if os.path.isfile(os.path.join(root, d, name))})
                if len(hits) > 1:
                    problems.append(f'{where}: #include {name} matches {", ".join(hits)}: rename one')
                    continue
                found = hits[0] if hits else None
            if not found:
                if quoted:
                    problems.append(f'{where}: #include "{name}" is not in any layer folder')
                continue  # <...> outside the tree: a system header
            target = os.path.dirname(found)
            tn = layer_of.get(target, (None,))[0]
            if tn is None:
                problems.append(f'{where}: #include "{name}" resolves to {found}, outside the layer table')
            elif public_only and target not in (folder, 'include'):
                problems.append(f'{where}: a program includes {found}; programs use the public API (include/) only')
            elif tn > n:
                problems.append(f'{where}: layer {n} ({folder}/) includes {found} of layer {tn}; '
                                'a file may include only its own layer or lower ones')
    return problems


def check_calls(root, layers, objdir):
    layer_of = {f: n for n, f, _ in layers}
    objs = {}
    for dirpath, _, names in os.walk(objdir):
        for name in names:
            if not name.endswith('.o'):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), objdir)[:-2]
            for ext in ('.c', '.cc', '.cu'):
                if os.path.isfile(os.path.join(root, rel + ext)) and os.path.dirname(rel) in layer_of:
                    objs[os.path.join(dirpath, name)] = rel + ext
    defined, used = {}, collections.defaultdict(set)
    for obj, src in objs.items():
        out = subprocess.run(['nm', obj], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            p = line.split()
            if len(p) == 3 and p[1] in 'TDBRVWG':
                defined[p[2]] = src
            elif len(p) == 2 and p[0] == 'U':
                used[src].add(p[1])
    graph, problems = collections.defaultdict(set), []
    for src, syms in used.items():
        for s in sorted(syms):
            dst = defined.get(s)
            if not dst or dst == src:
                continue
            graph[src].add(dst)
            a, b = layer_of[os.path.dirname(src)], layer_of[os.path.dirname(dst)]
            if b > a:
                problems.append(f'{src} (layer {a}) calls {s} of {dst} (layer {b}): a lower layer uses a higher one')
    for comp in strongly_connected(sorted(objs.values()), graph):
        if len(comp) > 1:
            problems.append('call circle: ' + ' <-> '.join(sorted(comp)))
    return problems, len(objs)


def strongly_connected(nodes, graph):
    """Tarjan's algorithm, iterative."""
    index, low, on, stack, comps, counter = {}, {}, set(), [], [], [0]
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start), on.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w), on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                comps.append(comp)
    return comps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--root', default=os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
    ap.add_argument('--objects', help='the build\'s obj/ folder: check calls too')
    a = ap.parse_args()
    layers = read_layers(os.path.join(a.root, 'README.md'))
    problems = check_includes(a.root, layers)
    nobj = 0
    if a.objects:
        if not os.path.isdir(a.objects):
            sys.exit(f'check-layers: {a.objects} is not a folder (build first)')
        more, nobj = check_calls(a.root, layers, a.objects)
        problems += more
    for p in problems:
        print(p)
    nfiles = sum(1 for _ in sources(a.root, {f for _, f, _ in layers}))
    print(f'check-layers: {len(problems)} problem(s); {nfiles} sources in {len(layers)} folders'
          + (f', calls of {nobj} objects' if a.objects else ''))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
