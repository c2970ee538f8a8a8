"""``python -m bpfast``: the command line of `bpfast.cli`."""
import sys

from .cli import main

sys.exit(main())
