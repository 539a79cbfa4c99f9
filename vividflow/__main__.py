"""`python -m vividflow …` is the `vividflow` command."""

import sys

from vividflow.cli import main

sys.exit(main())
