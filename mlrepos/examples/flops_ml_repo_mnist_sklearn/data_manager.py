"""This learner's digits, as flat 784-value rows: the first 80% to train, the rest to evaluate."""

from flops_utils.ml_repo_building_blocks import load_dataset
from flops_utils.ml_repo_templates import DataManagerTemplate

TRAIN_SHARE = 0.8


class DataManager(DataManagerTemplate):
    def __init__(self):
        self.train, self.test = self._prepare_data()

    def _prepare_data(self):
        dataset = load_dataset()
        dataset.set_format("numpy")
        features = dataset["image"].reshape(len(dataset), -1)
        labels = dataset["label"]
        cut = int(len(dataset) * TRAIN_SHARE)
        return (features[:cut], labels[:cut]), (features[cut:], labels[cut:])

    def get_data(self):
        return self.train, self.test
