"""Generated gRPC stubs of proto/audioembed/v1 (scripts/generate_stubs.py); do not edit."""
