"""``python tools/trace.py ...`` ≡ ``python -m cryptoj trace ...`` (works from a checkout)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cryptoj.trace.cli import main

raise SystemExit(main())
