"""Each instance upper-cases its share of the input files into the model dir."""

from pathlib import Path

from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
state = Path(worker_lib.initMultiWorkersState(args))
mine = sorted(p.name for p in Path(args.input_data).iterdir())
print(f"{args.current_host} got {mine}")
for name in mine:
    text = Path(args.input_data, name).read_text()
    Path(args.model_dir, name).write_text(text.upper())
runs = int((state / "runs").read_text()) if (state / "runs").exists() else 0
(state / "runs").write_text(str(runs + 1))
worker_lib.markCompleted(args)
