"""`python -m retention`."""

from .cli import main

main()
