from pathlib import Path

from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
print(f"{args.current_host} says: {args.hps['msg']}")
Path(args.model_dir, "message.txt").write_text(args.hps["msg"] + "\n")
Path(args.output_data_dir, "host.txt").write_text(args.current_host + "\n")
