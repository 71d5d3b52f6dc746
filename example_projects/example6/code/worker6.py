"""README "A fully featured advanced example": one worker for the two parts,
chosen by the task_type hyperparameter.

Differences from the README's worker6.py, so that it runs on ssmake's local
backend too (the job runs on this machine's Python, not in the image): the
packages the Dockerfile and requirements.txt install are optional here, the job
directories are found from args (/opt/ml on SageMaker), and part 2 waits 1
second between its two scores instead of 60.
"""

import logging
import sys
import time
from pathlib import Path

# importing an internal dependency
from internal_dependency import lib2
from worker_toolkit import worker_lib

logger = logging.getLogger(__name__)


def installed(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def listDir(path, ignore_patterns=[]):
    logger.info(f"*** START listing files in {path}")
    for file in sorted(Path(path).rglob("*")):
        if (not ignore_patterns) or all(
            [pattern not in str(file) for pattern in ignore_patterns]
        ):
            logger.info(f"[{['File', 'Dir '][file.is_dir()]}] {file}")
    logger.info(f"*** END file listing {path}")


def worker1(args, state_dir):
    # a library that is pre-installed in the docker image, as defined in the Dockerfile
    if installed("pandas"):
        logger.info("pandas is pre-installed in this image")
    else:
        logger.info("pandas is not installed: the Dockerfile's image is not used here")

    # update the state
    (Path(state_dir) / args.current_host).write_text(f"state_{args.current_host}")
    # "process" input data into model output
    for file in Path(args.input_data).rglob("*"):
        relp = file.relative_to(args.input_data)
        path = Path(args.model_dir) / (f"{relp}_proc_by_{args.current_host}")
        path.write_text(f"{file.read_text()} processed by {args.current_host}")
    # write to output dir
    (Path(args.output_data_dir) / f"output_{args.current_host}").write_text(
        f"output_{args.current_host}"
    )


def worker2(args, state_dir):
    # importing an external dependency
    from external_dependency import lib1

    logger.info(f"using {lib1.describe()}")
    logger.info("Score=10;")
    time.sleep(1)  # the README sleeps 60 s, to see two points on the metrics graph
    logger.info("Score=20;")


def show_inputs(args, state_dir):
    # just to show the initial directory structue
    for channel_name in args.channel_names:
        input_path = args.__getattribute__(f"input_{channel_name}")
        logger.info(f"input channel {channel_name} is at {input_path}")

    listDir(ml_root(args), ["__pycache__"])
    listDir(args.state)


def show_output(args, state_dir):
    # show the final directory structue
    root = ml_root(args)
    listDir(root, [f"{root}/input", f"{root}/code", "__pycache__"])
    listDir(args.state)


def ml_root(args):
    # /opt/ml on SageMaker; a directory per instance on the local backend
    return str(Path(args.model_dir).parent)


def worker():
    logging.basicConfig(stream=sys.stdout)
    worker_lib.setDebugLevel()
    # a library that was installed due to requirements.txt
    if installed("transformers"):
        logger.info("transformers is installed (requirements.txt)")
    else:
        logger.info("transformers is not installed: see requirements.txt")
    logger.info(f"using {lib2.describe()}")
    # parse the arguments
    args = worker_lib.parseArgs()
    # get the instance specific state path
    state_dir = worker_lib.initMultiWorkersState(args)
    show_inputs(args, state_dir)

    if int(args.hps["task_type"]) == 1:
        worker1(args, state_dir)
    elif int(args.hps["task_type"]) == 2:
        worker2(args, state_dir)

    # mark the task as completed
    worker_lib.markCompleted(args)
    show_output(args, state_dir)

    logger.info("finished!")


if __name__ == "__main__":
    worker()
