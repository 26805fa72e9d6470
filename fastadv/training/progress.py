"""The training progress bar (tqdm): one bar for the whole run, shown on a terminal only."""
from __future__ import annotations

import sys


def progress_bar(total: int, enabled, initial: int):
    """A bar over ``total`` batches starting at ``initial``; ``enabled`` None = on a terminal."""
    from tqdm.auto import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, initial=initial, disable=not enabled, unit="batch", leave=False,
                dynamic_ncols=True)
