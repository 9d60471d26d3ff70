"""checks.adapt.paths: attribute paths into a user's layer ("W", "grads[0]", "gradients['W']", "a.b"):
parsed, followed, assigned and tested for existence; a path that cannot be read is named."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from checks.adapt import paths


def layer() -> SimpleNamespace:
    conv = SimpleNamespace(dW=np.full(2, 5.0), params={"w": np.zeros(3)})
    return SimpleNamespace(
        W=np.ones(2),
        grads=[np.full(2, 1.0), np.full(2, 2.0)],
        gradients={"W": np.full(2, 3.0), "b": None, "0": "string key"},
        conv=conv,
        missing=None,
    )


@pytest.mark.parametrize(
    "path, steps",
    [
        ("W", ["W"]),
        ("grads[0]", ["grads", 0]),
        ("grads[-1]", ["grads", -1]),
        ("a.b", ["a", "b"]),
        ("conv.params['w']", ["conv", "params", ("key", "w")]),
        ('gradients["W"]', ["gradients", ("key", "W")]),
        ("layers[2].grad_W", ["layers", 2, "grad_W"]),
    ],
)
def test_a_path_parses_into_attribute_index_and_key_steps(path, steps):
    assert paths.parse(path) == steps


def test_a_quoted_key_stays_a_key_even_when_it_looks_like_an_index():
    assert paths.parse("gradients['0']") == ["gradients", ("key", "0")]


@pytest.mark.parametrize(
    "path, expected",
    [
        ("W", 1.0),
        ("grads[0]", 1.0),
        ("grads[1]", 2.0),
        ("grads[-1]", 2.0),
        ("gradients['W']", 3.0),
        ('gradients["W"]', 3.0),
        ("conv.dW", 5.0),
        ("conv.params['w']", 0.0),
    ],
)
def test_resolve_follows_attributes_indices_and_keys(path, expected):
    assert paths.resolve(layer(), path)[0] == expected


def test_resolve_uses_item_access_for_a_quoted_key_and_getattr_for_a_dotted_name():
    obj = SimpleNamespace(d={"items": "by key"})
    assert paths.resolve(obj, "d['items']") == "by key"
    assert callable(paths.resolve(obj, "d.items"))
    assert paths.resolve(layer(), "gradients['0']") == "string key"


@pytest.mark.parametrize(
    "path, error",
    [("dW", AttributeError), ("grads[5]", IndexError), ("gradients['db']", KeyError), ("conv.db", AttributeError)],
)
def test_resolve_lets_a_missing_step_raise_for_the_caller_to_name(path, error):
    with pytest.raises(error):
        paths.resolve(layer(), path)


@pytest.mark.parametrize("path", ["W", "grads[1]", "gradients['W']", "conv.dW", "conv.params['w']"])
def test_assign_sets_the_value_at_the_path(path):
    obj = layer()
    value = np.array([7.0, 8.0])
    paths.assign(obj, path, value)
    assert paths.resolve(obj, path) is value


def test_assign_creates_a_missing_last_attribute_or_key():
    obj = layer()
    paths.assign(obj, "conv.db", 1.5)
    paths.assign(obj, "gradients['new']", 2.5)
    assert obj.conv.db == 1.5 and obj.gradients["new"] == 2.5


def test_assign_changes_only_the_target():
    obj = layer()
    paths.assign(obj, "grads[0]", "x")
    assert obj.grads[0] == "x" and obj.grads[1][0] == 2.0
    assert obj.W[0] == 1.0


@pytest.mark.parametrize("path", ["W", "grads[0]", "gradients['W']", "conv.dW", "conv.params['w']"])
def test_exists_is_true_for_a_path_holding_a_value(path):
    assert paths.exists(layer(), path)


@pytest.mark.parametrize("path", ["dW", "grads[9]", "gradients['db']", "conv.nothing", "missing", "gradients['b']"])
def test_exists_is_false_for_a_missing_or_none_value(path):
    assert not paths.exists(layer(), path)


def test_exists_is_false_when_a_step_cannot_be_taken_at_all():
    assert not paths.exists(layer(), "W.T.nope")
    assert not paths.exists(SimpleNamespace(x=3), "x[0]")  # an int is not indexable


@pytest.mark.parametrize("path", ["W[", "grads[a]", "a b", "a..b", "1abc", "d['unterminated]", "x-y"])
def test_a_malformed_path_raises_naming_the_path_and_where_reading_stopped(path):
    with pytest.raises(ValueError) as info:
        paths.parse(path)
    message = str(info.value)
    assert repr(path) in message
    assert "cannot read path" in message


@pytest.mark.parametrize("call", [paths.resolve, paths.exists])
def test_a_malformed_path_is_refused_by_every_entry_point(call):
    with pytest.raises(ValueError, match="cannot read path"):
        call(layer(), "grads[")


def test_assign_refuses_a_malformed_path():
    with pytest.raises(ValueError, match="cannot read path"):
        paths.assign(layer(), "W[", 1)
