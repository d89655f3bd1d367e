"""mlcycle: a machine-learning model's whole life, from versioned data to retraining."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
