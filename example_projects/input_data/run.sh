#!/usr/bin/env bash
# README "Providing input data" with the ssm command.
set -euo pipefail
cd "$(dirname "$0")"
export SSMAKE_BACKEND="${SSMAKE_BACKEND:-local}"

# The README's public S3 input; without AWS credentials a local stand-in takes
# its place (ssm syncs a local --iis directory to the store, like -i).
PERSONS=s3://awsglue-datasets/examples/us-legislators/all/persons.json
if ! "${PYTHON:-python3}" -c 'import boto3, sys; sys.exit(boto3.Session().get_credentials() is None)' 2>/dev/null; then
    echo "run.sh: no AWS credentials are configured: the local stand-in ./persons" \
        "(a small persons.json) replaces $PERSONS" >&2
    PERSONS=./persons
fi

ssm -p simple-sagemaker-example-cli -t task4 -e worker4.py -i ./data --iis bucket "$PERSONS" -o ./output/example4

cat ./output/example4/logs/logs0
