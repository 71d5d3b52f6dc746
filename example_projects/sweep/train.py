"""'Trains' one point of the grid: its score is made up from lr and depth."""

import json
from pathlib import Path

from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
lr, depth, epochs = args.hps["lr"], args.hps["depth"], args.hps["epochs"]
score = round(depth * 0.1 - abs(lr - 0.05) * epochs, 4)
print(f"training depth={depth} lr={lr} for {epochs} epochs: score {score}")
Path(args.model_dir, "score.json").write_text(json.dumps({"lr": lr, "depth": depth, "score": score}))
