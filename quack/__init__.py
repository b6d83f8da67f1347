"""Latent features of Censored Planet Quack measurements.

A sequence-to-sequence GRU autoencoder with attention learns a latent vector for each
measurement; the dashboard explores them. Import the submodules you need
(``quack.autoencoder``, ``quack.model.dataset``, ...): importing the package itself stays light.
"""

__version__ = "0.1.0"
