"""One build: the engine, the task runner, in-flight claims, downloads, session wiring
and the watch loop."""
