"""jaxgen.train."""
