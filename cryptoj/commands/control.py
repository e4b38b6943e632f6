"""``status`` and the emergency commands, sent to the running daemon's ops endpoint on
loopback (``resume`` is recorded in the journal when no daemon answers)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cryptoj.commands.config import load
from cryptoj.models.system import EXIT_ERROR, EXIT_OK, EXIT_USAGE


def status(args: argparse.Namespace) -> int:
    """``status``: the running daemon's state, read from its ops endpoint."""
    from cryptoj.ops.status_cli import run_status

    cfg = load(args.config, default_if_missing=True)
    code, text = run_status(
        cfg.ops, url=args.url, port=args.port, as_json=args.json, timeout=args.timeout
    )
    print(text, file=sys.stdout if code == EXIT_OK else sys.stderr)
    return code


def control(args: argparse.Namespace) -> int:
    """POST the emergency command to the running daemon's control endpoint (loopback)."""
    import urllib.error
    import urllib.request

    from cryptoj.config.ops import resolve_token
    from cryptoj.ops.status_cli import base_url

    cfg = load(args.config, default_if_missing=True)
    try:
        token = resolve_token(cfg.ops)
    except (OSError, ValueError) as e:
        print(f"{args.command}: ops token: {e}", file=sys.stderr)
        return EXIT_USAGE
    url = f"{args.url or base_url(cfg.ops, args.port)}/control/{args.command}"
    body: dict[str, Any] = {"reason": args.reason, "stop": bool(getattr(args, "stop", False))}
    if args.command == "resume":
        body["by"] = args.by or _os_user()
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=args.timeout) as resp:
            answer = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace").strip()
        print(f"{args.command}: refused by the daemon: HTTP {e.code} {detail}", file=sys.stderr)
        return EXIT_USAGE if e.code < 500 else EXIT_ERROR
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        print(f"{args.command}: no cryptoj daemon answering at {url} ({reason})", file=sys.stderr)
        if args.command == "resume":
            return _resume_offline(args.journal or cfg.journal.path, body["by"], args.reason)
        return EXIT_ERROR
    print(f"{args.command}: accepted ({json.dumps(answer, sort_keys=True)})")
    return EXIT_OK


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _resume_offline(path: str, by: str, reason: str) -> int:
    """Record an operator resume in the journal of a daemon that is not running: the restarted
    daemon's RiskActor then starts without the drawdown halt, its high-water mark from its
    first equity."""
    import time

    from cryptoj.actors.risk import drawdown_state, record_resume
    from cryptoj.journal import Journal

    if not Path(path).is_file():
        print(f"resume: nothing recorded: journal {path} not found", file=sys.stderr)
        return EXIT_ERROR
    journal = Journal(path)
    try:
        _, halted = drawdown_state(journal)
        record_resume(journal, time.time_ns(), by, reason, None, "cli")
    finally:
        journal.close()
    what = "drawdown halt lifted" if halted else "no drawdown halt was in force"
    print(f"resume: recorded in {path} by {by} ({what}); the daemon starts from it")
    return EXIT_OK
