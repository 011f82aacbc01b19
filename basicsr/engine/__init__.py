"""Training engine: loop, hooks, checkpoints, schedulers, distributed helpers."""
