"""`python -m fleetclt.cli`: the same as the `fleetclt` command."""
import sys

from .main import main

sys.exit(main())
