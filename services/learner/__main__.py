"""``python -m services.learner ACTOR.json``: a learner process."""

import sys

from services.training.process import main

sys.exit(main("learner"))
