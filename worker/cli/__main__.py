"""`python -m worker.cli` runs the command line, as the installed `permit-worker` does."""

from worker.cli.main import main

if __name__ == "__main__":
    main()
