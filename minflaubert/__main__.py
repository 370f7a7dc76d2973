"""``python -m minflaubert ...``: the same command line as the ``minflaubert`` script."""
import sys

from .apps.cli import main

sys.exit(main())
