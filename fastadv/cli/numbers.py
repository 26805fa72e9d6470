"""What the command-line modules share: parsing numbers written as decimals or fractions."""
from __future__ import annotations

import argparse
from fractions import Fraction


def parse_number(text: str):
    """'8/255' -> 0.0313..., '0.031' -> 0.031, '10' -> 10 (an int); a bare '8' is never 8/255."""
    text = str(text).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(Fraction(text)) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a number: {text!r} (write 0.031 or 8/255)") from None
