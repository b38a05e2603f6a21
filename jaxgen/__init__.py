"""jaxgen: text-to-image and text-to-video diffusion in JAX."""

__version__ = "0.1.0"
