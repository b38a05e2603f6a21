"""jaxgen.eval."""
