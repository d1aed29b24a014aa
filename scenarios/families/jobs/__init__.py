"""Workloads of the ``jobs`` family: crash cases, race pairs and the state machine."""
