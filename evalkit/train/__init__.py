"""The training stage (TRL + peft + bitsandbytes) and the adapter tools."""

from evalkit.train.config import TrainConfig, load_train_config
from evalkit.train.trainer import TrainEvents, TrainResult, train

__all__ = ["TrainConfig", "TrainEvents", "TrainResult", "load_train_config", "train"]
