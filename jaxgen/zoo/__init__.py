"""jaxgen.zoo."""
