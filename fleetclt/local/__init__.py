"""This machine: the state directory fleetclt keeps between runs, and the open-file limit."""
