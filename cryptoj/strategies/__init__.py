"""Pure strategy logic: no actors, no I/O. A strategy turns bars into target weights."""
