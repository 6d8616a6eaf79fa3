"""Data with known densities: 2-D data sets, Gaussian mixtures in D dimensions, the energies
U1-U4, a small Bayesian posterior, the 8x8 digits, and grids for quadrature; conditional
densities and a simulator with an exact posterior (simulators).

Data and energies never import pictures or the course (docs/architecture.md).
"""

from . import datasets, digits, energies, grid, mixtures, posteriors, simulators

__all__ = ["datasets", "digits", "energies", "grid", "mixtures", "posteriors", "simulators"]
