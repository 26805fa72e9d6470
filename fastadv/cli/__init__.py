"""Command line: ``fastadv train|eval|bench|plot`` (also ``python -m fastadv``).

Each subcommand lives in its own module of this package (train.py, eval.py, bench.py,
plot.py) exposing ``add_arguments(parser)`` and ``run(args)``; this file wires them together
and is the one error handler: a user error prints ``fastadv <command>: error: ...`` and exits
2, an internal error keeps its traceback. With no subcommand, ``train`` runs its embedded default.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import List, Optional

_SUBCOMMANDS = {
    "train": ("fastadv.cli.train", "train a model adversarially (default: Backward Smoothing on the bundled digits)"),
    "eval": ("fastadv.cli.eval", "evaluate a checkpoint or run directory under attacks"),
    "bench": ("fastadv.cli.bench", "time the fused ops against the reference"),
    "plot": ("fastadv.cli.plot", "write PNG training curves of a run directory"),
}


# what fastadv raises for bad input (the rule of fastadv/_checks.py) and for missing files
USER_ERRORS = (ValueError, TypeError, FileNotFoundError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastadv", description="Fast adversarial training.")
    sub = parser.add_subparsers(dest="command")
    for name, (module, help_text) in _SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(sub_parser)
        sub_parser.set_defaults(_module=module)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        argv = ["train"]
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return 2
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except USER_ERRORS as exc:
        # a user's mistake (bad value, missing file): one line, no traceback; set
        # FASTADV_DEBUG=1 to see where it was raised
        if os.environ.get("FASTADV_DEBUG"):
            raise
        print(f"fastadv {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
