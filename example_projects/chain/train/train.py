"""Reads prepare's model.tar.gz and state, and 'trains' on it."""

import tarfile
from pathlib import Path

from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
with tarfile.open(Path(args.input_prepared) / "model.tar.gz") as tar:
    names = sorted(m.name for m in tar.getmembers() if m.isfile())
hosts = sorted(p.name for p in Path(args.input_prepare_state).iterdir() if p.is_dir())
print(f"training with lr={args.hps['lr']} on {names} prepared by {hosts}")
Path(args.model_dir, "model.txt").write_text(f"lr={args.hps['lr']} files={names}\n")
Path(args.output_data_dir, "report.txt").write_text(f"prepared by {hosts}\n")
