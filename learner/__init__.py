"""The pricing learner: features, price arms and guardrails, bandit policies, reward bookkeeping.

Plain Python and numpy; nothing here knows about gRPC, the store or the simulator.
"""

from learner.arms import DEFAULT_ALPHAS, PriceGrid
from learner.errors import (
    AlreadyClosed,
    ConflictingReport,
    DataDirInUse,
    InvalidInput,
    LogMoved,
    PricingError,
    QuoteIdTaken,
    SnapshotError,
    StoreCorrupt,
    StoreError,
    StoreFailed,
    Unavailable,
    UnknownQuote,
)
from learner.features import DEFAULT_CONTEXT_FEATURES, FeatureBuilder
from learner.policies import POLICIES, Choice, Policy, make_policy
from learner.pricer import Pricer, PricerConfig, build_pricer, fingerprint
from learner.rewards import ReportStatus, RewardWindow, Settlement, judge_repeat, reward_of
from learner.types import MODES, ONLINE, SHADOW, ArmView, Decision, Product, QuoteRequest

__all__ = [
    "DEFAULT_ALPHAS", "DEFAULT_CONTEXT_FEATURES", "MODES", "ONLINE", "POLICIES", "SHADOW", "AlreadyClosed",
    "ArmView", "Choice", "ConflictingReport", "DataDirInUse", "Decision", "FeatureBuilder", "InvalidInput",
    "LogMoved", "Policy", "PriceGrid", "Pricer", "PricerConfig", "PricingError", "Product", "QuoteIdTaken",
    "QuoteRequest", "ReportStatus", "RewardWindow", "Settlement", "SnapshotError", "StoreCorrupt",
    "StoreError", "StoreFailed", "Unavailable", "UnknownQuote", "build_pricer", "fingerprint", "judge_repeat",
    "make_policy", "reward_of",
]
