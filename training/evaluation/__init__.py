"""Evaluation: the validation report, summed across hosts, and its files."""
