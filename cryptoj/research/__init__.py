"""Parameter sweeps over deterministic replays, walk-forward validated (docs/research.md)."""
