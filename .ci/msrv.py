"""Reads `cargo metadata` on stdin; fails when a library dependency of
xstate (normal or build, any feature) declares a rust-version newer than
xstate's own. Dev-dependencies are listed, not judged: they build only
the tests."""

import json
import sys


def version(v):
    parts = [int(x) for x in v.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


meta = json.load(sys.stdin)
packages = {p["id"]: p for p in meta["packages"]}
root = next(p for p in meta["packages"] if p["name"] == "xstate")
ours = root.get("rust_version")
if not ours:
    sys.exit("Cargo.toml declares no rust-version")
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}


def library_deps(node_id):
    for dep in nodes[node_id]["deps"]:
        kinds = {k["kind"] for k in dep["dep_kinds"]}
        if kinds & {None, "build"}:
            yield dep["pkg"]


seen, todo = set(), [root["id"]]
while todo:
    for dep in library_deps(todo.pop()):
        if dep not in seen:
            seen.add(dep)
            todo.append(dep)

too_new = []
for pid in sorted(seen, key=lambda i: packages[i]["name"]):
    p = packages[pid]
    need = p.get("rust_version")
    if need and version(need) > version(ours):
        too_new.append(f"{p['name']} {p['version']} needs {need}")
if too_new:
    sys.exit(f"rust-version {ours} is not true:\n  " + "\n  ".join(too_new))
newest = max(
    (packages[i].get("rust_version") or "0" for i in seen), key=version
)
dev = [
    f"{packages[d['pkg']]['name']} {packages[d['pkg']].get('rust_version')}"
    for d in nodes[root["id"]]["deps"]
    if {k["kind"] for k in d["dep_kinds"]} == {"dev"}
    and packages[d["pkg"]].get("rust_version")
    and version(packages[d["pkg"]]["rust_version"]) > version(ours)
]
print(f"rust-version {ours}: {len(seen)} library dependencies, the newest needs {newest}")
if dev:
    print("the tests' dev-dependencies need newer compilers: " + ", ".join(dev))
