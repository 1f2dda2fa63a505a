"""Serving the creator models under TorchServe: the handler, its wire format, and a launcher."""
