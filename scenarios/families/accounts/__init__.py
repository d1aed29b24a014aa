"""Workloads of the ``accounts`` family: crash cases, race pairs and the state machine."""
