"""The gateway: the platform's one public gRPC API (media, detection, jobs)."""
