"""``python -m synthforge``: the same as the ``synthforge`` command."""

from synthforge.cli import entry

entry()
