"""Entry point for ``python -m fedrl_lightning``."""

from fedrl_lightning.cli.app import main

raise SystemExit(main())
