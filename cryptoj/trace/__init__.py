"""The message trace: recorder (used by both runtimes) and the trace CLI."""
