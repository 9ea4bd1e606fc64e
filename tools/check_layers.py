#!/usr/bin/env python3
"""Fails when a source file includes a header, or a library links a library, from a folder above
its own (tools/layers.txt).

  tools/check_layers.py [REPO_ROOT]

Every `#include "folder/file.h"` of every .h/.cpp under the layered folders is checked: the
included folder must be the file's own or one on a lower line of layers.txt. A folder that
holds sources but is missing from layers.txt is an error too, so a new library has to be
placed in the order before it builds in CI. Likewise every gemkit_* library that a folder's
CMakeLists.txt links (target_link_libraries) must come from its own folder or a lower one: a
public link upwards would hand the higher layer to every user of the lower one.
"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)
rank = {}
for number, line in enumerate(l for l in (root / "tools/layers.txt").read_text().splitlines()
                              if l.strip() and not l.startswith("#")):
    for folder in line.split():
        rank[folder] = number

include = re.compile(r'^\s*#\s*include\s+"([A-Za-z0-9_]+)/[^"]+"', re.M)
unplaced, upward = set(), []
for path in sorted(root.glob("*/**/*")):
    if path.suffix not in (".h", ".cpp") or not path.is_file():
        continue
    rel = path.relative_to(root)
    folder = rel.parts[0]
    if folder == "tests" or folder.startswith(("build", ".")):
        continue
    if folder not in rank:
        unplaced.add(folder)
        continue
    for target in include.findall(path.read_text(errors="replace")):
        if target == folder or target not in rank and not (root / target).is_dir():
            continue  # own folder, or a system header such as "torch/..." found elsewhere
        if target not in rank:
            unplaced.add(target)
        elif rank[target] >= rank[folder]:
            kind = "a peer" if rank[target] == rank[folder] else "a higher layer"
            upward.append(f"{rel}: includes {target}/ ({kind}: {target} is on line {rank[target] + 1}, "
                          f"{folder} on line {rank[folder] + 1} of tools/layers.txt)")

# Libraries: which folder defines each gemkit_* target, and what each links.
library_folder = {}
for folder in rank:
    cmake = root / folder / "CMakeLists.txt"
    if cmake.is_file():
        for name in re.findall(r"add_(?:library|executable)\(\s*([A-Za-z0-9_-]+)", cmake.read_text()):
            library_folder[name] = folder
for folder in rank:
    cmake = root / folder / "CMakeLists.txt"
    if not cmake.is_file():
        continue
    for target, args in re.findall(r"target_link_libraries\(\s*([A-Za-z0-9_-]+)([^)]*)\)", cmake.read_text()):
        for dep in re.findall(r"\bgemkit_[A-Za-z0-9_]+", args):
            dep_folder = library_folder.get(dep)
            if dep_folder is None or dep_folder == folder:
                continue
            if rank[dep_folder] >= rank[folder]:
                upward.append(f"{folder}/CMakeLists.txt: {target} links {dep} ({dep_folder}/ is on line "
                              f"{rank[dep_folder] + 1}, {folder} on line {rank[folder] + 1} of tools/layers.txt)")

for folder in sorted(unplaced):
    print(f"{folder}/: holds sources but is not in tools/layers.txt")
for line in upward:
    print(line)
if unplaced or upward:
    sys.exit(1)
print(f"layers ok: {len(rank)} folders, {len(library_folder)} targets; no include or link from a higher layer or a peer")
