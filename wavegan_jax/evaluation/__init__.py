"""Evaluation: metrics and the evaluation report."""
