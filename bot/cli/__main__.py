"""`python -m bot.cli …` runs `aiops-bot …`."""

import sys

from bot.cli.main import main

sys.exit(main())
