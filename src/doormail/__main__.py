"""`python -m doormail`: the same as the `doormail` command."""

from doormail.cli import main

main()
