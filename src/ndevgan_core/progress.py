"""Progress bars for long work (training, sampling, data preparation).

tqdm is used rather than click's bar because it shows the rate (it/s) and ETA and carries a
live postfix of losses, and it degrades to occasional plain lines when stderr is not a TTY.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


def progress_bar(total: int | None = None, *, disable: bool = False, **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr (a context manager); ``disable=True`` gives a silent one."""
    interactive = sys.stderr.isatty()
    return tqdm(
        total=total,
        disable=disable,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.2 if interactive else 5.0,
        smoothing=0.1,
        **kwargs,
    )
