"""The gRPC servicer: validate, call the service, build the response. Nothing else.

Its methods take decoded requests; ``server/edge.py`` registers them on raw bytes, decodes, and maps
domain errors to status codes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import grpc

from learner import Decision, InvalidInput, ReportStatus
from learner.value import BehaviorEvent
from pricing.v1 import pricing_pb2, pricing_pb2_grpc
from server.service import PricingService
from server.validation import RequestReader
from server.wire import arm_estimates

REWARD_STATUS = {
    ReportStatus.LEARNED: pricing_pb2.RewardResponse.LEARNED,
    ReportStatus.DUPLICATE: pricing_pb2.RewardResponse.DUPLICATE,
    ReportStatus.LATE: pricing_pb2.RewardResponse.LATE,
}


def quote_response(decision: Decision) -> pricing_pb2.QuoteResponse:
    return _answer(pricing_pb2.QuoteResponse, decision)


def batch_response(decisions: list[Decision]) -> pricing_pb2.QuoteBatchResponse:
    page = pricing_pb2.QuoteBatchResponse()
    add = page.quotes.add  # each quote made in place: no message built to be copied in
    for decision in decisions:
        _answer(add, decision)
    return page


def _answer(make: Callable[..., pricing_pb2.QuoteResponse], decision: Decision) -> pricing_pb2.QuoteResponse:
    """The QuoteResponse of ``decision``, made by ``make`` (the class, or a page's ``quotes.add``): its
    nested messages given as dicts, the arms merged in as wire bytes (``server/wire.py``)."""
    seconds, nanos = divmod(int(decision.expires_at * 1e9), 1_000_000_000)  # Timestamp.FromNanoseconds
    personalized = decision.personalized
    response = make(
        quote_id=decision.quote_id, price=decision.price, alpha=decision.alpha, arm=decision.arm,
        user_value=decision.user_value, propensity=decision.propensity, explored=decision.explored,
        model_version=decision.model_version, expires_at={"seconds": seconds, "nanos": nanos},
        currency=decision.currency, product_id=decision.product_id,
        explanation={
            "guardrail_bound": decision.guardrail_bound, "policy": decision.policy,
            "deterministic": decision.deterministic, "value_source": decision.value_source,
            "value_model_version": decision.value_model_version,
            "reference_price": decision.reference_price, "personalized": personalized,
            "price_change": decision.price_change if personalized else 0.0,
            "inputs": [{"name": name, "effect": effect} for name, effect in decision.input_effects],
            "value_factor": decision.value_factor, "spread_limit": decision.spread_limit,
            "spread_bound": decision.spread_bound, "stable_of": decision.stable_of,
            "ignored_context": decision.ignored_context,
            "opportunity_cost": decision.opportunity_cost if decision.stock_units else None,
            "sell_through_target": decision.sell_through_target,
        },
    )
    response.explanation.MergeFromString(arm_estimates(decision.arms))
    return response


class PricingServicer(pricing_pb2_grpc.PricingServiceServicer):
    def __init__(self, service: PricingService, reader: RequestReader) -> None:
        self._service = service
        self._reader = reader

    def Quote(self, request: pricing_pb2.QuoteRequest, context: grpc.ServicerContext
              ) -> pricing_pb2.QuoteResponse:
        (decision,) = self._service.quote([self._reader.quote(request)],
                                          caller_ids=bool(request.quote_id),
                                          time_left=context.time_remaining)
        return quote_response(decision)

    def QuoteBatch(self, request: pricing_pb2.QuoteBatchRequest, context: grpc.ServicerContext
                   ) -> pricing_pb2.QuoteBatchResponse:
        decisions = self._service.quote(self._reader.batch(request), caller_ids=bool(request.request_id),
                                        time_left=context.time_remaining, incumbent_field="incumbent_prices")
        return batch_response(decisions)

    def Reward(self, request: pricing_pb2.RewardRequest, context: grpc.ServicerContext
               ) -> pricing_pb2.RewardResponse:
        result = self._service.reward(self._reader.reward(request), request.purchased,
                                      context.time_remaining)
        return pricing_pb2.RewardResponse(
            quote_id=result.quote_id, learned=result.learned, status=REWARD_STATUS[result.status],
            model_version=result.model_version,
        )

    def Observe(self, request_iterator: Iterable[pricing_pb2.BehaviorEvent | InvalidInput],
                context: grpc.ServicerContext) -> pricing_pb2.ObserveResponse:
        result = self._service.observe(_read_events(self._reader, request_iterator), context.time_remaining)
        users = self._service.pricer.users
        return pricing_pb2.ObserveResponse(
            accepted=result.accepted, rejected=result.rejected,
            rejections=[pricing_pb2.ObserveResponse.Rejection(index=index, reason=reason)
                        for index, reason in result.rejections],
            value_model_version="" if users is None else users.model.version,
        )


def _read_events(reader: RequestReader, messages: Iterable[pricing_pb2.BehaviorEvent | InvalidInput]
                 ) -> Iterator[BehaviorEvent | InvalidInput]:
    """Each event read, or why it cannot be (undecodable bytes arrive as their InvalidInput)."""
    for message in messages:
        if isinstance(message, InvalidInput):
            yield message
            continue
        try:
            yield reader.event(message, "")
        except InvalidInput as error:
            yield error
