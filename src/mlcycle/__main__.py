"""``python -m mlcycle`` runs the CLI."""

from mlcycle.cli import main

main()
