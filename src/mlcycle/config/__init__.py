"""Configuration: typed dataclasses composed by Hydra, and the project's paths.

Import from the submodules: :mod:`mlcycle.config.structured` (the dataclasses, needs
omegaconf), :mod:`mlcycle.config.project` (paths, standard library only) and
:mod:`mlcycle.config.hydra_app`. This package imports nothing itself, so finding the
project root stays cheap for the serving commands.
"""
