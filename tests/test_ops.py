"""The ops kit in ``ops/`` against the real thing: promtool on the rules, a real Prometheus scraping a
real server, and every metric the dashboard and the alerts name checked against ``/metrics``."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from bench.process import free_port
from builders import quote_request
from conftest import DEADLINE, ServerHandle, scrape

OPS = Path(__file__).resolve().parent.parent / "ops"
DASHBOARD = OPS / "grafana" / "pricebandit.json"
RULES = OPS / "prometheus" / "alerts.yml"
RULE_TESTS = OPS / "prometheus" / "alerts_test.yml"
SCRAPE_CONFIG = OPS / "prometheus" / "prometheus.yml"
# What a Grafana variable stands for when the dashboard's queries are run by hand.
VARIABLES = {"$__rate_interval": "1m", "$job": "pricebandit", "$instance": ".+"}
# Labels Prometheus attaches itself, and series it makes rather than scrapes.
TARGET_LABELS = {"job", "instance"}
PROMETHEUS_SERIES = {"up"}
SELECTOR = re.compile(r"\b([a-zA-Z_][a-zA-Z0-9_]*)\{([^{}]*)\}")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
LABEL_VALUES = re.compile(r"^label_values\((.+), \w+\)$")
METRIC_NAME = re.compile(r"\b((?:pricebandit|process|python)_[a-zA-Z0-9_]+)\b")


def tool(name: str) -> str:
    """The path of a Prometheus binary; CI installs Debian's ``prometheus`` package, so there it
    must be present, elsewhere the test is skipped with the reason."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed; .ci/run installs Debian's prometheus package")
        pytest.skip(f"{name} not installed (apt-get install prometheus; .ci/run does)")
    return path


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    variables = [variable["query"]["query"] for variable in dashboard["templating"]["list"]
                 if isinstance(variable.get("query"), dict)]
    # Grafana's label_values(selector, label) lists the label's values of the series selected
    return queries + [LABEL_VALUES.sub(r"\1", query) for query in variables]


def substitute(query: str) -> str:
    for name, value in VARIABLES.items():
        query = query.replace(name, value)
    return query


def exported(handle: ServerHandle) -> dict[str, list[dict[str, str]]]:
    """Every sample name on the server's /metrics, with the label sets it has."""
    samples: dict[str, list[dict[str, str]]] = {}
    for sample in scrape(handle):
        samples.setdefault(sample.name, []).append(sample.labels)
    return samples


def unknown_references(text: str, samples: dict[str, list[dict[str, str]]]) -> list[str]:
    """Metric names, and label values selected with = or a plain =~ alternation, in ``text`` that
    the server does not export."""
    problems = [f"metric {name}" for name in METRIC_NAME.findall(text) if name not in samples]
    for name, matchers in SELECTOR.findall(text):
        if name in PROMETHEUS_SERIES or name not in samples:
            continue
        for label, operator, value in MATCHER.findall(matchers):
            if label in TARGET_LABELS or "$" in value or operator.startswith("!"):
                continue
            if operator == "=~" and not re.fullmatch(r"[\w|]+", value):
                continue
            for wanted in value.split("|"):
                if not any(labels.get(label) == wanted for labels in samples[name]):
                    problems.append(f'{name}{{{label}="{wanted}"}}')
    return problems


# -- the files themselves --------------------------------------------------------------------------

def test_alert_rules_and_scrape_config_pass_promtool() -> None:
    promtool = tool("promtool")
    for command in (["check", "rules", str(RULES)], ["check", "config", str(SCRAPE_CONFIG)],
                    ["test", "rules", str(RULE_TESTS)]):
        result = subprocess.run([promtool, *command], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"promtool {' '.join(command)}:\n{result.stdout}{result.stderr}"


def test_every_alert_has_a_rule_test() -> None:
    alerts = set(re.findall(r"^\s*- alert: (\w+)$", RULES.read_text(), re.MULTILINE))
    tested = set(re.findall(r"^\s*alertname: (\w+)$", RULE_TESTS.read_text(), re.MULTILINE))
    assert alerts and alerts == tested


def test_dashboard_panels_are_laid_out_and_described() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells
        if panel["type"] != "row":
            assert panel["description"] and panel["targets"], panel["title"]
            assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])


def test_every_metric_the_dashboard_and_alerts_name_is_exported(pricing: ServerHandle) -> None:
    samples = exported(pricing)
    assert unknown_references("\n".join(dashboard_queries()), samples) == []
    assert unknown_references(RULES.read_text(), samples) == []
    assert unknown_references(RULE_TESTS.read_text(), samples) == []
    # The check itself catches a misspelt metric and an unexported label value.
    assert unknown_references('rate(pricebandit_quote_total[5m]) + pricebandit_rpc_requests_total'
                              '{method="quote",code=~"OK|NOPE"}', samples) == [
        "metric pricebandit_quote_total", 'pricebandit_rpc_requests_total{method="quote"}',
        'pricebandit_rpc_requests_total{code="NOPE"}']


def test_process_and_build_metrics_are_exported(pricing: ServerHandle) -> None:
    samples = exported(pricing)
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                 "python_info", "pricebandit_build_info"):
        assert name in samples, name


def test_conversion_ratio_is_no_data_until_an_outcome_is_learned(pricing: ServerHandle) -> None:
    def ratio() -> float:
        return next(s.value for s in scrape(pricing) if s.name == "pricebandit_conversion_ratio")

    assert math.isnan(ratio())
    pricing.reward(pricing.quote().quote_id, purchased=True)
    assert ratio() == 1.0


def test_an_unknown_method_creates_no_label_value(pricing: ServerHandle) -> None:
    assert pricing.channel is not None
    call = pricing.channel.unary_unary("/pricing.v1.PricingService/Nope")
    with pytest.raises(grpc.RpcError) as raised:
        call(b"", timeout=DEADLINE)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    methods = {labels["method"] for labels in exported(pricing)["pricebandit_rpc_requests_total"]}
    assert methods == {"Quote", "QuoteBatch", "Reward", "Observe"}


# -- a real Prometheus -----------------------------------------------------------------------------

class Prometheus:
    """A Prometheus server on loopback scraping one target every second, with the shipped rules."""

    def __init__(self, folder: Path, target: str) -> None:
        self.port = free_port()
        self.log_path = folder / "prometheus.log"
        config = folder / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "pricebandit", "static_configs": [{"targets": [target]}]}],
        }))
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [tool("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={folder / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )

    def get(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=DEADLINE) as response:
                return json.loads(response.read()) if path.startswith("/api/") else response.read()
        except urllib.error.HTTPError as error:  # e.g. 400 for a PromQL syntax error
            raise AssertionError(f"{url}: {error.code} {error.read().decode()}") from None

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.get("/api/v1/query", query=expr)
        assert answer["status"] == "success", (expr, answer)
        return list(answer["data"]["result"])

    def ready(self) -> bool:
        """Whether Prometheus serves queries (503 while it starts up)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=DEADLINE):
                return True
        except urllib.error.HTTPError as error:
            if error.code == 503:
                return False
            raise

    def value(self, expr: str) -> float | None:
        """The single value of ``expr`` now, or None while it has no result."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if len(result) == 1 else None

    def wait_until(self, what: str, condition: Callable[[], bool], seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                if condition():
                    return
            except urllib.error.URLError:  # not listening yet
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"Prometheus: {what} not seen within {seconds:.0f} s; its log:\n"
                                     + self.log_path.read_text()[-3000:])
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def prometheus(pricing: ServerHandle, tmp_path: Path) -> Iterator[Prometheus]:
    server = Prometheus(tmp_path, f"127.0.0.1:{pricing.server.metrics_port}")
    try:
        server.wait_until("readiness", server.ready)
        yield server
    finally:
        server.stop()
    assert server.process.returncode == 0, server.log_path.read_text()[-3000:]


def test_prometheus_scrapes_the_server_and_evaluates_the_dashboard_and_alerts(
    pricing: ServerHandle, prometheus: Prometheus
) -> None:
    # a first scrape before the traffic, so that rate() sees the counters rise
    prometheus.wait_until("a first scrape", lambda: prometheus.value(
        'sum(pricebandit_quotes_total{job="pricebandit"})') == 0.0)
    quotes = [pricing.quote(user_id=f"user-{i}") for i in range(20)]
    bought = quotes[:5]
    for quote in bought:
        pricing.reward(quote.quote_id, purchased=True)
    for quote in quotes[5:10]:
        pricing.reward(quote.quote_id, purchased=False)
    with pytest.raises(grpc.RpcError):
        pricing.stub.Quote(quote_request(user_id=""), timeout=DEADLINE)
    revenue = sum(quote.price for quote in bought)

    expected = {
        'up{job="pricebandit"}': 1.0,
        'sum(pricebandit_quotes_total{job="pricebandit"})': 20.0,
        'pricebandit_rpc_requests_total{method="Quote",code="INVALID_ARGUMENT"}': 1.0,
        'pricebandit_rewards_total{outcome="purchased",status="learned"}': 5.0,
        "pricebandit_model_version": 10.0,
        "pricebandit_pending_quotes": 10.0,
        "pricebandit_conversion_ratio": 0.5,
        'count(pricebandit_build_info{policy="linucb"})': 1.0,
    }
    prometheus.wait_until("the traffic", lambda: all(
        prometheus.value(expr) == value for expr, value in expected.items()))
    assert prometheus.value("pricebandit_revenue_total") == pytest.approx(revenue)
    assert prometheus.value("process_resident_memory_bytes") > 10e6  # type: ignore[operator]
    # rate() needs two scrapes after the traffic inside the window
    prometheus.wait_until("a quote rate", lambda: (
        prometheus.value(substitute(dashboard_queries()[0])) or 0.0) > 0.0)

    empty = []
    for query in dashboard_queries():
        if not prometheus.query(substitute(query)):  # a PromQL error fails inside query()
            empty.append(query)
    # only panels that show nothing while nothing is wrong may be empty
    assert all("> 0" in query for query in empty), empty

    def rules() -> list[dict[str, Any]]:
        groups = prometheus.get("/api/v1/rules")["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]

    never = "0001-01-01T00:00:00Z"  # Go's zero time: not evaluated yet
    prometheus.wait_until("the alert rules evaluated", lambda: all(
        rule["lastEvaluation"] != never for rule in rules()))
    evaluated = rules()
    assert len(evaluated) == RULES.read_text().count("- alert: ")  # every rule loaded
    assert [(rule["name"], rule["lastError"]) for rule in evaluated if rule["health"] != "ok"] == []
    firing = [rule["name"] for rule in evaluated for alert in rule["alerts"] if alert["state"] == "firing"]
    assert firing == []
