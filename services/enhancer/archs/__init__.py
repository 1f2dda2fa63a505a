"""Enhancer networks, one file each, with BasicSR's constructor arguments and state-dict names."""
