"""jaxgen.nn."""
