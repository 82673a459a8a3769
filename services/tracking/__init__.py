"""Optional MLflow tracking of a project's rounds and model (setting ``mlflow_tracking``)."""
