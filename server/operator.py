"""The OperatorService servicer: read the request, call the rollout gate, build the response.

The operator token guards it (``server/auth.py``); ``server/edge.py`` registers it on raw bytes like
the pricing service, so its errors map to status codes the same way.
"""

from __future__ import annotations

import grpc

from evaluation.estimators import Estimate
from learner import InvalidInput
from pricing.v1 import pricing_pb2, pricing_pb2_grpc
from server.gate import GateReport, RolloutGate

RESULTS = {
    "evaluated": pricing_pb2.GateResponse.EVALUATED,
    "accepted": pricing_pb2.GateResponse.ACCEPTED,
    "refused": pricing_pb2.GateResponse.REFUSED,
}
OPERATOR_SERVICE = pricing_pb2.DESCRIPTOR.services_by_name["OperatorService"]


def _estimate(estimate: Estimate | None) -> pricing_pb2.ProfitEstimate | None:
    if estimate is None:
        return None
    return pricing_pb2.ProfitEstimate(value=estimate.value, low=estimate.low, high=estimate.high)


def gate_response(report: GateReport) -> pricing_pb2.GateResponse:
    return pricing_pb2.GateResponse(
        result=RESULTS[report.result], reason=report.reason, running=_estimate(report.running),
        candidate=_estimate(report.candidate), logged=_estimate(report.logged), decisions=report.decisions,
        effective_sample_size=report.effective_sample_size, could_not_take=report.could_not_take,
        model_version=report.model_version, mode=report.mode, configuration=report.configuration)


def _requested_by(request: pricing_pb2.GateRequest) -> str:
    who = request.requested_by.strip()
    if not who or len(who) > 200:
        raise InvalidInput("requested_by", "is required (who asks: a person or a pipeline, at most 200 "
                                           "characters): the gate logs and stores it")
    return who


class OperatorServicer(pricing_pb2_grpc.OperatorServiceServicer):
    def __init__(self, gate: RolloutGate) -> None:
        self._gate = gate

    def Evaluate(self, request: pricing_pb2.GateRequest, context: grpc.ServicerContext
                 ) -> pricing_pb2.GateResponse:
        if request.online:
            raise InvalidInput("online", "is for Switch only (shadow -> online needs no evaluation)")
        return gate_response(self._gate.evaluate(request.candidate, request.last_n, _requested_by(request)))

    def Switch(self, request: pricing_pb2.GateRequest, context: grpc.ServicerContext
               ) -> pricing_pb2.GateResponse:
        who = _requested_by(request)
        if request.online:
            if request.candidate.strip():
                raise InvalidInput("candidate", "must be empty with online (switch the mode, then the "
                                                "configuration, in two calls)")
            return gate_response(self._gate.go_online(who))
        return gate_response(self._gate.switch(request.candidate, request.last_n, who))
