"""The documentation executes: every command shown in README.md and docs/*.md runs here.

Fenced blocks marked ``bash``, ``sh`` or ``console`` are commands. In a ``console`` block a
line starting with ``$ `` is a command (a trailing ``\\`` continues it) and the lines under it
are its quoted output: each must appear in what the command printed (stdout and stderr), in
order, with runs of spaces compared as one and ``...`` standing for any text; a line that is
only ``...`` stands for any number of lines. In a ``bash``/``sh`` block every line is a command
and only its exit code is checked. Every command must exit 0 (a command whose failure is the
point says so with ``; echo "exit $?"`` and quotes the line).

A block that cannot run here (live trading on the real exchange, a long soak, a download from
the real Coinbase, the test suite itself) is preceded by ``<!-- not-run: reason -->``; that
list is kept short (``MAX_NOT_RUN``).

Each document runs as one bash session, in order, in a scratch directory holding a copy of
``config.yaml`` and ``examples/`` and links to ``tools/`` and ``benchmarks/``, with this
checkout first on ``PYTHONPATH``. The well-known ports the docs name (the ops endpoint 9325,
the fake exchange's 8444-8447) are replaced by free ones, in the commands and in the copied
configs, so a daemon the docs start never collides with one already running. Where ``curl`` or
``sqlite3``'s command line is missing, a small stand-in covering the forms the docs use is put on
``PATH`` (``CRYPTOJ_DOCS_SHIMS=1`` forces the stand-ins, to test them).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN_LANGS = {"bash", "sh", "console"}
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(?P<reason>.+?)\s*-->$")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\s*$")
WELL_KNOWN_PORTS = (9325, 8444, 8445, 8446, 8447)
MAX_NOT_RUN = 6
DOC_TIMEOUT_S = 180.0


@dataclass
class Command:
    """One command of a document and the output lines quoted under it."""

    path: Path
    line: int
    text: str
    expected: list[str] = field(default_factory=list)


@dataclass
class Block:
    """One fenced block."""

    path: Path
    line: int
    lang: str
    lines: list[str]
    not_run: str | None


def parse_blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path`` with its language and not-run reason."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start = i
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        prev = next((lines[k].strip() for k in range(start - 1, -1, -1) if lines[k].strip()), "")
        marker = NOT_RUN.match(prev)
        blocks.append(
            Block(
                path,
                start + 1,
                m["lang"],
                lines[start + 1 : j],
                marker["reason"] if marker else None,
            )
        )
        i = j + 1
    return blocks


def commands_of(block: Block) -> list[Command]:
    """The commands of a runnable block (console: ``$`` lines and their quoted output)."""
    out: list[Command] = []
    pending: Command | None = None
    for n, raw in enumerate(block.lines, start=block.line + 1):
        if pending is not None and pending.text.endswith("\\"):
            pending.text = pending.text[:-1].rstrip() + " " + raw.strip()
            continue
        if block.lang == "console":
            if raw.startswith("$ "):
                pending = Command(block.path, n, raw[2:].strip())
                out.append(pending)
            elif pending is not None and raw.strip():
                pending.expected.append(raw)
            continue
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending = Command(block.path, n, stripped)
        out.append(pending)
    return out


def _normal(line: str) -> str:
    return " ".join(line.split())


def _pattern(line: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in _normal(line).split("...")]
    return re.compile("^" + ".*".join(parts) + "$")


def output_problem(expected: list[str], actual: str) -> str | None:
    """None when the quoted lines appear in ``actual`` in order; else what is missing."""
    got = [_normal(x) for x in actual.splitlines() if x.strip()]
    pos = 0
    for line in expected:
        if _normal(line) == "...":
            continue
        pat = _pattern(line)
        while pos < len(got) and not pat.match(got[pos]):
            pos += 1
        if pos == len(got):
            return f"quoted line not in the output (in order): {line.strip()!r}"
        pos += 1
    return None


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _remap(text: str, ports: dict[int, int]) -> str:
    for old, new in ports.items():
        text = re.sub(rf"(?<!\d){old}(?!\d)", str(new), text)
    return text


def _workdir(base: Path, ports: dict[int, int]) -> Path:
    (base / "examples").mkdir()
    (base / "config.yaml").write_text(_remap((ROOT / "config.yaml").read_text(), ports))
    for f in (ROOT / "examples").iterdir():
        if f.is_file():
            (base / "examples" / f.name).write_text(_remap(f.read_text(), ports))
    for name in ("tools", "benchmarks"):
        (base / name).symlink_to(ROOT / name)
    (base / ".bin").mkdir()
    for tool, shim_text in (("sqlite3", SQLITE3_SHIM), ("curl", CURL_SHIM)):
        if shutil.which(tool) is None or os.environ.get("CRYPTOJ_DOCS_SHIMS"):
            shim = base / ".bin" / tool
            shim.write_text(shim_text.replace("PYTHON", sys.executable))
            shim.chmod(0o755)
    return base


# Stand-ins for the two command-line tools the docs use, where the machine lacks them (the
# forms the docs use only): sqlite3 DB "SQL" (rows as a|b) and curl -s/-f/-X/-H/-d URL.
SQLITE3_SHIM = """#!PYTHON
import sqlite3, sys
for row in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]):
    print("|".join("" if v is None else str(v) for v in row))
"""
CURL_SHIM = """#!PYTHON
import sys, urllib.error, urllib.request
args, method, headers, data, url, fail = sys.argv[1:], None, {}, None, None, False
while args:
    a = args.pop(0)
    if a == "-X":
        method = args.pop(0)
    elif a == "-H":
        k, v = args.pop(0).split(":", 1)
        headers[k.strip()] = v.strip()
    elif a == "-d":
        data = args.pop(0).encode()
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    elif a.startswith("-"):
        fail = fail or "f" in a
    else:
        url = a if "://" in a else "http://" + a
req = urllib.request.Request(url, data=data, headers=headers, method=method)
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    if fail:
        sys.exit(22)
    sys.stdout.write(e.read().decode())
except OSError:
    sys.exit(7)
"""


def _env(base: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRYPTOJ_", "COINBASE_"))}
    env["PYTHONPATH"] = str(ROOT) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env["PYTHONUNBUFFERED"] = "1"
    bins = [str(base / ".bin"), str(Path(sys.executable).parent), env.get("PATH", "")]
    env["PATH"] = os.pathsep.join(bins)
    return env


def run_document(path: Path, base: Path, ports: dict[int, int]) -> list[tuple[Command, int, str]]:
    """Run every runnable command of ``path`` in one bash session; (command, exit code, output)."""
    cmds = [
        c
        for b in parse_blocks(path)
        if b.lang in RUN_LANGS and b.not_run is None
        for c in commands_of(b)
    ]
    if not cmds:
        return []
    cwd = _workdir(base, ports)
    script = ["set +e"]
    for i, c in enumerate(cmds):
        script += [
            f"printf '\\n@@cmd {i}@@\\n'",
            _remap(c.text, ports),
            f"printf '\\n@@rc {i} %d@@\\n' $?",
        ]
    script.append("kill $(jobs -p) 2>/dev/null; true")
    proc = subprocess.Popen(
        ["bash", "-c", "\n".join(script)],
        cwd=cwd,
        env=_env(cwd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=DOC_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        out += "\n(document timed out)"
    finally:
        # anything a document left running in the background
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    results = []
    for i, c in enumerate(cmds):
        m = re.search(rf"@@cmd {i}@@\n(.*?)\n@@rc {i} (\d+)@@", out, re.S)
        results.append((c, int(m[2]), m[1]) if m else (c, -1, out[-3000:]))
    return results


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_document_commands(path: Path, tmp_path: Path) -> None:
    """Every command of the document exits 0 and prints the lines quoted under it."""
    started = time.monotonic()
    problems = []
    ports = dict(zip(WELL_KNOWN_PORTS, _free_ports(len(WELL_KNOWN_PORTS)), strict=True))
    for cmd, rc, output in run_document(path, tmp_path, ports):
        where = f"{path.relative_to(ROOT)}:{cmd.line}: $ {cmd.text}"
        if rc != 0:
            problems.append(f"{where}\n  exit code {rc}\n  output:\n{output[-2000:]}")
            continue
        problem = output_problem([_remap(x, ports) for x in cmd.expected], output)
        if problem:
            problems.append(f"{where}\n  {problem}\n  output:\n{output[-2000:]}")
    assert not problems, "\n\n".join(problems)
    print(f"{path.name}: {time.monotonic() - started:.1f} s")


def test_no_unmarked_prompts() -> None:
    """A block that shows ``$`` commands is a console block, so it runs (or is marked)."""
    bad = [
        f"{b.path.relative_to(ROOT)}:{b.line}"
        for path in DOCS
        for b in parse_blocks(path)
        if b.lang not in RUN_LANGS and any(x.startswith("$ ") for x in b.lines)
    ]
    assert not bad, f"blocks with $ prompts that are not console blocks: {bad}"


def test_not_run_list_is_short_and_justified() -> None:
    """Few blocks are exempt, each with its reason."""
    exempt = [(b.path.name, b.line, b.not_run) for p in DOCS for b in parse_blocks(p) if b.not_run]
    assert all(reason and len(reason) > 15 for _, _, reason in exempt), exempt
    assert len(exempt) <= MAX_NOT_RUN, exempt


def test_quick_start_is_ci_contract() -> None:
    """The README's Quick start is what .ci/run executes."""
    quick = next(b for b in parse_blocks(ROOT / "README.md") if b.lang == "bash")
    lines = [x for x in quick.lines if x and not x.startswith("#")]
    install = 'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]"'
    assert lines == [
        install + " && python -m cryptoj replay",
        ". .venv/bin/activate && python -m pytest",
    ]
    ci = (ROOT / ".ci" / "run").read_text()
    for step in (
        "python3 -m venv .venv",
        ". .venv/bin/activate",
        '-e ".[dev]"',
        "python -m cryptoj replay",
        "python -m pytest",
    ):
        assert step in ci, step


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of the headings of ``path``."""
    out = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") and " " in line:
            title = line.split(" ", 1)[1].strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_relative_links_resolve() -> None:
    """Links between the documents point at files (and headings) that exist."""
    # docs/research.md is written on the research branch; its README pointer is expected.
    pending = {ROOT / "docs" / "research.md"}
    missing = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", text):
            if "://" in target or target.startswith("mailto:"):
                continue
            dest = (path.parent / target).resolve() if target else path
            if dest in pending:
                continue
            if not dest.exists():
                missing.append(f"{path.relative_to(ROOT)} → {target}")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                missing.append(f"{path.relative_to(ROOT)} → {target}#{anchor}")
    assert not missing, missing


def test_configuration_reference_is_generated() -> None:
    """docs/configuration.md is exactly what tools/gen_config_docs.py writes from the schema."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import gen_config_docs
    finally:
        sys.path.remove(str(ROOT / "tools"))
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == gen_config_docs.render(), (
        "docs/configuration.md is stale: run python tools/gen_config_docs.py"
    )


def test_runner_reports_exit_codes_and_output(tmp_path: Path) -> None:
    """The runner runs a document's commands in one session, in order, honouring not-run."""
    doc = tmp_path / "doc.md"
    doc.write_text(
        '```console\n$ X=41; echo "x $((X + 1))"\nx 42\n$ false\n```\n\n'
        "<!-- not-run: a command this test must never run -->\n```bash\nexit 7\n```\n\n"
        '```bash\necho "still $X on 9325" \\\n  && true\n```\n',
        encoding="utf-8",
    )
    work = tmp_path / "work"
    work.mkdir()
    results = run_document(doc, work, {9325: 1234})
    assert [(c.line, rc) for c, rc, _ in results] == [(2, 0), (4, 1), (13, 0)]
    assert output_problem(results[0][0].expected, results[0][2]) is None
    assert results[2][2].strip() == "still 41 on 1234"


def test_output_matching() -> None:
    """The quoted-output rule itself: order, ``...`` wildcards and gaps, spaces."""
    out = "a 1  b\nnoise\nc 2.5s x\nd\n"
    assert output_problem(["a 1 b", "c ...s x", "...", "d"], out) is None
    assert output_problem(["d", "a 1 b"], out) is not None
    assert output_problem(["c 3..."], out) is not None
