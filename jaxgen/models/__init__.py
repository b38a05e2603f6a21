"""jaxgen.models."""
