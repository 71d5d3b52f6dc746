"""Unpacking what an upstream task delivered: SageMaker hands a job's results to
the next job as the tarballs themselves (``model.tar.gz``, ``output.tar.gz``).

Standard library only, Python 3.6 and later (copied into every job's code).
"""

import glob
import logging
import os
import tarfile
import tempfile

logger = logging.getLogger(__name__)


def extractUpstream(channel_dir: str, dest: "str | None" = None) -> str:
    """Unpack the tarballs an upstream task delivered as a channel; return the directory.

    An input ``{ task = "prepare", output = "model" }`` arrives the SageMaker way:
    the tarball itself (``<channel>/model.tar.gz``, or ``output.tar.gz``), not its
    files. This extracts every ``*.tar.gz`` of the channel into ``dest`` (default:
    a fresh directory under the system's temporary directory); the tarballs of a
    gathering input, one subdirectory per expansion, go into the same
    subdirectories of ``dest``. Members that would land outside ``dest``
    (absolute paths, ``..``, links, devices) are refused with ValueError.
    """
    channel_dir = str(channel_dir)
    name = os.path.basename(os.path.normpath(channel_dir)) or "channel"
    target = dest if dest is not None else tempfile.mkdtemp(prefix="upstream-" + name + "-")
    pattern = os.path.join(glob.escape(channel_dir), "**", "*.tar.gz")
    found = sorted(glob.glob(pattern, recursive=True))
    if not found:
        raise FileNotFoundError(
            "no *.tar.gz in " + channel_dir + ": extractUpstream is for an input whose "
            "task = names an upstream task"
        )
    for tarball in found:
        into = os.path.normpath(
            os.path.join(target, os.path.relpath(os.path.dirname(tarball), channel_dir))
        )
        os.makedirs(into, exist_ok=True)
        root = os.path.realpath(into)
        with tarfile.open(tarball) as tar:
            members = tar.getmembers()
            for member in members:
                where = os.path.realpath(os.path.join(root, member.name))
                outside = where != root and not where.startswith(root + os.sep)
                if outside or member.issym() or member.islnk() or member.isdev():
                    raise ValueError(tarball + ": refusing the member " + repr(member.name))
            tar.extractall(root, members=members)
    logger.info("Extracted %d upstream tarball(s) of %s into %s", len(found), channel_dir, target)
    return target
