"""One module per `ssmake` subcommand."""
