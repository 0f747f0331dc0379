"""``python -m taskmill`` runs the command-line interface."""

from taskmill._cli import main

if __name__ == "__main__":
    main()
