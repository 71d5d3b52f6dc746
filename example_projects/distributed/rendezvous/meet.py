"""Each instance sends its rank to the master, which answers with the sum of them
all: an all-reduce over plain sockets, at MASTER_ADDR:MASTER_PORT."""

import json
import os
import socket
import time
from pathlib import Path

from worker_toolkit import worker_lib

args = worker_lib.parseArgs()
rank, world = args.hosts.index(args.current_host), len(args.hosts)
address = (os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]))


def connect() -> socket.socket:
    deadline = time.monotonic() + 120  # the master may not listen yet
    while True:
        try:
            return socket.create_connection(address)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


totals = []
if rank == 0:
    server = socket.create_server(address)
    peers = [server.accept()[0] for _ in range(world - 1)]
for round_ in range(args.hps["rounds"]):
    mine = rank + round_
    if rank == 0:
        total = mine + sum(int(p.recv(32)) for p in peers)
        for p in peers:
            p.sendall(str(total).encode())
    else:
        if round_ == 0:
            conn = connect()
        conn.sendall(str(mine).encode())
        total = int(conn.recv(32))
    totals.append(total)
    print(f"round {round_}: rank {rank} of {world} has the sum {total}")
Path(args.model_dir, f"{args.current_host}.json").write_text(json.dumps(totals))
