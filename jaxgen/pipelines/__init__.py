"""jaxgen.pipelines."""
