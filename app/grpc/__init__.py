"""The gRPC transport: ``lightbox.v1.Lightbox`` (lightbox.proto), health and reflection."""
