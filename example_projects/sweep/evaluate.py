"""Reads every expansion's model.tar.gz (one subdirectory each) and reports the best."""

import json
import tarfile
from pathlib import Path

from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
results = {}
for tarball in sorted(Path(args.input_models).glob("*/model.tar.gz")):
    with tarfile.open(tarball) as tar:
        member = tar.extractfile("score.json")
        assert member is not None
        results[tarball.parent.name] = json.load(member)
best = max(results, key=lambda name: results[name]["score"])
print(f"{len(results)} models; best: {best} {results[best]}")
Path(args.output_data_dir, "best.json").write_text(json.dumps({"best": best, "all": results}, indent=1))
