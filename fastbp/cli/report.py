"""Timing that can be trusted, and the printed report.

A single fit's time on a shared machine says little: identical runs of the
main job once printed speed-ups from 0.2x to 4.1x. :func:`time_interleaved`
fits each contender several times in turn (A, B, C, A, B, C, ...) so that a
burst of load hits all of them alike, and :func:`summary` reports the median
with the range. :func:`busy_note` says when the numbers should not be
trusted.
"""

import os
import statistics
import time

# Fit times of one contender that vary more than this (max / min) mean the
# machine was busy while we measured.
MAX_SPREAD = 2.0


def time_fit(make, fit):
    """Build a fresh model with ``make()``, fit it with ``fit(model)``;
    returns ``(model, seconds)`` (the build is not timed)."""
    model = make()
    t0 = time.perf_counter()
    fit(model)
    return model, time.perf_counter() - t0


def time_interleaved(contenders, fit, repeat, on_round=None):
    """Fit every contender ``repeat`` times, interleaved.

    Parameters
    ----------
    contenders : dict of str -> callable
        Name -> a function returning a fresh, unfitted model.
    fit : callable
        ``fit(model)`` fits a model (the timed region: nothing else).
    repeat : int
        Fits per contender.
    on_round : callable, default=None
        Called as ``on_round(i, repeat)`` after each round.

    Returns
    -------
    times : dict of str -> list of float
        Seconds per fit, in the order they ran.
    models : dict of str -> fitted model
        The last fitted model of each contender.
    """
    times = {name: [] for name in contenders}
    models = {}
    for i in range(repeat):
        for name, make in contenders.items():
            models[name], seconds = time_fit(make, fit)
            times[name].append(seconds)
        if on_round is not None:
            on_round(i + 1, repeat)
    return times, models


def summary(times):
    """``"0.312 s median (0.298-0.355 s, 3 fits)"``, or one fit's time."""
    if len(times) == 1:
        return f"{times[0]:7.3f} s (1 fit)"
    return (f"{statistics.median(times):7.3f} s median "
            f"({min(times):.3f}-{max(times):.3f} s, {len(times)} fits)")


def spread(times):
    """max / min of the fit times (1.0 for a single fit)."""
    return max(times) / min(times) if min(times) > 0 else float("inf")


def load_average():
    """The 1-minute load average, or None where the OS has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def busy_note(times):
    """One line warning that the machine looked busy, or None.

    Busy means: a 1-minute load average of at least the number of cores
    (other processes competed for the CPUs), or one contender's fit times
    spreading wider than :data:`MAX_SPREAD`.
    """
    reasons = []
    cores = os.cpu_count() or 1
    load = load_average()
    if load is not None and load >= cores:
        reasons.append(f"load average {load:.1f} on {cores} cores")
    for name, t in times.items():
        if len(t) > 1 and spread(t) > MAX_SPREAD:
            reasons.append(f"{name}'s fit times vary {spread(t):.1f}x")
    if not reasons:
        return None
    return ("note: the machine looks busy (" + "; ".join(reasons)
            + "): these timings are unreliable; rerun on an idle machine")


def speed_line(fast_name, fast_times, ref_name, ref_times):
    """How the medians compare, in words that can't be read backwards."""
    fast = statistics.median(fast_times)
    ref = statistics.median(ref_times)
    if fast <= 0 or ref <= 0:
        return None
    if ref >= fast:
        return f"{fast_name} fits {ref / fast:.1f}x faster than {ref_name} (median times)"
    return f"{fast_name} fits {fast / ref:.1f}x slower than {ref_name} (median times)"


def result_row(name, metric, score, timing, n_iter):
    """One result line: ``name  accuracy 0.9711  fit ...  60 epochs``."""
    return f"  {name:<18} {metric} {score:.4f}   fit {timing}   {n_iter:>4} epochs"
