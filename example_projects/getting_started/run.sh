#!/usr/bin/env bash
# README "Getting started" with the ssm command. Runs on this machine unless
# SSMAKE_BACKEND says otherwise (SSMAKE_BACKEND=sagemaker ./run.sh: on AWS).
set -euo pipefail
cd "$(dirname "$0")"
export SSMAKE_BACKEND="${SSMAKE_BACKEND:-local}"

ssm -p simple-sagemaker-example-cli -t task1 -e worker1.py -o ./output/example1 --it ml.p3.2xlarge --ic 2

# The logs of both instances:
cat ./output/example1/logs/logs0 ./output/example1/logs/logs1
