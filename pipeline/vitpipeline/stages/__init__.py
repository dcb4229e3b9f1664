"""The run's stages, one module each: ingest, prepare, train, infer, commit."""
