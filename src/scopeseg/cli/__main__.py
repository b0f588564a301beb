"""``python -m scopeseg.cli``."""

from . import run

if __name__ == "__main__":
    run()
