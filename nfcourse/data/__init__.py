"""Data with known densities: 2-D data sets, the energies U1-U4, and grids for quadrature.

Data and energies never import pictures or the course (docs/architecture.md).
"""

from . import datasets, energies, grid

__all__ = ["datasets", "energies", "grid"]
