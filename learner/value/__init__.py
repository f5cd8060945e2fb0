"""The user value model: an LSTM over a shopper's behavior that gives ``V`` and an embedding.

Trained in Keras (``keras_model``, ``train``; the ``train`` extra), served in numpy (``network``):
nothing imported here imports TensorFlow.
"""

from learner.value.artifact import ModelFileError, ValueModel, load
from learner.value.events import EVENT_TYPES, TRACKED_EVENT_TYPES, BehaviorEvent
from learner.value.network import UserState, ValueNetwork
from learner.value.states import Observation, StateBackend, StateChange, UserStates

__all__ = [
    "EVENT_TYPES", "TRACKED_EVENT_TYPES", "BehaviorEvent", "ModelFileError", "Observation",
    "StateBackend", "StateChange",
    "UserState", "UserStates", "ValueModel", "ValueNetwork", "load",
]
