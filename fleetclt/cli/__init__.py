"""The `fleetclt` command: the only package that parses arguments, prints or handles signals."""
