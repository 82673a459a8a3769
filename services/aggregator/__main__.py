"""``python -m services.aggregator ACTOR.json``: an aggregator or cluster aggregator process."""

import sys

from services.training.process import main

sys.exit(main("aggregator"))
