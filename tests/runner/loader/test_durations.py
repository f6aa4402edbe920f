from __future__ import annotations

import pytest

from flowlib_api.times import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10.0),
        ("1m30s", 90.0),
        ("2h", 7200.0),
        ("1h1m1s", 3661.0),
        ("1.5s", 1.5),
        ("0", 0.0),
        ("2", 2.0),
        (3, 3.0),
        (0.25, 0.25),
        (" 5s ", 5.0),
    ],
)
def test_accepted_spellings(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "bad", ["", "ten seconds", "5 sec", "-1s", "1d", "s", -2, True, None, [1], "nan", float("inf")]
)
def test_rejected_spellings_say_how_to_write_one(bad: object) -> None:
    with pytest.raises(ValueError, match="500ms, 10s, 1m30s"):
        parse_duration(bad)


@pytest.mark.parametrize("seconds", [0.0, 0.5, 1.0, 90.0, 0.001])
def test_format_round_trips(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)
