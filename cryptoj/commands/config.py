"""The config a command runs with, and the ``check-config`` and ``new-strategy`` commands."""

from __future__ import annotations

import sys
from pathlib import Path

from cryptoj.config import Config, ConfigError, load_config, path_problems
from cryptoj.models.system import EXIT_OK, EXIT_USAGE

DEFAULT_CONFIG = "config.yaml"


def load(path: str | None, *, default_if_missing: bool = False) -> Config:
    """The config at ``path`` (None: ``config.yaml`` when ``default_if_missing`` and it exists,
    else the defaults), its strategies checked; ConfigError naming every problem."""
    if path is None and default_if_missing and Path(DEFAULT_CONFIG).is_file():
        path = DEFAULT_CONFIG
    return with_strategies(load_config(path), path or "<defaults>")


def with_strategies(cfg: Config, source: str) -> Config:
    """``cfg`` when every configured strategy loads with valid parameters, else ConfigError."""
    from cryptoj.strategies.loader import strategy_problems

    problems = strategy_problems(cfg)
    if problems:
        raise ConfigError(source, problems)
    return cfg


def new_strategy(name: str, directory: str) -> int:
    """``new-strategy``: write a strategy skeleton and its test into ``directory``."""
    from cryptoj.strategies.skeleton import SkeletonError, write_skeleton

    try:
        written = write_skeleton(name, Path(directory))
    except SkeletonError as e:
        print(f"new-strategy: {e}", file=sys.stderr)
        return EXIT_USAGE
    for path in written:
        print(f"wrote {path}")
    print(
        f'next: python -m pytest {written[1]} -q; then set strategy.kind: "{name}:'
        f'{_class_name(name)}" in your config and run python -m cryptoj replay'
    )
    return EXIT_OK


def _class_name(module: str) -> str:
    from cryptoj.strategies.skeleton import class_name

    return class_name(module)


def check_config(path: str) -> int:
    """``check-config``: every problem of the config at ``path`` (exit 2), else one OK line."""
    try:
        cfg = with_strategies(load_config(path), path)
    except ConfigError as e:
        problems = e.problems
    else:
        problems = path_problems(cfg)
    if problems:
        for problem in problems:
            print(problem)
        print(f"{path}: {len(problems)} problem(s)", file=sys.stderr)
        return EXIT_USAGE
    print(f"{path}: OK (mode {cfg.mode}, {len(cfg.feed.products) or 'all'} products)")
    return EXIT_OK
