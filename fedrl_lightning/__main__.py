"""Entry point for ``python -m fedrl_lightning``."""

from fedrl_lightning.cli import main

raise SystemExit(main())
