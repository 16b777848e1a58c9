#!/bin/sh
# Autobahn fuzzing-server run against fleetclt's transport (sections 1-7 and 10 by default).
# Needs pyenv's python2.7; installs autobahntestsuite into .autobahn/ on first use.
#   scripts/autobahn.sh                 # all 247 cases
#   scripts/autobahn.sh --cases '5.*'   # one section
# Exit status: 0 when no case failed (or python2.7 is missing: it says SKIPPED), 1 otherwise.
# Reports land in .autobahn/run/reports/ (index.html per case).
set -eu
cd "$(dirname "$0")/.."
exec python -m tests.autobahn.harness "$@"
