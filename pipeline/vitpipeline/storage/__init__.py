"""Where a run's bytes live: the S3/local store, the prefix layout, checkpoints, models, progress, logs."""
