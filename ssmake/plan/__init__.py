"""What a build would do: fingerprints, the hash cache, ignore rules, the planner,
job specs and the store layout. Pure: no boto3, docker, subprocess or rich."""
