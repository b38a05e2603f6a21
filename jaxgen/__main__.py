"""`python -m jaxgen` is the `jaxgen` command."""

from jaxgen.cli import main

if __name__ == "__main__":
  raise SystemExit(main())
