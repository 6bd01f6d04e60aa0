"""``python -m algolia_profiles_source.cli``: the ``algolia-profiles`` command."""

from . import main

main()
