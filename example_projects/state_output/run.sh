#!/usr/bin/env bash
# README "Task state and output" with the ssm command.
set -euo pipefail
cd "$(dirname "$0")"
export SSMAKE_BACKEND="${SSMAKE_BACKEND:-local}"

# Runs worker3.py; -o alone brings back the logs.
ssm -p simple-sagemaker-example-cli -t task3 -e worker3.py -o ./output/example3

# The same command again: task3 already completed with the same code and
# parameters, so it is not run again; its state, model and output are
# downloaded from the store.
ssm -p simple-sagemaker-example-cli -t task3 -e worker3.py -o ./output/example3_2 \
    --download_state --download_model --download_output

find ./output/example3_2 -type f | sort
