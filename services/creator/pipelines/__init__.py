"""Creator pipelines: what handlers, batch jobs, the CLI and tests all call."""
