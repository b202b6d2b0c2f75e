"""The command line.

The LightningCLI for federated runs, its one-line errors, and the subcommands.
"""
