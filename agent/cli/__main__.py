"""``python -m agent.cli.main``: the command from a source tree, without installing it."""

import sys

from agent.cli.main import main

sys.exit(main())
