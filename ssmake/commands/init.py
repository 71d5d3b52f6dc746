"""`ssmake init`: a small working project to start from."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ssmake.errors import EXIT_OK, SsmakeError

SSMFILE = """\
# ssmake project: each [tasks.NAME] is a training job. Run `ssmake` to build.
[project]
name = "__NAME__"
# The name prefixes the store's keys: a clone elsewhere sharing the store reuses results.
backend = "local"          # or "sagemaker"

[tasks.train]
source_dir = "code"
entry_point = "train.py"
inputs.data = { path = "data" }
hyperparameters = { epochs = 2 }
download = ["model", "output", "logs"]
output_path = "output/train"
"""

TRAIN = """\
import json
from pathlib import Path

from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
files = sorted(p.name for p in Path(args.input_data).iterdir())
print(f"{args.current_host}: training for {args.hps['epochs']} epochs on {files}")
Path(args.model_dir, "model.json").write_text(json.dumps({"files": files}))
Path(args.output_data_dir, "metrics.json").write_text(json.dumps({"loss": 0.1}))
"""


def project_name(directory: Path) -> str:
    """The directory's name as a project name ([A-Za-z0-9-]+)."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", directory.resolve().name).strip("-") or "project"


def write_example(directory: Path) -> list[Path]:
    """Write Ssmfile.toml, code/train.py and data/sample.txt; refuse to overwrite."""
    name = project_name(directory)
    files = {
        directory / "Ssmfile.toml": SSMFILE.replace("__NAME__", name),
        directory / "code" / "train.py": TRAIN,
        directory / "data" / "sample.txt": "hello\n",
    }
    existing = [p for p in files if p.exists()]
    if existing:
        raise SsmakeError(f"{existing[0]} already exists: ssmake init writes only new files")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(files)


def run(args: argparse.Namespace) -> int:
    for path in write_example(Path(args.directory)):
        print(f"created {path}", file=sys.stderr)
    return EXIT_OK
