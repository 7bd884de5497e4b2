"""Training stage: optimizers, schedules, the loop, distributed plumbing and checkpoints."""
