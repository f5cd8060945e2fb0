import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GateRequest(_message.Message):
    __slots__ = ("candidate", "online", "last_n", "requested_by")
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    LAST_N_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    candidate: str
    online: bool
    last_n: int
    requested_by: str
    def __init__(self, candidate: _Optional[str] = ..., online: _Optional[bool] = ..., last_n: _Optional[int] = ..., requested_by: _Optional[str] = ...) -> None: ...

class ProfitEstimate(_message.Message):
    __slots__ = ("value", "low", "high")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    value: float
    low: float
    high: float
    def __init__(self, value: _Optional[float] = ..., low: _Optional[float] = ..., high: _Optional[float] = ...) -> None: ...

class GateResponse(_message.Message):
    __slots__ = ("result", "reason", "running", "candidate", "logged", "decisions", "effective_sample_size", "could_not_take", "model_version", "mode", "configuration")
    class Result(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        RESULT_UNSPECIFIED: _ClassVar[GateResponse.Result]
        EVALUATED: _ClassVar[GateResponse.Result]
        ACCEPTED: _ClassVar[GateResponse.Result]
        REFUSED: _ClassVar[GateResponse.Result]
    RESULT_UNSPECIFIED: GateResponse.Result
    EVALUATED: GateResponse.Result
    ACCEPTED: GateResponse.Result
    REFUSED: GateResponse.Result
    RESULT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    LOGGED_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_SAMPLE_SIZE_FIELD_NUMBER: _ClassVar[int]
    COULD_NOT_TAKE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    CONFIGURATION_FIELD_NUMBER: _ClassVar[int]
    result: GateResponse.Result
    reason: str
    running: ProfitEstimate
    candidate: ProfitEstimate
    logged: ProfitEstimate
    decisions: int
    effective_sample_size: float
    could_not_take: float
    model_version: str
    mode: str
    configuration: str
    def __init__(self, result: _Optional[_Union[GateResponse.Result, str]] = ..., reason: _Optional[str] = ..., running: _Optional[_Union[ProfitEstimate, _Mapping]] = ..., candidate: _Optional[_Union[ProfitEstimate, _Mapping]] = ..., logged: _Optional[_Union[ProfitEstimate, _Mapping]] = ..., decisions: _Optional[int] = ..., effective_sample_size: _Optional[float] = ..., could_not_take: _Optional[float] = ..., model_version: _Optional[str] = ..., mode: _Optional[str] = ..., configuration: _Optional[str] = ...) -> None: ...

class Product(_message.Message):
    __slots__ = ("product_id", "category", "unit_cost", "list_price", "floor_price", "ceiling_price", "currency", "stock")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    UNIT_COST_FIELD_NUMBER: _ClassVar[int]
    LIST_PRICE_FIELD_NUMBER: _ClassVar[int]
    FLOOR_PRICE_FIELD_NUMBER: _ClassVar[int]
    CEILING_PRICE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    STOCK_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    category: str
    unit_cost: float
    list_price: float
    floor_price: float
    ceiling_price: float
    currency: str
    stock: Stock
    def __init__(self, product_id: _Optional[str] = ..., category: _Optional[str] = ..., unit_cost: _Optional[float] = ..., list_price: _Optional[float] = ..., floor_price: _Optional[float] = ..., ceiling_price: _Optional[float] = ..., currency: _Optional[str] = ..., stock: _Optional[_Union[Stock, _Mapping]] = ...) -> None: ...

class Stock(_message.Message):
    __slots__ = ("units", "sell_by", "salvage")
    UNITS_FIELD_NUMBER: _ClassVar[int]
    SELL_BY_FIELD_NUMBER: _ClassVar[int]
    SALVAGE_FIELD_NUMBER: _ClassVar[int]
    units: int
    sell_by: _timestamp_pb2.Timestamp
    salvage: float
    def __init__(self, units: _Optional[int] = ..., sell_by: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., salvage: _Optional[float] = ...) -> None: ...

class QuoteRequest(_message.Message):
    __slots__ = ("user_id", "product", "context", "quote_id", "recent_events", "spread_limit", "incumbent_price")
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    QUOTE_ID_FIELD_NUMBER: _ClassVar[int]
    RECENT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    SPREAD_LIMIT_FIELD_NUMBER: _ClassVar[int]
    INCUMBENT_PRICE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    product: Product
    context: _containers.ScalarMap[str, float]
    quote_id: str
    recent_events: _containers.RepeatedCompositeFieldContainer[BehaviorEvent]
    spread_limit: float
    incumbent_price: float
    def __init__(self, user_id: _Optional[str] = ..., product: _Optional[_Union[Product, _Mapping]] = ..., context: _Optional[_Mapping[str, float]] = ..., quote_id: _Optional[str] = ..., recent_events: _Optional[_Iterable[_Union[BehaviorEvent, _Mapping]]] = ..., spread_limit: _Optional[float] = ..., incumbent_price: _Optional[float] = ...) -> None: ...

class BehaviorEvent(_message.Message):
    __slots__ = ("user_id", "timestamp", "event_type", "product_id", "category", "price", "unit_cost", "dwell_seconds", "rating", "purchased", "list_price")
    class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        EVENT_TYPE_UNSPECIFIED: _ClassVar[BehaviorEvent.EventType]
        VIEW: _ClassVar[BehaviorEvent.EventType]
        ADD_TO_CART: _ClassVar[BehaviorEvent.EventType]
        PURCHASE: _ClassVar[BehaviorEvent.EventType]
        REVIEW: _ClassVar[BehaviorEvent.EventType]
    EVENT_TYPE_UNSPECIFIED: BehaviorEvent.EventType
    VIEW: BehaviorEvent.EventType
    ADD_TO_CART: BehaviorEvent.EventType
    PURCHASE: BehaviorEvent.EventType
    REVIEW: BehaviorEvent.EventType
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    UNIT_COST_FIELD_NUMBER: _ClassVar[int]
    DWELL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    PURCHASED_FIELD_NUMBER: _ClassVar[int]
    LIST_PRICE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    timestamp: _timestamp_pb2.Timestamp
    event_type: BehaviorEvent.EventType
    product_id: str
    category: str
    price: float
    unit_cost: float
    dwell_seconds: float
    rating: float
    purchased: bool
    list_price: float
    def __init__(self, user_id: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., event_type: _Optional[_Union[BehaviorEvent.EventType, str]] = ..., product_id: _Optional[str] = ..., category: _Optional[str] = ..., price: _Optional[float] = ..., unit_cost: _Optional[float] = ..., dwell_seconds: _Optional[float] = ..., rating: _Optional[float] = ..., purchased: _Optional[bool] = ..., list_price: _Optional[float] = ...) -> None: ...

class ObserveResponse(_message.Message):
    __slots__ = ("accepted", "rejected", "rejections", "value_model_version")
    class Rejection(_message.Message):
        __slots__ = ("index", "reason")
        INDEX_FIELD_NUMBER: _ClassVar[int]
        REASON_FIELD_NUMBER: _ClassVar[int]
        index: int
        reason: str
        def __init__(self, index: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    VALUE_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    rejected: int
    rejections: _containers.RepeatedCompositeFieldContainer[ObserveResponse.Rejection]
    value_model_version: str
    def __init__(self, accepted: _Optional[int] = ..., rejected: _Optional[int] = ..., rejections: _Optional[_Iterable[_Union[ObserveResponse.Rejection, _Mapping]]] = ..., value_model_version: _Optional[str] = ...) -> None: ...

class ArmEstimate(_message.Message):
    __slots__ = ("arm", "alpha", "price", "allowed", "purchase_probability", "expected_profit", "probability")
    ARM_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_PROFIT_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    arm: int
    alpha: float
    price: float
    allowed: bool
    purchase_probability: float
    expected_profit: float
    probability: float
    def __init__(self, arm: _Optional[int] = ..., alpha: _Optional[float] = ..., price: _Optional[float] = ..., allowed: _Optional[bool] = ..., purchase_probability: _Optional[float] = ..., expected_profit: _Optional[float] = ..., probability: _Optional[float] = ...) -> None: ...

class Explanation(_message.Message):
    __slots__ = ("arms", "guardrail_bound", "policy", "deterministic", "value_source", "value_model_version", "reference_price", "personalized", "price_change", "inputs", "value_factor", "spread_limit", "spread_bound", "stable_of", "ignored_context", "opportunity_cost", "sell_through_target")
    ARMS_FIELD_NUMBER: _ClassVar[int]
    GUARDRAIL_BOUND_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    DETERMINISTIC_FIELD_NUMBER: _ClassVar[int]
    VALUE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    VALUE_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_PRICE_FIELD_NUMBER: _ClassVar[int]
    PERSONALIZED_FIELD_NUMBER: _ClassVar[int]
    PRICE_CHANGE_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FACTOR_FIELD_NUMBER: _ClassVar[int]
    SPREAD_LIMIT_FIELD_NUMBER: _ClassVar[int]
    SPREAD_BOUND_FIELD_NUMBER: _ClassVar[int]
    STABLE_OF_FIELD_NUMBER: _ClassVar[int]
    IGNORED_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    OPPORTUNITY_COST_FIELD_NUMBER: _ClassVar[int]
    SELL_THROUGH_TARGET_FIELD_NUMBER: _ClassVar[int]
    arms: _containers.RepeatedCompositeFieldContainer[ArmEstimate]
    guardrail_bound: bool
    policy: str
    deterministic: bool
    value_source: str
    value_model_version: str
    reference_price: float
    personalized: bool
    price_change: float
    inputs: _containers.RepeatedCompositeFieldContainer[InputEffect]
    value_factor: float
    spread_limit: float
    spread_bound: bool
    stable_of: str
    ignored_context: _containers.RepeatedScalarFieldContainer[str]
    opportunity_cost: float
    sell_through_target: float
    def __init__(self, arms: _Optional[_Iterable[_Union[ArmEstimate, _Mapping]]] = ..., guardrail_bound: _Optional[bool] = ..., policy: _Optional[str] = ..., deterministic: _Optional[bool] = ..., value_source: _Optional[str] = ..., value_model_version: _Optional[str] = ..., reference_price: _Optional[float] = ..., personalized: _Optional[bool] = ..., price_change: _Optional[float] = ..., inputs: _Optional[_Iterable[_Union[InputEffect, _Mapping]]] = ..., value_factor: _Optional[float] = ..., spread_limit: _Optional[float] = ..., spread_bound: _Optional[bool] = ..., stable_of: _Optional[str] = ..., ignored_context: _Optional[_Iterable[str]] = ..., opportunity_cost: _Optional[float] = ..., sell_through_target: _Optional[float] = ...) -> None: ...

class InputEffect(_message.Message):
    __slots__ = ("name", "effect")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EFFECT_FIELD_NUMBER: _ClassVar[int]
    name: str
    effect: float
    def __init__(self, name: _Optional[str] = ..., effect: _Optional[float] = ...) -> None: ...

class QuoteResponse(_message.Message):
    __slots__ = ("quote_id", "price", "alpha", "arm", "user_value", "propensity", "explored", "model_version", "expires_at", "currency", "product_id", "explanation")
    QUOTE_ID_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    USER_VALUE_FIELD_NUMBER: _ClassVar[int]
    PROPENSITY_FIELD_NUMBER: _ClassVar[int]
    EXPLORED_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    quote_id: str
    price: float
    alpha: float
    arm: int
    user_value: float
    propensity: float
    explored: bool
    model_version: str
    expires_at: _timestamp_pb2.Timestamp
    currency: str
    product_id: str
    explanation: Explanation
    def __init__(self, quote_id: _Optional[str] = ..., price: _Optional[float] = ..., alpha: _Optional[float] = ..., arm: _Optional[int] = ..., user_value: _Optional[float] = ..., propensity: _Optional[float] = ..., explored: _Optional[bool] = ..., model_version: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., currency: _Optional[str] = ..., product_id: _Optional[str] = ..., explanation: _Optional[_Union[Explanation, _Mapping]] = ...) -> None: ...

class QuoteBatchRequest(_message.Message):
    __slots__ = ("user_id", "products", "context", "request_id", "spread_limit", "incumbent_prices")
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SPREAD_LIMIT_FIELD_NUMBER: _ClassVar[int]
    INCUMBENT_PRICES_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    products: _containers.RepeatedCompositeFieldContainer[Product]
    context: _containers.ScalarMap[str, float]
    request_id: str
    spread_limit: float
    incumbent_prices: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, user_id: _Optional[str] = ..., products: _Optional[_Iterable[_Union[Product, _Mapping]]] = ..., context: _Optional[_Mapping[str, float]] = ..., request_id: _Optional[str] = ..., spread_limit: _Optional[float] = ..., incumbent_prices: _Optional[_Iterable[float]] = ...) -> None: ...

class QuoteBatchResponse(_message.Message):
    __slots__ = ("quotes",)
    QUOTES_FIELD_NUMBER: _ClassVar[int]
    quotes: _containers.RepeatedCompositeFieldContainer[QuoteResponse]
    def __init__(self, quotes: _Optional[_Iterable[_Union[QuoteResponse, _Mapping]]] = ...) -> None: ...

class RewardRequest(_message.Message):
    __slots__ = ("quote_id", "purchased")
    QUOTE_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASED_FIELD_NUMBER: _ClassVar[int]
    quote_id: str
    purchased: bool
    def __init__(self, quote_id: _Optional[str] = ..., purchased: _Optional[bool] = ...) -> None: ...

class RewardResponse(_message.Message):
    __slots__ = ("quote_id", "learned", "status", "model_version")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[RewardResponse.Status]
        LEARNED: _ClassVar[RewardResponse.Status]
        DUPLICATE: _ClassVar[RewardResponse.Status]
        LATE: _ClassVar[RewardResponse.Status]
    STATUS_UNSPECIFIED: RewardResponse.Status
    LEARNED: RewardResponse.Status
    DUPLICATE: RewardResponse.Status
    LATE: RewardResponse.Status
    QUOTE_ID_FIELD_NUMBER: _ClassVar[int]
    LEARNED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    quote_id: str
    learned: bool
    status: RewardResponse.Status
    model_version: str
    def __init__(self, quote_id: _Optional[str] = ..., learned: _Optional[bool] = ..., status: _Optional[_Union[RewardResponse.Status, str]] = ..., model_version: _Optional[str] = ...) -> None: ...
