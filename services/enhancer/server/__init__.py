"""The enhancer's gRPC service (dfp.enhancer.v1): object-store files in, enhanced files out."""
