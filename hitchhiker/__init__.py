"""Hitchhiker: a notebook-driven course in building world models.

The road (see README): masked models -> unified models -> interactive generative models ->
memory-augmented models -> agents living in a learned world. Every stage trains on, is measured
against, and is played inside one procedural world, :mod:`hitchhiker.world`.
"""

__version__ = "0.1.0"
