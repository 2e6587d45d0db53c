"""`python -m codebeaker.client` is the `codebeaker` command."""

import sys

from codebeaker.client.cli import main

sys.exit(main())
