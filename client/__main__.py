"""`python -m codebeaker.client`: the `codebeaker` command's client commands alone."""

import sys

from codebeaker.client.cli import main

sys.exit(main())
