"""`python -m fastbp bench` on a tiny configuration: the JSON report has its
keys and the printed table carries the FLOP-counting note. No timing
assertions (timings are for the benchmarks, not for tests)."""

import json

from fastbp import _bench


def test_bench_cli_tiny_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = _bench.main(["--quick", "--tiny", "--backends", "cython,numpy,sklearn",
                      "--json", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "FLOPs counted per sample as forward 2P" in printed
    assert "threadpoolctl" in printed  # BLAS and threads at the top
    assert printed.index("threadpoolctl") < printed.index("s/epoch")

    report = json.loads(out.read_text())
    for key in ("meta", "gemm", "flop_note", "results", "predict", "memory",
                "threading", "targets"):
        assert key in report
    assert report["meta"]["mode"] == "tiny"
    for key in ("cpu", "cores", "blas", "date", "numpy", "sklearn"):
        assert key in report["meta"]
    assert set(report["gemm"]) == {"float32", "float64"}
    assert report["gemm"]["float32"]["gflops"] > 0
    backends = {r["backend_key"] for r in report["results"]}
    assert {"numpy", "sklearn"} <= backends
    for r in report["results"]:
        for key in ("case", "backend", "batch_size", "s_per_epoch", "samples_per_s",
                    "gflops", "pct_peak", "speedup_vs_sklearn", "speedup_vs_numpy"):
            assert key in r
        assert r["s_per_epoch"] > 0
    assert {r["batch_size"] for r in report["results"]} == {32, 256}
    assert {r["method"] for r in report["predict"]} == {"predict", "predict_proba"}
    assert all(0 <= r["fraction_of_X"] for r in report["memory"])
    assert {r["kind"] for r in report["threading"]} == {"two_fits", "gridsearch"}
    assert report["targets"] and all("met" in t for t in report["targets"])
    assert "Note: FLOPs counted" in printed


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


def test_fitted_exponent():
    assert abs(_bench.fitted_exponent([1, 10, 100], [2, 20, 200]) - 1) < 1e-12
