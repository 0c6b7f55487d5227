"""fastbp.cli.report: interleaved timing, medians and the busy-machine note."""

import pytest

from fastbp.cli import report


def test_fits_are_interleaved_and_every_one_is_timed():
    order = []
    contenders = {name: (lambda name=name: name) for name in ("a", "b", "c")}
    times, models = report.time_interleaved(contenders, order.append, repeat=3)
    assert order == ["a", "b", "c"] * 3
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert models == {"a": "a", "b": "b", "c": "c"}


def test_summary_reports_the_median_and_the_range():
    assert report.summary([0.3, 0.1, 0.2]) == "  0.200 s median (0.100-0.300 s, 3 fits)"
    assert report.summary([0.25]) == "  0.250 s (1 fit)"


def test_speed_wording_says_which_is_faster():
    assert report.speed_line("fastbp", [1.0, 1.0, 9.0], "sklearn", [4.0, 4.0, 1.0]) == (
        "fastbp fits 4.0x faster than sklearn (median times)")
    assert report.speed_line("fastbp", [2.0], "sklearn", [1.0]) == (
        "fastbp fits 2.0x slower than sklearn (median times)")


@pytest.mark.parametrize("load, times, words", [
    (0.1, {"a": [1.0, 1.5]}, None),
    (4.0, {"a": [1.0, 1.5]}, "load average 4.0 on 2 cores"),
    (None, {"a": [1.0, 2.5]}, "a's fit times vary 2.5x"),
    (0.1, {"a": [1.0, 2.0]}, None),
])
def test_busy_note(monkeypatch, load, times, words):
    monkeypatch.setattr(report.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(report, "load_average", lambda: load)
    note = report.busy_note(times)
    if words is None:
        assert note is None
    else:
        assert note.startswith("note: the machine looks busy") and words in note
        assert "unreliable" in note


def test_busy_note_reaches_the_printed_report(capsys, monkeypatch):
    from fastbp import __main__ as entry

    monkeypatch.setattr(report, "load_average", lambda: 1e3)
    assert entry.main(["--epochs", "1", "--no-progress", "--repeat", "1"]) == 0
    assert "the machine looks busy (load average 1000.0" in capsys.readouterr().out
