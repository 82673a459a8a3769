"""The learner service: fits and evaluates the user's model on its own data."""
