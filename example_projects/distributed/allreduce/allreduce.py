"""PyTorch's gloo all-reduce across the instances: torchrun gives every process its
RANK and WORLD_SIZE, and MASTER_ADDR:MASTER_PORT is where they meet."""

import os
from pathlib import Path

import torch
import torch.distributed as dist

dist.init_process_group("gloo", init_method="env://")
value = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(value)
print(f"rank {dist.get_rank()} of {dist.get_world_size()}: the sum is {value.item()}")
Path(os.environ["SM_MODEL_DIR"], f"rank{dist.get_rank()}").write_text(str(value.item()))
dist.destroy_process_group()
