"""Executors: where a round's local fits run (in this process, or as Ray tasks)."""
