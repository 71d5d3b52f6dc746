#!/usr/bin/env bash
# README "Chaining tasks" with the ssm command: task5 consumes the model of task3.
set -euo pipefail
cd "$(dirname "$0")"
export SSMAKE_BACKEND="${SSMAKE_BACKEND:-local}"

# task3 first (README "Task state and output"); a completed task3 is not run again.
ssm -p simple-sagemaker-example-cli -t task3 -e worker3.py -o ./output/example3

# --iit NAME TASK TYPE: the model of task3 is the input "bucket" of task5.
ssm -p simple-sagemaker-example-cli -t task5 -e worker4.py --iit bucket task3 model -o ./output/example5

cat ./output/example5/logs/logs0
