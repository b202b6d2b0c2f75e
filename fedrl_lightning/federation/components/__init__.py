"""Round components: what plugs into a round beside the server model (trajectory sharing, ...)."""
