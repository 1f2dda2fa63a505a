"""The `dfp` command line: top-level verbs call the gateway; `detector` and `models` work offline."""
