#!/usr/bin/env bash
# README "Passing command line arguments" with the ssm command: --msg is not an
# ssm flag, so it is passed to the job as the hyperparameter msg.
set -euo pipefail
cd "$(dirname "$0")"
export SSMAKE_BACKEND="${SSMAKE_BACKEND:-local}"

ssm -p simple-sagemaker-example-cli -t task2 -e worker2.py --msg "Hello, world!" -o ./output/example2

cat ./output/example2/logs/logs0
