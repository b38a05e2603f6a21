"""jaxgen.data: the built-in Moving Digits dataset, its loader and tokenizer."""
