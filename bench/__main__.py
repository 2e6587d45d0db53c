"""Entry point: `python -m bench` from the repository root (`make bench`)."""

import sys

from bench.cli import main

sys.exit(main())
