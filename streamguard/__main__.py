"""``python -m streamguard``: the same CLI as the ``streamguard`` entry point."""

from streamguard.cli import main

main()
