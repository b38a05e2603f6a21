"""jaxgen.parallel."""
