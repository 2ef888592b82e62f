"""`python -m newsletter`: the command line (as the `newsletter` script)."""

from .cli import main

main()
