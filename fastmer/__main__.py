"""``python -m fastmer``: the same as the ``fastmer`` command."""

from fastmer.cli import main

if __name__ == "__main__":
    main()
