"""``python -m medden`` runs the command line."""

from medden.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
