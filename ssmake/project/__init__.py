"""The Ssmfile: the task model, loading and schema checks, TOML positions and the
task graph. Pure: no I/O beyond reading the Ssmfile."""
