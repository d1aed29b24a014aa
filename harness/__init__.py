"""The harness engine: contract, faults, history, invariants, reference model, runners, CLI."""
