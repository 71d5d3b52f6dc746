"""README "Chaining tasks": list the bucket channel, the model of task3 (no data channel here)."""

import logging
import subprocess
import sys

from worker_toolkit import worker_lib

logger = logging.getLogger(__name__)


def listDir(path):
    logger.info(f"*** START listing files in {path}")
    logger.info(
        subprocess.run(
            ["ls", "-la", "-R", path], stdout=subprocess.PIPE, universal_newlines=True
        ).stdout
    )
    logger.info(f"*** END file listing {path}")


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stdout)
    worker_lib.setDebugLevel()
    args = worker_lib.parseArgs()
    listDir(args.input_data)
    listDir(args.input_bucket)
