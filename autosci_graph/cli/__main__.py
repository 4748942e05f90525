"""``python -m autosci_graph.cli``: the same as the ``autosci`` command."""

import sys

from autosci_graph.cli import main

sys.exit(main())
