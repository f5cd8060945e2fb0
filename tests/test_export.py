"""The server's settled quotes exported as a behavior log that pricebandit-train reads, keyed like
the server's users, with a tracker's log joined under the same keys; and its decision log exported
as the DSJSON lines that pricebandit-evaluate and ``vw --dsjson`` read."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from conftest import ServerHandle
from evaluation.logs import read_dsjson
from learner.value.train import read_log


def test_settled_quotes_become_views_at_the_quoted_price(start_server: Callable[..., ServerHandle],
                                                         tmp_path: Path) -> None:
    pricing = start_server()
    bought = pricing.quote(user_id="buyer")
    pricing.reward(bought.quote_id, True)
    refused = pricing.quote(user_id="refuser")
    pricing.reward(refused.quote_id, False)
    pricing.quote(user_id="undecided")  # still open: not an answer yet
    tracker = tmp_path / "tracker.jsonl"
    tracker.write_text(json.dumps({"user_id": "buyer", "timestamp": 1.0, "event_type": "view",
                                   "price": 5.0, "list_price": 6.0}) + "\n")
    out = tmp_path / "quotes.jsonl"
    done = subprocess.run([sys.executable, "-m", "server.export", "--data-dir", str(pricing.config.data_dir),
                           "--out", str(out), "--merge", str(tracker)],
                          capture_output=True, text=True, timeout=60)  # the server keeps running
    assert done.returncode == 0, done.stderr
    events = list(read_log(out))
    answers = {(e.user_id, e.price, e.purchased) for e in events if e.timestamp > 1.0}
    assert answers == {(pricing.pseudonym("buyer"), bought.price, True),
                       (pricing.pseudonym("refuser"), refused.price, False)}
    assert [e.user_id for e in events if e.timestamp == 1.0] == [pricing.pseudonym("buyer")]
    assert "buyer" not in out.read_text()


def test_a_data_dir_without_a_state_file_is_refused(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "server.export", "--data-dir", str(tmp_path),
                           "--out", str(tmp_path / "x.jsonl")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "holds no pricebandit.sqlite3" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_decision_log_is_exported_as_dsjson_beside_a_running_server(
        start_server: Callable[..., ServerHandle], tmp_path: Path) -> None:
    pricing = start_server()
    bought = pricing.quote(user_id="buyer")
    pricing.reward(bought.quote_id, True)
    refused = pricing.quote(user_id="refuser")
    pricing.reward(refused.quote_id, False)
    pricing.reward(bought.quote_id, True)  # a repeat: not a new line
    out = tmp_path / "decisions.dsjson"
    done = subprocess.run([sys.executable, "-m", "server.export_log", "--data-dir",
                           str(pricing.config.data_dir), "--out", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(line["EventId"], line["_label_cost"], line["_price"]) for line in lines] == [
        (bought.quote_id, -1.0, bought.price), (refused.quote_id, -0.0, refused.price)]
    reading = read_dsjson(out)  # what pricebandit-evaluate reads
    assert [d.purchased for d in reading.decisions] == [True, False] and not reading.skipped
    assert "buyer" not in out.read_text()


def test_a_bad_store_for_the_log_export_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "server.export_log", "--store", "redis://x:notaport/0",
                           "--out", str(tmp_path / "x.dsjson")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--store" in done.stderr and "Traceback" not in done.stderr
