"""What the bench prints: the tables (through ``rich`` when it is installed,
plain text otherwise), the targets and whether the run can judge them, and
the optional plot. Also used by the pytest-benchmark suite's summary."""

import io
import math
import sys

from .cases import BACKEND_LABELS, BACKEND_ORDER, FLOP_NOTE

# Targets, as written in docs/performance.md ("Targets").
TARGET_X_FLOOR = {32: 1.3}          # batch 32: <= 1.3x its GEMM floor
TARGET_X_FLOOR_LARGE = 1.15         # batch >= 256 and predict: <= 1.15x
TARGET_SPEEDUP_IDLE = {32: 5.0}     # idle, >= 5x scikit-learn at batch 32
TARGET_BUSY_SPEEDUP = {32: 3.0, 256: 3.0, 1024: 1.5}  # oversubscribed, vs sklearn
TARGET_BUSY_SLOWDOWN = 2.5          # oversubscribed: <= 2.5x own idle time
TARGET_ONE_BUSY_SLOWDOWN = 2.0      # fewer busy processes than cores: <= 2x
TARGET_MEMORY_FRACTION = 0.25
TARGET_THREADS_SPEEDUP = 1.6
# % of the defaults' epoch (relu, no dropout), per controls row.
TARGET_CONTROL_OVERHEAD = {
    "adamw": 3.0, "clip": 5.0,
    "leaky_relu": 10.0, "elu": 10.0, "selu": 10.0, "gelu": 10.0, "silu": 10.0,
    "dropout": 15.0,
}
MAX_PEAK_SPREAD = 0.10              # GEMM peaks of one run may differ by 10%


def ratio(a, b):
    """a / b, or None when either is missing or zero."""
    if not a or not b:
        return None
    return a / b


# ----------------------------------------------------------------- tables
def _fmt(x, spec):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return format(x, spec) if spec else str(x)


def _cells(rows, columns):
    return [[_fmt(r.get(k), f) for _, k, f in columns] for r in rows]


def _plain_table(headers, cells, n_left):
    table = [headers, *cells]
    widths = [max(len(c[i]) for c in table) for i in range(len(headers))]
    lines = []
    for j, c in enumerate(table):
        lines.append("  ".join(s.ljust(w) if i < n_left else s.rjust(w)
                               for i, (s, w) in enumerate(zip(c, widths, strict=True))))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _rich_table(headers, cells, n_left):
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i < n_left else "right", no_wrap=True)
    for c in cells:
        table.add_row(*c)
    width = sum(max(len(x) for x in col) + 3 for col in zip(headers, *cells, strict=True))
    buf = io.StringIO()
    Console(file=buf, width=width + 8, color_system=None, force_terminal=False,
            highlight=False).print(table)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()).strip("\n")


def have_rich():
    try:
        import rich.table  # noqa: F401
    except ImportError:
        return False
    return True


def render_table(rows, columns, *, n_left=2, use_rich=None):
    """A table of ``rows`` (dicts); ``columns`` = [(header, key, format)],
    the first ``n_left`` columns left-aligned. Through rich when installed
    (``use_rich=None``), else plain fixed-width text."""
    headers = [h for h, _, _ in columns]
    cells = _cells(rows, columns)
    if use_rich is None:
        use_rich = have_rich()
    if use_rich:
        return _rich_table(headers, cells, n_left)
    return _plain_table(headers, cells, n_left)


# ------------------------------------------------------------ reliability
def reliability(report):
    """(reliable, reasons): a run judges nothing when its GEMM peaks disagree
    by more than 10% or a case exceeds 100% of the peak (the machine's speed
    changed under the run: other load, frequency scaling)."""
    reasons = []
    for name, g in report.get("gemm", {}).items():
        samples = g.get("samples") or []
        if len(samples) >= 2:
            spread = (max(samples) - min(samples)) / max(samples)
            if spread > MAX_PEAK_SPREAD:
                reasons.append(
                    f"{name} GEMM peaks measured in this run disagree by {100 * spread:.0f}% "
                    f"(> {100 * MAX_PEAK_SPREAD:.0f}%): "
                    + ", ".join(f"{s:.1f}" for s in samples) + " GFLOP/s")
    for topic in ("results", "predict", "busy", "controls"):
        for r in report.get(topic, []):
            if (r.get("pct_peak") or 0) > 100:
                reasons.append(f"{r['backend']} {r['case']} ran at {r['pct_peak']:.0f}% of "
                               "the best GEMM peak measured (> 100%)")
    return not reasons, reasons


# ---------------------------------------------------------------- targets
def main_backend(report):
    keys = {r["backend_key"] for r in report.get("results", [])}
    return "cython" if "cython" in keys else "numpy"


def _target(text, measured, met, reference=False):
    return {"target": text, "measured": measured, "met": None if reference else met,
            "reference": reference}


def targets(report, n_cores):
    """Each target of docs/performance.md against this run (fastbp's compiled
    backend, else its NumPy backend); ``met`` is None for reference rows and
    for every row of an unreliable run."""
    main = main_backend(report)
    label = BACKEND_LABELS[main]
    out = []
    for r in report.get("results", []):
        if r["backend_key"] != main:
            continue
        bs = r["batch_size"]
        t = TARGET_X_FLOOR.get(bs, TARGET_X_FLOOR_LARGE)
        if r.get("x_floor") is not None:
            out.append(_target(f"{label} batch {bs}: <= {t:g}x its GEMM floor",
                               f"{r['x_floor']:.2f}x", r["x_floor"] <= t))
        if bs in TARGET_SPEEDUP_IDLE and r.get("speedup_vs_sklearn") is not None:
            t = TARGET_SPEEDUP_IDLE[bs]
            out.append(_target(f"{label} batch {bs}: >= {t:g}x scikit-learn",
                               f"{r['speedup_vs_sklearn']:.2f}x",
                               r["speedup_vs_sklearn"] >= t))
        if r.get("speedup_vs_torch") is not None:
            out.append(_target(f"{label} batch {bs}: faster than PyTorch",
                               f"{r['speedup_vs_torch']:.2f}x", r["speedup_vs_torch"] > 1))
    for r in report.get("predict", []):
        if r["backend_key"] == main and r.get("x_floor") is not None:
            out.append(_target(f"{label} {r['case']}: <= {TARGET_X_FLOOR_LARGE:g}x its GEMM floor",
                               f"{r['x_floor']:.2f}x", r["x_floor"] <= TARGET_X_FLOOR_LARGE))
    for r in report.get("busy", []):
        if r["backend_key"] != main:
            continue
        over = r["busy_procs"] >= n_cores
        t = TARGET_BUSY_SLOWDOWN if over else TARGET_ONE_BUSY_SLOWDOWN
        where = f"{r['busy_procs']} busy process{'es' if r['busy_procs'] > 1 else ''}"
        out.append(_target(f"{label} {r['case']}, {where}: <= {t:g}x its idle time",
                           f"{r['busy_over_idle']:.2f}x", r["busy_over_idle"] <= t))
        if not over or r["kind"] != "train":
            continue
        t = TARGET_BUSY_SPEEDUP.get(r["batch_size"])
        if t is not None and r.get("speedup_vs_sklearn") is not None:
            out.append(_target(f"{label} {r['case']}, {where}: >= {t:g}x scikit-learn",
                               f"{r['speedup_vs_sklearn']:.2f}x",
                               r["speedup_vs_sklearn"] >= t))
        if r.get("speedup_vs_torch") is not None:
            out.append(_target(f"{label} {r['case']}, {where}: faster than PyTorch",
                               f"{r['speedup_vs_torch']:.2f}x", r["speedup_vs_torch"] > 1))
    for r in report.get("controls", []):
        t = TARGET_CONTROL_OVERHEAD.get(r["control"])
        if t is None or r.get("skipped"):
            continue
        row = _target(f"{r['backend']} {r['case']}, {r['setting']}: <= {t:g}% over the "
                      "defaults", f"{r['overhead_pct']:+.1f}%", r["overhead_pct"] <= t)
        if not r.get("judge", True):  # --quick / --tiny: too small to judge
            row["met"] = None
        out.append(row)
    for r in report.get("memory", []):
        if r["backend_key"] in ("cython", "numpy", "sklearn"):
            out.append(_target(f"{r['backend']} fit peak extra memory <= "
                               f"{100 * TARGET_MEMORY_FRACTION:g}% of X",
                               f"{100 * r['fraction_of_X']:.1f}% "
                               f"({r['peak_bytes'] / 2**20:.1f} MiB)",
                               r["fraction_of_X"] <= TARGET_MEMORY_FRACTION,
                               reference=r["backend_key"] == "sklearn"))
    for r in report.get("threading", []):
        if r["backend_key"] in ("cython", "numpy", "sklearn"):
            out.append(_target(f"{r['backend']} {r['case']}: >= "
                               f"{TARGET_THREADS_SPEEDUP:g}x serial", f"{r['speedup']:.2f}x",
                               r["speedup"] >= TARGET_THREADS_SPEEDUP,
                               reference=r["backend_key"] == "sklearn"))
    reliable, _ = reliability(report)
    if not reliable:
        for t in out:
            t["met"] = None
    return out


# ----------------------------------------------------------------- report
def format_header(meta):
    lines = [f"fastbp {meta.get('fastbp')} bench  {meta.get('date')}  mode={meta.get('mode')}",
             f"CPU: {meta.get('cpu')} ({meta.get('cores')} cores; "
             f"{', '.join(meta.get('cpu_flags', []))})",
             f"Python {meta.get('python')}, NumPy {meta.get('numpy')}, SciPy "
             f"{meta.get('scipy')}, scikit-learn {meta.get('sklearn')}"
             + (f", torch {meta['torch']}" if meta.get("torch") else ""),
             "BLAS / threads (threadpoolctl):"]
    for d in meta.get("blas", []):
        lines.append(f"  {d['user_api']:<7} {d['internal_api']:<9} {d['version'] or '':<14} "
                     f"threads={d['num_threads']}  {d.get('architecture') or ''}  {d['filepath']}")
    lines.append(f"Load average at start (1, 5, 15 min): {_load(meta.get('load_start'))}")
    return "\n".join(lines)


def _load(values):
    return "unknown" if not values else ", ".join(f"{v:.2f}" for v in values)


TRAIN_COLUMNS = [
    ("case", "case", None), ("backend", "backend", None),
    ("s/epoch", "s_per_epoch", ".4f"), ("samples/s", "samples_per_s", ",.0f"),
    ("GFLOP/s", "gflops", ".1f"), ("% GEMM peak", "pct_peak", ".1f"),
    ("GEMM floor s", "floor_s", ".4f"), ("x floor", "x_floor", ".2f"),
    ("vs sklearn", "speedup_vs_sklearn", ".2f"), ("vs numpy", "speedup_vs_numpy", ".2f"),
    ("vs torch", "speedup_vs_torch", ".2f"),
]
PREDICT_COLUMNS = [
    ("case", "case", None), ("backend", "backend", None),
    ("seconds", "seconds", ".4f"), ("samples/s", "samples_per_s", ",.0f"),
    ("GFLOP/s", "gflops", ".1f"), ("% GEMM peak", "pct_peak", ".1f"),
    ("GEMM floor s", "floor_s", ".4f"), ("x floor", "x_floor", ".2f"),
    ("vs sklearn", "speedup_vs_sklearn", ".2f"), ("vs numpy", "speedup_vs_numpy", ".2f"),
]
CONTROLS_COLUMNS = [
    ("setting", "setting", None), ("s/epoch", "s_per_epoch", ".4f"),
    ("overhead %", "overhead_pct", "+.1f"), ("target %", "target_pct", "g"),
    ("spread %", "spread_pct", ".1f"), ("GFLOP/s", "gflops", ".1f"),
]
BUSY_COLUMNS = [
    ("case", "case", None), ("backend", "backend", None), ("busy procs", "busy_procs", "d"),
    ("idle s", "idle_seconds", ".4f"), ("busy s", "seconds", ".4f"),
    ("busy/idle", "busy_over_idle", ".2f"), ("x floor (busy)", "x_floor", ".2f"),
    ("vs sklearn (busy)", "speedup_vs_sklearn", ".2f"),
    ("vs torch (busy)", "speedup_vs_torch", ".2f"),
]


def format_report(report, header=True, use_rich=None):
    meta = report["meta"]
    lines = [format_header(meta)] if header else []

    def table(rows, columns):
        lines.append(render_table(rows, columns, use_rich=use_rich))

    peaks = []
    for name, g in report["gemm"].items():
        samples = g.get("samples") or [g["gflops"]]
        peaks.append(f"{name} {g['gflops']:.1f} GFLOP/s (best of "
                     + ", ".join(f"{s:.1f}" for s in samples) + ")")
    lines.append("GEMM peak measured in this run: " + "; ".join(peaks))
    lines.append("")
    lines.append("Training, workload W (dense, relu, 10 classes, adam), idle machine:")
    table(report["results"], TRAIN_COLUMNS)
    if report.get("busy"):
        lines.append("")
        lines.append("Busy machine: the same cases while busy-looping processes run beside "
                     "them (idle = the idle run above):")
        table(report["busy"], BUSY_COLUMNS)
    if report["predict"]:
        lines.append("")
        lines.append("Inference throughput:")
        table(report["predict"], PREDICT_COLUMNS)
    if report.get("controls"):
        c = report["controls"][0]
        lines.append("")
        lines.append(f"Training controls, {c['case']}, {c['backend']} ({c['rounds']} "
                     "interleaved rounds; overhead = median over the rounds of the case "
                     "over the defaults of the same round; spread = slowest / fastest "
                     "round of the case):")
        lines.append(render_table(report["controls"], CONTROLS_COLUMNS, n_left=1,
                                  use_rich=use_rich))
        for r in report["controls"]:
            if r.get("skipped"):
                lines.append(f"  {r['setting']}: skipped, {r['skipped']}")
    if report["memory"]:
        lines.append("")
        lines.append("Peak extra memory of fit beyond X (tracemalloc; 1 epoch, batch 256):")
        table([dict(r, peak_mib=r["peak_bytes"] / 2**20, x_mib=r["x_bytes"] / 2**20,
                    pct=100 * r["fraction_of_X"]) for r in report["memory"]],
              [("case", "case", None), ("backend", "backend", None),
               ("peak MiB", "peak_mib", ".1f"), ("X MiB", "x_mib", ".1f"),
               ("% of X", "pct", ".1f"), ("fit s", "seconds", ".2f")])
    if report["threading"]:
        lines.append("")
        lines.append("Threading (no BLAS thread setting: the thread policy decides):")
        table(report["threading"],
              [("case", "case", None), ("backend", "backend", None),
               ("serial s", "serial_s", ".3f"), ("parallel s", "parallel_s", ".3f"),
               ("speed-up", "speedup", ".2f"),
               ("serial s, 1 BLAS thread", "serial_1t_s", ".3f"),
               ("speed-up over it", "speedup_vs_1t", ".2f")])
    lines.append("")
    if report.get("reliable", True):
        lines.append("Targets (docs/performance.md; reported, not enforced):")
    else:
        lines.append("UNRELIABLE RUN: the machine's speed changed while it ran, so no "
                     "target is judged. Rerun on an idle machine.")
        for reason in report.get("unreliable_reasons", []):
            lines.append(f"  - {reason}")
        lines.append("Targets (docs/performance.md; not judged in this run):")
    for t in report["targets"]:
        if t.get("reference"):
            mark = "(reference)"
        elif t["met"] is None:
            mark = "not judged"
        else:
            mark = "met" if t["met"] else "MISSED"
        lines.append(f"  [{mark:^11}] {t['target']}: {t['measured']}")
    lines.append("")
    lines.append(f"Load average at end (1, 5, 15 min): {_load(meta.get('load_end'))}")
    if meta.get("wall_seconds") is not None:
        lines.append(f"Wall time of the run: {meta['wall_seconds']:.0f} s")
    lines.append("Note: " + FLOP_NOTE)
    lines.append("GEMM floor: the case's minibatch products alone, back to back through "
                 "SciPy's BLAS (same shapes, dtype and BLAS threads), the wrapper's "
                 "per-call cost subtracted; 'x floor' = seconds / floor.")
    lines.append("Speed-ups are ratios of seconds measured in this one run; "
                 "'scikit-learn' runs with the BLAS threads shown above.")
    return "\n".join(lines)


def plot(report, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--plot needs matplotlib (pip install 'fastbp[bench]'); no plot written.",
              file=sys.stderr)
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in BACKEND_ORDER:
        color = None  # a backend's busy line (dashed) in the colour of its idle line
        for topic, style in (("results", "-"), ("busy", "--")):
            rows = sorted((r for r in report.get(topic, []) if r["backend_key"] == key
                           and r.get("kind", "train") == "train"),
                          key=lambda r: (r["busy_procs"] if topic == "busy" else 0,
                                         r["batch_size"]))
            for n_busy in sorted({r.get("busy_procs", 0) for r in rows}):
                part = [r for r in rows if r.get("busy_procs", 0) == n_busy]
                label = BACKEND_LABELS[key] + (f" ({n_busy} busy)" if n_busy else "")
                (line,) = ax.plot([r["batch_size"] for r in part],
                                  [r["s_per_epoch"] for r in part],
                                  style, marker="s" if n_busy else "o", label=label,
                                  color=color, mfc="none" if n_busy else None)
                color = line.get_color()
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    batches = sorted({r["batch_size"] for r in report["results"]})
    ax.set_xticks(batches)
    ax.set_xticklabels([str(b) for b in batches])
    ax.minorticks_off()
    ax.set_xlabel("batch size")
    ax.set_ylabel("seconds per epoch")
    ax.set_title("Workload W: {}".format(report["results"][0]["case"].rsplit(" batch", 1)[0]
                                         if report["results"] else ""))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
