"""Workloads of the cv-archive family: crash cases, race pairs and the state machine."""
