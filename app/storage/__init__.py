"""Where the bytes live. Blobs are keyed by server-made names (see :mod:`app.storage.names`)."""
