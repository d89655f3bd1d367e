"""``python -m mlcycle`` runs the CLI."""

from mlcycle.cli import main

if __name__ == "__main__":
    main()
