"""`python -m app` is `haul`."""

from app.cli.main import main

if __name__ == "__main__":
    main()
