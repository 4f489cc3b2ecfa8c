"""Training: the collective, the matrices, the rounds and their checkpoints."""
