#!/usr/bin/env bash
# README "A fully featured advanced example" with the ssm command.
# Usage: ./run.sh [OUTPUT_DIR]   (default: ./output)
set -euo pipefail
cd "$(dirname "$0")"
export SSMAKE_BACKEND="${SSMAKE_BACKEND:-local}"
OUT="${1:-./output}"

# The README's public S3 input; without AWS credentials a local stand-in takes
# its place (ssm syncs a local --iis directory to the store, like -i).
PERSONS=s3://awsglue-datasets/examples/us-legislators/all/persons.json
if ! "${PYTHON:-python3}" -c 'import boto3, sys; sys.exit(boto3.Session().get_credentials() is None)' 2>/dev/null; then
    echo "run.sh: no AWS credentials are configured: the local stand-in ./persons" \
        "(a small persons.json) replaces $PERSONS" >&2
    PERSONS=./persons
fi

# Example 6_1 - a complete example part 1.
#   - Uses local data folder as input, that is distributed among instances (-i, ShardedByS3Key)
#   - Uses a public s3 bucket as an additional input (--iis)
#   - Builds a custom docker image (--df, --repo_name, --aws_repo)
#   - Hyperparameter task_type
#   - 2 instance (--ic)
#   - Use an on-demand instance (--no_spot)
ssm -p simple-sagemaker-example-cli -t task6-1 -s code -e worker6.py \
    -i data ShardedByS3Key --iis persons "$PERSONS" \
    --df . --repo_name "task6_repo" --aws_repo "task6_repo" --no_spot \
    --ic 2 --task_type 1 -o "$OUT/example6_1" --download_state --download_model --download_output

# Example 6_2 - a complete example part 2.
#   - Uses outputs from part 1 (--iit)
#   - Uses additional local code dependencies (-d)
#   - Uses the tensorflow framework as pre-built image (-f)
#   - Tags the jobs (--tag)
#   - Defines sagemaker metrics (-m, --md)
ssm -p simple-sagemaker-example-cli -t task6-2 -s code -e worker6.py \
    -d external_dependency --iit task_6_1_model task6-1 model --iit task_6_1_state task6-1 state ShardedByS3Key \
    -f tensorflow -m --md "Score" "Score=(.*?);" --tag "MyTag" "MyValue" \
    --ic 2 --task_type 2 -o "$OUT/example6_2" --download_state --download_model --download_output &
part2=$!

# Running task6-1 again
#   - A completed task isn't executed again, but the current output is used instead.
#       --ks (keep state, the default) is used to keep the current state
ssm -p simple-sagemaker-example-cli -t task6-1 -s code -e worker6.py \
    -i data ShardedByS3Key --iis persons "$PERSONS" \
    --df . --repo_name "task6_repo" --aws_repo "task6_repo" --no_spot \
    --ic 2 --task_type 1 -o "$OUT/example6_1" --download_state --download_model --download_output \
    --ks > "$OUT/example6_1_2_stdout" &
again=$!

wait "$part2"  # wait for all processes (and fail if one did)
wait "$again"
cat "$OUT/example6_1_2_stdout"
