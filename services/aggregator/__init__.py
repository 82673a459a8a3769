"""The aggregator service: FedAvg rounds over the project's training topics."""
