"""`python -m fastbp bench` and its parts: the JSON report of a tiny run, the
FLOP and GEMM-shape bookkeeping, the busy-looping processes (started,
stopped, never orphaned), the reliability verdict and the tables. No timing
assertions (timings are for the benchmarks, not for tests)."""

import contextlib
import io
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from fastbp import BPClassifier, _bench
from fastbp._bench import cases
from fastbp._bench import report as rep
from fastbp._bench.measure import interleaved_fits


def _gone(pid):
    """The process no longer runs (reaped, or a zombie nobody reaps yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _busy_children():
    """Live busy-looping children of this process."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"os.getppid() == parent" in cmd and not _gone(int(d)):
            out.append(int(d))
    return out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = _bench.main(["--tiny", "--backends", "cython,numpy,sklearn", "--busy", "1",
                          "--json", str(out)])
    return rc, buf.getvalue(), json.loads(out.read_text())


def test_bench_cli_tiny_json(tiny_run):
    rc, printed, report = tiny_run
    assert rc == 0
    assert "FLOPs counted per sample as forward 2P" in printed
    assert "threadpoolctl" in printed  # BLAS and threads at the top
    assert printed.index("threadpoolctl") < printed.index("s/epoch")
    for key in ("meta", "gemm", "flop_note", "results", "busy", "predict", "memory",
                "threading", "targets", "reliable", "unreliable_reasons"):
        assert key in report
    assert report["meta"]["mode"] == "tiny"
    for key in ("cpu", "cores", "blas", "date", "numpy", "sklearn", "load_start", "load_end",
                "wall_seconds"):
        assert key in report["meta"]
    assert set(report["gemm"]) == {"float32", "float64"}
    assert report["gemm"]["float32"]["gflops"] > 0
    backends = {r["backend_key"] for r in report["results"]}
    assert {"numpy", "sklearn"} <= backends
    for r in report["results"]:
        for key in ("case", "backend", "batch_size", "s_per_epoch", "samples_per_s",
                    "gflops", "pct_peak", "speedup_vs_sklearn", "speedup_vs_numpy",
                    "floor_s", "x_floor"):
            assert key in r
        assert r["s_per_epoch"] > 0
    assert {r["batch_size"] for r in report["results"]} == {32, 256}
    assert {r["method"] for r in report["predict"]} == {"predict", "predict_proba"}
    assert {r["kind"] for r in report["threading"]} == {"two_fits", "gridsearch"}
    assert report["targets"] and all("met" in t for t in report["targets"])
    assert "Note: FLOPs counted" in printed


def test_bench_reports_gemm_peak_samples_and_best(tiny_run):
    _, _, report = tiny_run
    g = report["gemm"]["float32"]
    # sampled at the start, after each batch size, around the busy phase, at the end
    assert len(g["samples"]) == len(g["where"]) >= 5
    assert g["gflops"] == max(g["samples"])
    best = g["gflops"]
    for r in report["results"]:
        assert r["pct_peak"] == pytest.approx(100 * r["gflops"] / best)


def test_bench_cases_are_divided_by_their_gemm_floor(tiny_run):
    _, _, report = tiny_run
    for r in report["results"] + report["predict"] + report["busy"]:
        floor = r["floor"]
        assert 0 < floor["seconds"] <= min(floor["seconds_threads"], floor["seconds_1t"])
        assert floor["calls"] > 0
        assert r["floor_s"] == floor["seconds"]  # no "-1t" rows in this run
        assert r["x_floor"] == pytest.approx(r["seconds" if r["kind"] == "predict"
                                               else "s_per_epoch"] / r["floor_s"])


def test_bench_busy_rows_pair_each_case_with_its_idle_time(tiny_run):
    rc, printed, report = tiny_run
    busy = report["busy"]
    assert {r["busy_procs"] for r in busy} == {1}
    assert {(r["kind"], r["backend_key"]) for r in busy} == {
        (k, b) for k in ("train", "predict") for b in ("cython", "numpy", "sklearn")}
    idle = {(r["backend_key"], r["batch_size"]): r["s_per_epoch"] for r in report["results"]}
    idle_p = {r["backend_key"]: r["seconds"] for r in report["predict"]
              if r["method"] == "predict"}
    for r in busy:
        want = idle[(r["backend_key"], r["batch_size"])] if r["kind"] == "train" else \
            idle_p[r["backend_key"]]
        assert r["idle_seconds"] == want
        assert r["busy_over_idle"] == pytest.approx(r["seconds"] / want)
        sk = [x for x in busy if x["kind"] == r["kind"] and x["backend_key"] == "sklearn"]
        assert r["speedup_vs_sklearn"] == pytest.approx(sk[0]["seconds"] / r["seconds"])
    assert "busy/idle" in printed and "vs sklearn (busy)" in printed
    assert "1 busy-looping process(es) stopped" in printed
    for pid in (int(p) for line in printed.splitlines() if "busy pids:" in line
                for p in line.split(":", 1)[1].split(",")):
        assert _gone(pid)
    if sys.platform.startswith("linux"):
        assert _busy_children() == []


def test_bench_prices_each_training_control_against_the_defaults(tiny_run):
    _, printed, report = tiny_run
    controls = report["controls"]
    assert [r["control"] for r in controls] == [k for k, _, _ in cases.CONTROLS]
    rounds = _bench.CONFIGS["tiny"]["controls_rounds"]
    base = np.array(controls[0]["samples"])
    defaults = BPClassifier().get_params()
    keys = {k for _, _, params in cases.CONTROLS for k in params}
    for (key, label, params), r in zip(cases.CONTROLS, controls):
        assert r["setting"] == label and r["backend_key"] == "cython"
        if r.get("skipped"):
            # only a setting this build cannot fit, with its reason
            assert r["skipped"] == cases.control_skip_reason(params)
            assert f"{label}: skipped, {r['skipped']}" in printed
            continue
        assert cases.control_skip_reason(params) is None
        # the case ran with its own settings (not silently the defaults')
        want = {**{k: defaults[k] for k in keys}, **params}
        assert r["applied"] == dict(want, solver="adam", batch_size=256, backend="cython")
        assert r["batch_size"] == 256 and r["rounds"] == rounds
        assert len(r["samples"]) == rounds and min(r["samples"]) > 0
        assert r["s_per_epoch"] == pytest.approx(np.median(r["samples"]))
        # paired round by round with the defaults, not with another case
        ratio = np.median(np.array(r["samples"]) / base)
        assert r["overhead_pct"] == pytest.approx(100 * (ratio - 1))
        assert r["target_pct"] == rep.TARGET_CONTROL_OVERHEAD.get(key)
    assert controls[0]["overhead_pct"] == 0
    assert "after training controls" in report["gemm"]["float32"]["where"]
    got = {t["target"]: t["met"] for t in report["targets"] if "over the defaults" in t["target"]}
    measured = [r for r in controls if not r.get("skipped")]
    assert len(got) == sum(r["target_pct"] is not None for r in measured)
    assert all(m is None for m in got.values())  # tiny: never judged
    assert "Training controls" in printed
    assert printed.count("over the defaults") >= len(measured)


def test_interleaved_fits_run_every_case_each_round_in_rotated_order():
    calls = []

    class Est:
        def __init__(self, key):
            self.key = key

        def fit(self, X, y):
            calls.append(self.key)
            return self

    makers = {k: (lambda k=k: Est(k)) for k in "abc"}
    seconds, fitted = interleaved_fits(makers, None, None, rounds=4)
    assert calls == list("abc" "bca" "cab" "abc")
    assert {k: len(v) for k, v in seconds.items()} == {"a": 4, "b": 4, "c": 4}
    assert {k: e.key for k, e in fitted.items()} == {"a": "a", "b": "b", "c": "c"}


def test_bench_prints_load_average_at_start_and_end(tiny_run):
    _, printed, report = tiny_run
    assert printed.index("Load average at start") < printed.index("s/epoch")
    assert printed.index("Load average at end") > printed.index("Targets")
    if hasattr(os, "getloadavg"):
        assert len(report["meta"]["load_start"]) == len(report["meta"]["load_end"]) == 3


def test_bench_fit_memory_is_measured_not_clamped(tiny_run):
    _, _, report = tiny_run
    assert report["memory"]
    for r in report["memory"]:
        # every fit allocates at least its parameters and optimizer state
        assert r["peak_bytes"] > 0
        assert r["fraction_of_X"] == pytest.approx(r["peak_bytes"] / r["x_bytes"])


@pytest.mark.parametrize("bad", ["-1", "x", ",", "2,-3"])
def test_bench_busy_option_rejects_bad_counts(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        _bench.main(["--tiny", "--busy", bad])
    assert exc.value.code == 2
    assert "--busy" in capsys.readouterr().err


def test_bench_help_stands_alone(capsys):
    with pytest.raises(SystemExit):
        _bench.main(["--help"])
    out = capsys.readouterr().out
    assert "--busy" in out and "DESIGN" not in out


# ------------------------------------------------------------ bookkeeping
def test_flop_count():
    # 784-256-10: P = 784*256 + 256*10; first layer gets no delta propagation.
    shapes = _bench.weight_shapes(784, (256,), 10)
    P, P1 = 784 * 256 + 256 * 10, 784 * 256
    assert _bench.train_flops(1, shapes) == 6 * P - 2 * P1
    assert _bench.predict_flops(3, shapes) == 3 * 2 * P
    # maxout k=2 doubles the columns of hidden layers, not the next fan-in
    assert _bench.weight_shapes(5, (4,), 3, "maxout", 2) == [(5, 8), (4, 3)]
    # sparse: the first layer counts the non-zeros
    assert _bench.train_flops(10, [(100, 4), (4, 2)], nnz=30) == 6 * 8 * 10 + 4 * 30 * 4


@pytest.mark.parametrize("n, batch", [(1000, 32), (1024, 256), (100, 1024), (7, 3)])
def test_gemm_floor_runs_the_epochs_products(n, batch):
    shapes = _bench.weight_shapes(20, (16, 8), 3)
    gemms = _bench.train_gemms(n, batch, shapes)
    assert sum(rows * count for rows, count, _ in gemms) == n
    assert _bench.gemm_flops(gemms) == _bench.train_flops(n, shapes)
    pred = _bench.predict_gemms(n, shapes, block=64)
    assert sum(rows * count for rows, count, _ in pred) == n
    assert _bench.gemm_flops(pred) == _bench.predict_flops(n, shapes)


def test_gemm_floor_shapes_follow_one_minibatch():
    # forward layer by layer, then from the last layer down: weight gradient,
    # and the delta product except for the first layer
    (b, count, products), = _bench.train_gemms(64, 32, [(5, 4), (4, 3)])
    assert (b, count) == (32, 2)
    assert products == [(32, 5, 4), (32, 4, 3), (4, 32, 3), (32, 3, 4), (5, 32, 4)]


def test_fitted_exponent():
    assert abs(_bench.fitted_exponent([1, 10, 100], [2, 20, 200]) - 1) < 1e-12


# ------------------------------------------------------------ busy load
def test_busy_load_stops_its_processes_on_interrupt():
    with pytest.raises(KeyboardInterrupt):
        with _bench.BusyLoad(2) as load:
            pids = load.pids
            assert len(pids) == 2
            assert not any(_gone(p) for p in pids)
            if sys.platform.startswith("linux"):
                assert sorted(_busy_children()) == sorted(pids)
            raise KeyboardInterrupt
    assert all(_gone(p) for p in pids)
    assert load.pids == []


def test_busy_load_children_exit_when_the_bench_is_killed(tmp_path):
    # The parent dies without running any cleanup (as with kill -9).
    script = ("import os, sys\n"
              "from fastbp._bench import BusyLoad\n"
              "load = BusyLoad(2).start()\n"
              "print(','.join(map(str, load.pids)), flush=True)\n"
              "os._exit(0)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    pids = [int(p) for p in out.strip().split(",")]
    assert len(pids) == 2
    deadline = time.monotonic() + 30
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [p for p in pids if not _gone(p)]
    for p in left:  # never leave a spinning process behind, even when failing
        os.kill(p, 9)
    assert not left


def test_busy_load_rejects_a_negative_count():
    with pytest.raises(ValueError, match="busy processes"):
        _bench.BusyLoad(-1)


# ------------------------------------------------------------ reliability
def _report(samples, pct=50.0, x_floor=1.1):
    row = {"case": "W batch=32", "kind": "train", "backend": "fastbp-cython",
           "backend_key": "cython", "batch_size": 32, "pct_peak": pct, "x_floor": x_floor,
           "speedup_vs_sklearn": 6.0, "s_per_epoch": 0.1, "floor_s": 0.1 / x_floor}
    return {"meta": {"load_start": [0.1, 0.2, 0.3], "load_end": [0.1, 0.2, 0.3]},
            "gemm": {"float32": {"gflops": max(samples), "samples": samples}},
            "results": [row], "busy": [], "predict": [], "memory": [], "threading": []}


def test_run_with_agreeing_peaks_judges_its_targets():
    report = _report([100.0, 95.0, 91.0])
    assert rep.reliability(report) == (True, [])
    report["targets"] = rep.targets(report, n_cores=2)
    assert [t["met"] for t in report["targets"]] == [True, True]
    report["reliable"] = True
    assert "[    met    ]" in rep.format_report(report, header=False, use_rich=False)


@pytest.mark.parametrize("samples, pct, why", [
    ([100.0, 89.0], 50.0, "disagree by 11%"),
    ([100.0, 99.0], 101.0, "101% of the best GEMM peak"),
])
def test_unreliable_run_judges_no_target(samples, pct, why):
    report = _report(samples, pct=pct)
    reliable, reasons = rep.reliability(report)
    assert not reliable and why in reasons[0]
    report["targets"] = rep.targets(report, n_cores=2)
    assert report["targets"] and all(t["met"] is None for t in report["targets"])
    report["reliable"], report["unreliable_reasons"] = reliable, reasons
    text = rep.format_report(report, header=False, use_rich=False)
    assert "UNRELIABLE RUN" in text and why in text
    assert "[    met    ]" not in text and "MISSED" not in text


def test_busy_targets_depend_on_oversubscription():
    report = _report([100.0])
    busy = {"case": "W batch=32", "kind": "train", "backend": "fastbp-cython",
            "backend_key": "cython", "batch_size": 32, "busy_over_idle": 2.2,
            "speedup_vs_sklearn": 3.5, "pct_peak": 20.0}
    report["busy"] = [dict(busy, busy_procs=2), dict(busy, busy_procs=1)]
    got = {t["target"]: t["met"] for t in rep.targets(report, n_cores=2)}
    assert got["fastbp-cython W batch=32, 2 busy processes: <= 2.5x its idle time"] is True
    assert got["fastbp-cython W batch=32, 2 busy processes: >= 3x scikit-learn"] is True
    assert got["fastbp-cython W batch=32, 1 busy process: <= 2x its idle time"] is False


def _controls(judge=True):
    row = {"case": "W batch=256", "kind": "controls", "backend": "fastbp-cython",
           "backend_key": "cython", "batch_size": 256, "pct_peak": 40.0, "judge": judge}
    return [dict(row, control="defaults", setting="defaults", overhead_pct=0.0),
            dict(row, control="adamw", setting="AdamW", overhead_pct=2.9),
            dict(row, control="clip", setting="clipping", overhead_pct=5.1),
            dict(row, control="both", setting="both", overhead_pct=30.0)]


def test_training_control_targets_are_three_and_five_percent():
    report = _report([100.0])
    report["controls"] = _controls()
    got = {t["target"]: t["met"] for t in rep.targets(report, n_cores=2)
           if "over the defaults" in t["target"]}
    assert got == {"fastbp-cython W batch=256, AdamW: <= 3% over the defaults": True,
                   "fastbp-cython W batch=256, clipping: <= 5% over the defaults": False}


def test_network_option_targets_are_ten_percent_per_activation_and_fifteen_for_dropout():
    report = _report([100.0])
    row = {"case": "W batch=256", "kind": "controls", "backend": "fastbp-cython",
           "backend_key": "cython", "batch_size": 256, "pct_peak": 40.0, "judge": True}
    report["controls"] = [
        dict(row, control="defaults", setting="defaults", overhead_pct=0.0),
        dict(row, control="leaky_relu", setting="leaky_relu (vs relu)", overhead_pct=9.9),
        dict(row, control="gelu", setting="gelu (vs relu)", overhead_pct=10.4),
        dict(row, control="silu", setting="silu (vs relu)", skipped="ValueError: unknown"),
        dict(row, control="dropout", setting="dropout=0.2", overhead_pct=14.0),
    ]
    got = {t["target"]: t["met"] for t in rep.targets(report, n_cores=2)
           if "over the defaults" in t["target"]}
    w = "fastbp-cython W batch=256"
    assert got == {f"{w}, leaky_relu (vs relu): <= 10% over the defaults": True,
                   f"{w}, gelu (vs relu): <= 10% over the defaults": False,
                   f"{w}, dropout=0.2: <= 15% over the defaults": True}
    for key, _, _ in cases.CONTROLS[4:]:
        assert rep.TARGET_CONTROL_OVERHEAD[key] == (15.0 if key == "dropout" else 10.0)


def test_a_controls_row_this_build_cannot_fit_is_shown_skipped_with_its_reason():
    report = _report([100.0])
    report["controls"] = [dict(r, rounds=2) for r in _controls()]
    report["controls"].append(dict(report["controls"][0], control="gelu",
                                   setting="gelu (vs relu)", overhead_pct=None,
                                   skipped="InvalidParameterError: no gelu"))
    report["targets"] = rep.targets(report, n_cores=2)
    assert not any("gelu" in t["target"] for t in report["targets"])
    printed = rep.format_report(report, header=False, use_rich=False)
    assert "gelu (vs relu): skipped, InvalidParameterError: no gelu" in printed


def test_control_skip_reason_names_what_this_build_cannot_fit():
    assert cases.control_skip_reason({}) is None
    assert cases.control_skip_reason({"weight_decay": 1e-2, "dropout": 0.2}) is None
    assert "activation" in cases.control_skip_reason({"activation": "no-such-unit"})


def test_make_classifier_keeps_fastbp_only_keywords_to_fastbp():
    est = cases.make_classifier("numpy", (4,), dropout=0.2, init="he_normal", weight_decay=0.1)
    assert (est.dropout, est.init, est.weight_decay) == (0.2, "he_normal", 0.1)
    with pytest.raises(ValueError, match="dropout: fastbp's own; backend 'sklearn'"):
        cases.make_classifier("sklearn", (4,), dropout=0.2)
    with pytest.raises(TypeError, match="unexpected keyword"):
        cases.make_classifier("numpy", (4,), no_such_option=1)


@pytest.mark.parametrize("judge, samples", [(False, [100.0]), (True, [100.0, 80.0])])
def test_training_control_targets_not_judged_in_small_or_unreliable_runs(judge, samples):
    report = _report(samples)
    report["controls"] = _controls(judge)
    got = [t for t in rep.targets(report, n_cores=2) if "over the defaults" in t["target"]]
    assert len(got) == 2 and all(t["met"] is None for t in got)


# ------------------------------------------------------------ tables
ROWS = [{"case": "a", "backend": "x", "s": 0.5, "r": None},
        {"case": "bb", "backend": "yy", "s": 12.25, "r": 2.0}]
COLS = [("case", "case", None), ("backend", "backend", None), ("seconds", "s", ".2f"),
        ("ratio", "r", ".1f")]


def test_plain_table_aligns_columns():
    lines = rep.render_table(ROWS, COLS, use_rich=False).splitlines()
    assert lines[0].split() == ["case", "backend", "seconds", "ratio"]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].split() == ["a", "x", "0.50", "-"]
    assert lines[3].split() == ["bb", "yy", "12.25", "2.0"]
    assert len({len(line) for line in lines[:2]}) == 1


def test_rich_table_has_the_same_cells():
    pytest.importorskip("rich")
    lines = [line for line in rep.render_table(ROWS, COLS, use_rich=True).splitlines()
             if line.strip()]
    assert lines[0].split() == ["case", "backend", "seconds", "ratio"]
    assert lines[-2].split() == ["a", "x", "0.50", "-"]
    assert lines[-1].split() == ["bb", "yy", "12.25", "2.0"]


def test_tables_fall_back_to_plain_text_without_rich(monkeypatch):
    monkeypatch.setitem(sys.modules, "rich", None)
    monkeypatch.setitem(sys.modules, "rich.table", None)
    assert not rep.have_rich()
    assert rep.render_table(ROWS, COLS) == rep.render_table(ROWS, COLS, use_rich=False)
