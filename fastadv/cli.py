"""Command line: ``fastadv train|eval|bench|plot`` (also ``python -m fastadv``).

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args)``;
this file only wires them together. With no subcommand, ``train`` runs its embedded default.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

_SUBCOMMANDS = {
    "train": ("fastadv._cli_train", "train a model adversarially (default: Backward Smoothing on the bundled digits)"),
    "eval": ("fastadv._cli_eval", "evaluate a checkpoint or run directory under attacks"),
    "bench": ("fastadv._cli_bench", "time the fused ops against the reference"),
    "plot": ("fastadv._cli_plot", "write PNG training curves of a run directory"),
}


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
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
