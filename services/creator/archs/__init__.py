"""Creator networks in plain PyTorch: no file I/O, no serving, no device choice."""
