"""The run's record: MLflow (runs, datasets, the logged model) and the recorder protocol."""
