"""Monitoring: drift statistics against a bundle's reference profile (more to come).

:mod:`mlcycle.monitor.drift` holds the per-feature drift tests and the dataset-level
verdict; the prediction log, metrics and alarms build on it.
"""
