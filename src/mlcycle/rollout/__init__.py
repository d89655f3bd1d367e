"""Safe rollouts: shadow, blue/green and canary, with automated analysis and rollback."""
