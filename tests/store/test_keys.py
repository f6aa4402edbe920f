"""Blob names as ConfigMap keys: every valid name has a valid key, and the key gives the name back."""

from __future__ import annotations

import re

from flowlib_runner.store import check_name
from flowlib_runner.store.chunks import decode_key, encode_key
from hypothesis import given
from hypothesis import strategies as st

CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def _valid(text: str) -> bool:
    try:
        check_name(text)
    except ValueError:
        return False
    return True


def _valid_configmap_key(key: str) -> bool:
    return bool(CONFIGMAP_KEY.match(key)) and len(key) <= 253 and key not in (".", "..") and not key.startswith("..")


segments = st.text(st.sampled_from("ab_.-Z9"), min_size=1, max_size=40)
names = st.lists(segments, min_size=1, max_size=8).map("/".join).filter(_valid)  # what check_name accepts


@given(names)
def test_every_name_has_a_valid_key_that_gives_it_back(name: str) -> None:
    key = encode_key(name)
    assert _valid_configmap_key(key), key
    assert decode_key(key) == name


def test_examples() -> None:
    assert encode_key("checkpoint/meta") == "checkpoint__meta"
    assert encode_key("a_b/c") == "a_-b__c"
    assert encode_key("..x/y") == "_..x__y"
    assert encode_key(".hidden") == "_.hidden"


def test_keys_that_are_not_ours_decode_to_nothing() -> None:
    for key in ("not_ours", "trailing_", "a___", "_.", "a_.b", "__x", "x__"):
        assert decode_key(key) is None, key
