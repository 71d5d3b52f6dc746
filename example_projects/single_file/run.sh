#!/usr/bin/env bash
# README "Single file example": the runner and the worker in one file, run with
# the Python API (ssmake.compat.SageMakerProject). Runs on this machine unless
# SSMAKE_BACKEND says otherwise (SSMAKE_BACKEND=sagemaker ./run.sh: on AWS).
set -euo pipefail
cd "$(dirname "$0")"
export SSMAKE_BACKEND="${SSMAKE_BACKEND:-local}"

"${PYTHON:-python3}" code/example.py

find ./output -type f | sort
