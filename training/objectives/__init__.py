"""The objectives and what each asks of the labels and metrics."""
