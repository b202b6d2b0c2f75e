"""The population of agents.

Whose environment is what, tasks, heterogeneity, Byzantine agents, and the shipped environments.
"""
