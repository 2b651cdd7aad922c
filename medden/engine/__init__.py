"""The training engine: MONAI's ``SupervisedTrainer`` and ``SupervisedEvaluator`` plus handlers, one for
every registered net (see :mod:`medden.engine.trainer`)."""

from medden.engine.trainer import TrainConfig, TrainResult, build_data, build_net, evaluate_items, train

__all__ = ["TrainConfig", "TrainResult", "build_data", "build_net", "evaluate_items", "train"]
