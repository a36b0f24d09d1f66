"""The play page's message protocol (freeaction_gym.web.protocol), without a server: bad
JSON, unknown types and keys, wrong types and out-of-range sampler values are refused with
a message naming the problem; good messages parse into their dataclasses, and the flat
sampler controls map onto the env's ``sampling`` option and back."""

from __future__ import annotations

import json

import pytest

from freeaction_gym.diffusion.guidance import ActionCFG
from freeaction_gym.diffusion.truncation import NoiseTruncation
from freeaction_gym.web.protocol import (
    MAX_MESSAGE_CHARS,
    Action,
    Pause,
    ProtocolError,
    Reset,
    Sampling,
    active_sampling,
    parse_message,
    sampling_overrides,
)
from freeaction_gym.world_model.model import SamplingConfig


def msg(**fields) -> str:
    return json.dumps(fields)


@pytest.mark.parametrize(
    "text, words",
    [
        ("{bad", "bad JSON"),
        ("", "bad JSON"),
        (b"\xff\xfe", "bad JSON"),
        ("[1, 2]", "JSON object"),
        ('"action"', "JSON object"),
        (msg(key="w"), "unknown message type None"),
        (msg(type="jump"), "unknown message type 'jump'"),
        (msg(type="action", key="w", speed=2), "unknown key(s) ['speed']"),
        (msg(type="action", key="x"), "key='x'"),
        (msg(type="action"), "key=None"),
        (msg(type="action", key="w", id="7"), "id must be a whole number"),
        (msg(type="action", key="w", id=True), "id must be a whole number"),
        (msg(type="reset", task=3), "task must be a string"),
        (msg(type="reset", bank_index=1.5), "bank_index must be a whole number"),
        (msg(type="reset", bank_index=-1), "must be >= 0"),
        (msg(type="pause", paused="yes"), "paused must be true or false"),
        (msg(type="pause"), "paused must be true or false"),
        (msg(type="sampling"), "no controls given"),
        (msg(type="sampling", steps=4), "unknown key(s) ['steps']"),
        (msg(type="sampling", num_steps=0), "num_steps=0 out of range [1, 100]"),
        (msg(type="sampling", num_steps=1000), "out of range"),
        (msg(type="sampling", num_steps=2.5), "num_steps must be a whole number"),
        (msg(type="sampling", num_steps=True), "num_steps must be a whole number"),
        (msg(type="sampling", lam=-0.1), "lam=-0.1 out of range"),
        (msg(type="sampling", lam="1"), "lam='1' out of range"),
        (msg(type="sampling", lam=None), "lam=None out of range"),
        (msg(type="sampling", cutoff=1.5), "cutoff=1.5 out of range [0.0, 1.0]"),
        (msg(type="sampling", tau_min=0.0), "tau_min=0.0 out of range"),
        (msg(type="sampling", tau_min=1.2, tau_max=0.8), "tau_min=1.2 > tau_max=0.8"),
        (msg(type="sampling", cfg=1), "cfg must be true or false"),
        ('{"type": "sampling", "lam": NaN}', "out of range"),
        ('{"type": "sampling", "lam": Infinity}', "out of range"),
    ],
)
def test_bad_messages_are_refused_with_a_reason(text, words):
    with pytest.raises(ProtocolError) as err:
        parse_message(text)
    assert words in str(err.value)


def test_oversized_messages_are_refused_before_parsing():
    with pytest.raises(ProtocolError, match="at most"):
        parse_message(" " * (MAX_MESSAGE_CHARS + 1))


def test_good_messages_parse():
    assert parse_message(msg(type="action", key="w", id=3)) == Action("w", 3)
    assert parse_message(msg(type="action", key=" ")) == Action(" ", None)
    assert parse_message(msg(type="step")) == Action(" ", None, force=True)
    assert parse_message(msg(type="step", key="g", id=1)) == Action("g", 1, force=True)
    assert parse_message(msg(type="reset")) == Reset()
    assert parse_message(msg(type="reset", task="push-v3", bank_index=2, seed=5)) == Reset(
        "push-v3", 2, 5
    )
    assert parse_message(msg(type="pause", paused=True)) == Pause(True)
    got = parse_message(msg(type="sampling", num_steps=4.0, lam=2, cfg=True))
    assert got == Sampling({"num_steps": 4, "lam": 2.0, "cfg": True})
    assert isinstance(got.values["num_steps"], int) and isinstance(got.values["lam"], float)


def test_sampling_overrides_map_switches_to_modes():
    values = {"num_steps": 3, "cfg": True, "lam": 2.0, "cutoff": 0.25, "truncation": False}
    assert sampling_overrides(values) == {
        "num_steps": 3,
        "guidance": {"mode": "action_scaled", "lam": 2.0, "cutoff": 0.25},
        "truncation": {"mode": "none"},
    }
    assert sampling_overrides({"tau_max": 2.0}) == {"truncation": {"tau_max": 2.0}}
    assert sampling_overrides({"cfg": False}) == {"guidance": {"mode": "none"}}


def test_active_sampling_reads_a_sampling_config():
    cfg = SamplingConfig(
        num_steps=5,
        guidance=ActionCFG(mode="none", lam=1.5, cutoff=0.4),
        truncation=NoiseTruncation(mode="action_scaled", tau_min=0.3, tau_max=1.2),
    )
    got = active_sampling(cfg)
    assert got["num_steps"] == 5 and got["cfg"] is False and got["lam"] == 1.5
    assert got["truncation"] is True and (got["tau_min"], got["tau_max"]) == (0.3, 1.2)
    assert json.loads(json.dumps(got)) == got  # JSON-ready
