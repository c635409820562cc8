"""``python -m ndevgan_core`` is the ``ndevgan`` command."""

from .cli import main

main()
