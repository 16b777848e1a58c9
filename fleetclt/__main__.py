"""`python -m fleetclt`: the same as the `fleetclt` command."""
import sys

from .cli.main import main

sys.exit(main())
