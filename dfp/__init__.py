"""The deepfake platform's shared library: configuration, media I/O, faces, object store, gRPC
helpers, the generated API stubs (dfp.v1), the client and the `dfp` command line."""

__version__ = "0.1.0"
