"""exo2ego_model: the Exo2Ego model and its progressive training (initialisation + three stages) on the shards
the pipeline builds, with DDP / FSDP2 parallelism, sharded checkpoints and an inference API (docs/training.md)."""
