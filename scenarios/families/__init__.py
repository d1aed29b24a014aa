"""Workloads of the families beside resumes (DESIGN section 8)."""
