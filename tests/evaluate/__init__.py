"""Tests of mlcycle.evaluate (a package, so module names stay unique across test folders)."""
