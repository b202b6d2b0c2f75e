"""A run's files and lifecycle.

Its folder, checkpoints, metrics, loggers, console output and signals.
"""
