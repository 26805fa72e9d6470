"""Command line: ``fastadv train|eval|bench|plot`` (also ``python -m fastadv``).

Each subcommand lives in its own module of this package (train.py, eval.py, bench.py,
plot.py) exposing ``add_arguments(parser)`` and ``run(args)``; this file wires them together
and is the one error handler: a user error prints ``fastadv <command>: error: ...`` and exits
2, an internal error keeps its traceback. While a command runs, each warning prints as one
line ``fastadv: warning: ...`` (no file paths: the user did not write that code). Help shows
every option's default and choices. With no subcommand, ``train`` runs its embedded default.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from typing import List, Optional

_SUBCOMMANDS = {
    "train": ("fastadv.cli.train", "train a model adversarially (default: Backward Smoothing on the bundled digits)"),
    "eval": ("fastadv.cli.eval", "evaluate a checkpoint or run directory under attacks"),
    "bench": ("fastadv.cli.bench", "time the fused ops against the reference"),
    "plot": ("fastadv.cli.plot", "write PNG training curves of a run directory"),
}


# what fastadv raises for bad input (the rule of fastadv/_checks.py) and for missing files
USER_ERRORS = (ValueError, TypeError, FileNotFoundError)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to an option's help, except where the default is None or empty
    (filled in at run time: the help then says from where) or the help already names it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, [], argparse.SUPPRESS) or isinstance(action.default, bool) \
                or "default" in text:  # a flag's False says nothing
            return text
        return super()._get_help_string(action)


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """warnings.showwarning for the CLI: one line, without the source location."""
    text = " ".join(str(message).split())  # a wrapped message becomes one line
    print(f"fastadv: warning: {text}", file=file if file is not None else sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastadv", description="Fast adversarial training.")
    sub = parser.add_subparsers(dest="command")
    for name, (module, help_text) in _SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text,
                                    formatter_class=HelpFormatter)
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
        with warnings.catch_warnings():  # restores showwarning: the API keeps Python's format
            warnings.showwarning = show_warning
            return int(importlib.import_module(args._module).run(args) or 0)
    except USER_ERRORS as exc:
        # a user's mistake (bad value, missing file): one line, no traceback; set
        # FASTADV_DEBUG=1 to see where it was raised
        if os.environ.get("FASTADV_DEBUG"):
            raise
        message = " ".join(str(exc).split())  # one line, even for a wrapped message
        print(f"fastadv {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
