"""A multinomial logistic regression over 28x28 digit images (784 features, classes 0-9).

Each fit is one local epoch (max_iter=1) that continues from the current parameters
(warm_start), so federated rounds keep improving one model.
"""

import warnings

import numpy as np
from flops_utils.ml_repo_templates import ModelManagerTemplate
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from data_manager import DataManager

CLASSES = np.arange(10)
FEATURES = 28 * 28


class ModelManager(ModelManagerTemplate):
    def __init__(self):
        self.model = LogisticRegression(max_iter=1, warm_start=True)
        # A fit with warm_start starts from these; they are also the aggregator's first
        # global parameters, before any learner has fitted.
        self.model.classes_ = CLASSES
        self.model.coef_ = np.zeros((len(CLASSES), FEATURES))
        self.model.intercept_ = np.zeros(len(CLASSES))

    def set_model_data(self):
        (self.x_train, self.y_train), (self.x_test, self.y_test) = DataManager().get_data()

    def get_model(self):
        return self.model

    def get_model_parameters(self):
        return [self.model.coef_, self.model.intercept_]

    def set_model_parameters(self, parameters):
        self.model.coef_ = parameters[0]
        self.model.intercept_ = parameters[1]

    def fit_model(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # one iteration never converges; that is intended
            self.model.fit(self.x_train, self.y_train)
        return len(self.x_train)

    def evaluate_model(self):
        probabilities = self.model.predict_proba(self.x_test)
        loss = log_loss(self.y_test, probabilities, labels=CLASSES)
        accuracy = self.model.score(self.x_test, self.y_test)
        return loss, accuracy, len(self.x_test)
