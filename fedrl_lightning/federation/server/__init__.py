"""The server's models.

What the server holds between rounds, and how it combines what agents send.
"""
