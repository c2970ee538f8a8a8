"""``python -m bpfast``: the demo of `bpfast.demo`."""
import sys

from .demo import main

sys.exit(main())
