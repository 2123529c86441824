"""`python -m grokwatch` runs the CLI."""

from grokwatch.cli import main

main()
