"""``python -m minflaubert ...``: the same command line as the ``minflaubert`` script."""
import sys

from .cli import main

sys.exit(main())
