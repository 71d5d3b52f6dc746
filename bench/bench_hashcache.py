"""The hash cache's file format at 100,000 entries: the JSON it is (one document,
rewritten whole), against sqlite3 (a table, read whole or queried per file, written
per changed entry) and marshal (one dict, Python's own serialisation).

Each figure is a fresh interpreter (imports included, as a plan pays them) doing
one of: load the cache and look every file up (the plan of a tree no stat digest
answers), or load it, change one entry and save (a plan after one edit). Runs are
alternated, medians; sizes and peak RSS beside. The decision is docs/benchmarks.md's.
Run: python bench/bench_hashcache.py [--entries N] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import marshal
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path

from timing import load, peak_rss_mib

# Paths NUL-joined, then 4 int64 a file (inode, size, mtime_ns, ctime_ns), then 32
# raw bytes of sha256 a file; the index is built from the paths' order.
BINARY_LOAD = """
from array import array
with open(PATH, "rb") as f:
    data = f.read()
n = int.from_bytes(data[:8], "little")
blob = data[8 : 8 + n]
paths = blob.decode("utf-8", "surrogateescape").split("\\0")
index = dict(zip(paths, range(len(paths))))
stats = array("q")
stats.frombytes(data[8 + n : 8 + n + 32 * len(paths)])
shas = data[8 + n + 32 * len(paths) :]
"""
LOOKUP = {
    "ssmake's hashes.bin": """
from ssmake.plan.hashcache import HashTable
from pathlib import Path
table = HashTable.read(Path(PATH))
key = (10_000_000, 4096, 1_700_000_000_000_000_000, 1_700_000_000_000_000_000)
hits = sum(1 for p in PATHS if table.get(p, key) is not None or True)
""",
    "json": """
import json
entries = json.loads(open(PATH, "rb").read())["entries"]
hits = sum(1 for p in PATHS if entries.get(p) is not None)
""",
    "marshal": """
import marshal
with open(PATH, "rb") as f:
    doc = marshal.load(f)
entries = doc["entries"]
hits = sum(1 for p in PATHS if entries.get(p) is not None)
""",
    "sqlite, read whole": """
import sqlite3
db = sqlite3.connect(PATH)
entries = {r[0]: r[1:] for r in db.execute("SELECT path, ino, size, mtime, ctime, sha FROM h")}
hits = sum(1 for p in PATHS if entries.get(p) is not None)
""",
    "binary arrays": BINARY_LOAD
    + """
hits = 0
for p in PATHS:
    i = index.get(p)
    if i is not None and stats[4 * i] and shas[32 * i : 32 * i + 32]:
        hits += 1
""",
    "sqlite, per file": """
import sqlite3
db = sqlite3.connect(PATH)
q = "SELECT ino, size, mtime, ctime, sha FROM h WHERE path = ?"
hits = sum(1 for p in PATHS if db.execute(q, (p,)).fetchone() is not None)
""",
}
SAVE_ONE = {
    "ssmake's hashes.bin": """
import os
from ssmake.plan.hashcache import HashTable
from pathlib import Path
table = HashTable.read(Path(PATH))
table.put(PATHS[0], (1, 2, 3, 4), "f" * 64)
with open(PATH + ".tmp", "wb") as f:
    f.write(table.to_bytes())
os.replace(PATH + ".tmp", PATH)
""",
    "json": """
import json, os
doc = json.loads(open(PATH, "rb").read())
doc["entries"][PATHS[0]][4] = "f" * 64
with open(PATH + ".tmp", "w") as f:
    json.dump(doc, f)
os.replace(PATH + ".tmp", PATH)
""",
    "marshal": """
import marshal, os
with open(PATH, "rb") as f:
    doc = marshal.load(f)
doc["entries"][PATHS[0]][4] = "f" * 64
with open(PATH + ".tmp", "wb") as f:
    marshal.dump(doc, f)
os.replace(PATH + ".tmp", PATH)
""",
    "binary arrays": BINARY_LOAD
    + """
import os
i = index[PATHS[0]]
shas = bytearray(shas)
shas[32 * i : 32 * i + 32] = bytes(32)
with open(PATH + ".tmp", "wb") as f:
    f.write(len(blob).to_bytes(8, "little") + blob + stats.tobytes() + shas)
os.replace(PATH + ".tmp", PATH)
""",
    "sqlite, read whole": """
import sqlite3
db = sqlite3.connect(PATH)
entries = {r[0]: r[1:] for r in db.execute("SELECT path, ino, size, mtime, ctime, sha FROM h")}
with db:
    db.execute("INSERT OR REPLACE INTO h VALUES (?, 1, 2, 3, 4, ?)", (PATHS[0], "f" * 64))
""",
}


def entries(n: int) -> dict[str, list[int | str]]:
    """Paths and stats shaped like a project's (20 tasks of nested directories)."""
    out: dict[str, list[int | str]] = {}
    for i in range(n):
        path = f"/home/user/projects/vision/task{i % 20:02d}/data/part{i // 1000:03d}/f{i:06d}.bin"
        out[path] = [
            10_000_000 + i,
            4096,
            1_700_000_000_000_000_000 + i,
            1_700_000_000_000_000_000 + i,
            f"{i:064x}",
        ]
    return out


def write_all(root: Path, doc: dict[str, list[int | str]]) -> dict[str, Path]:
    paths = {
        "json": root / "hashes.json",
        "marshal": root / "hashes.marshal",
        "sqlite": root / "hashes.db",
        "binary arrays": root / "arrays.bin",
        "ssmake's hashes.bin": root / "hashes.bin",
    }
    from ssmake.plan.hashcache import HashTable

    table = HashTable()
    for path, value in doc.items():
        ino, size, mtime, ctime, sha = value
        table.put(path, (int(ino), int(size), int(mtime), int(ctime)), str(sha))
    paths["ssmake's hashes.bin"].write_bytes(table.to_bytes())
    blob = "\0".join(doc).encode("utf-8", "surrogateescape")
    stats = array("q", (int(x) for v in doc.values() for x in v[:4]))
    shas = b"".join(bytes.fromhex(str(v[4])) for v in doc.values())
    paths["binary arrays"].write_bytes(
        len(blob).to_bytes(8, "little") + blob + stats.tobytes() + shas
    )
    paths["json"].write_text(json.dumps({"version": 2, "entries": doc}))
    with paths["marshal"].open("wb") as f:
        marshal.dump({"version": 2, "entries": doc}, f)
    db = sqlite3.connect(paths["sqlite"])
    with db:
        db.execute("CREATE TABLE h (path TEXT PRIMARY KEY, ino, size, mtime, ctime, sha)")
        db.executemany("INSERT INTO h VALUES (?, ?, ?, ?, ?, ?)", ([p, *v] for p, v in doc.items()))
    db.close()
    return paths


def script(body: str, path: Path, names: Path) -> list[str]:
    prelude = f"PATH = {str(path)!r}\nPATHS = open({str(names)!r}).read().split('\\n')\n"
    return [sys.executable, "-c", prelude + body]


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(load())
    doc = entries(args.entries)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = write_all(root, doc)
        names = root / "names.txt"
        names.write_text("\n".join(doc))
        baseline = script("PATHS", root / "none", names)  # the interpreter and the names
        for title, bodies in (
            ("load and look up every file", LOOKUP),
            ("load, change one, save", SAVE_ONE),
        ):
            cmds = {"interpreter + names": baseline}
            for name, body in bodies.items():
                fmt = "sqlite" if name.startswith("sqlite") else name
                cmds[name] = script(body, files[fmt], names)
            times: dict[str, list[float]] = {name: [] for name in cmds}
            for round_ in range(args.runs + 1):
                for name, cmd in cmds.items():
                    seconds = timed(cmd)
                    if round_:
                        times[name].append(seconds)
            floor = statistics.median(times["interpreter + names"]) * 1000
            print(f"\n{args.entries} entries: {title}")
            json_ms = statistics.median(times["json"]) * 1000 - floor
            for name, cmd in cmds.items():
                ms = statistics.median(times[name]) * 1000
                rss = peak_rss_mib(cmd)
                extra = "" if name == "interpreter + names" else f"  +{ms - floor:6.1f} ms"
                ratio = (
                    ""
                    if name in ("interpreter + names", "json")
                    else f"  {(ms - floor) / json_ms:5.2f}x json"
                )
                mem = f"  peak RSS {rss:5.1f} MiB" if rss is not None else ""
                print(f"  {name:22s} {ms:7.1f} ms{extra}{ratio}{mem}")
        print(
            "\nsizes: "
            + ", ".join(f"{k} {os.path.getsize(p) / 2**20:.1f} MiB" for k, p in files.items())
        )


if __name__ == "__main__":
    main()
