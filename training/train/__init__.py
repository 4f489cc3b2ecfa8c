"""Training: the matrices and their memory budget, the checks before boosting, the rounds and their
checkpoints, and the final model's evaluation on every host's validation rows."""
