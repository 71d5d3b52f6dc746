#!/usr/bin/env bash
# The same task as Ssmfile.toml, with the ssm command (simple-sagemaker's flags):
# after `ssmake` it runs nothing, and after it `ssmake` runs nothing.
set -euo pipefail
cd "$(dirname "$0")"
export SSMAKE_BACKEND="${SSMAKE_BACKEND:-local}"

ssm -p hello -t hello -s code -e hello.py --msg "Hello, world!" \
    -o output/hello --download_model --download_output

cat output/hello/model/message.txt
