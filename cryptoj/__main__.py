"""``python -m cryptoj``: see :mod:`cryptoj.cli`."""

from cryptoj.cli import main

raise SystemExit(main())
