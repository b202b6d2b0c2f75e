"""Using a trained policy.

Loading it, evaluating it on agents, exporting it and recording videos.
"""
