"""Evaluation: metrics (pure functions), plots and the run report."""
