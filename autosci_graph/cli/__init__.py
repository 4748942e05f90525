"""The ``autosci`` command. Each sub-command lives in its own module with a ``register`` hook.

The CLI owns the terminal: user mistakes (an :class:`~autosci_graph.errors.AutosciError`) print
one line and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from autosci_graph.errors import AutosciError

#: Modules under ``autosci_graph.cli`` that add sub-commands; each defines ``register(subparsers)``.
_COMMAND_MODULES = ("experiment", "memory", "lab")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autosci", description="Self-organizing AI research teams on LangGraph.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"autosci_graph.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"autosci_graph.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except AutosciError as exc:
        print(f"autosci: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autosci: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
