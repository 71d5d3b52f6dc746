"""Helpers for the code that runs inside a training job.

Import the library as ``from worker_toolkit import worker_lib``; see
:mod:`worker_toolkit.worker_lib`. It is copied into every job's code, so it
uses the standard library only.
"""
