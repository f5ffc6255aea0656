"""``python -m hvintegration``: the command line."""

from hvintegration.cli import main

if __name__ == "__main__":
    main()
