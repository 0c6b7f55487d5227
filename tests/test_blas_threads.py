"""The BLAS thread policy of fastbp._blas_threads.

The policy is driven by a fake clock and fake libraries: each simulated chunk
advances the clock by (seconds per unit at the thread count the fake library
holds) x units, so every decision is deterministic. The last tests use the
real BLAS libraries of the process, checked through threadpoolctl.
"""

import itertools
import threading

import pytest

from fastbp import _blas_threads as bt

BIG = 2 ** 24  # multiply-adds of a product large enough to be measured


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class FakeLibrary:
    """A process-wide BLAS: its count, and every count it was set to."""

    def __init__(self, n, name="fake"):
        self.n = n
        self.name = name
        self.history = []

    def get(self):
        return self.n

    def set(self, n):
        self.n = n
        self.history.append(n)

    def library(self, per_thread=False):
        return bt._Library(self.name, self.get, self.set, per_thread)


def make_policy(*libraries):
    clock = FakeClock()
    policy = bt.BlasThreads(clock=clock,
                            libraries=lambda: [lib.library() for lib in libraries])
    return policy, clock


def run_chunks(policy, clock, lib, seconds_per_unit, chunks, key="k",
               units=10, session=None):
    """Run ``chunks`` chunks; each costs ``seconds_per_unit(threads)`` per
    unit, ``threads`` being what the fake library holds. Returns the counts."""
    used = []

    def go(s):
        for _ in range(chunks):
            s.begin()
            used.append(lib.n)
            clock.t += seconds_per_unit(lib.n) * units
            s.end(units)

    if session is not None:
        go(session)
    else:
        with policy.session(key, BIG) as s:
            go(s)
    return used


MS = 1e-3  # chunks of 10 units take a few ms, as real chunks do


def idle(n):       # 2 threads win, 4 win more
    return {1: 1.0, 2: 0.6, 4: 0.4}[n] * MS


def busy(n):       # a second thread waits for a busy core
    return {1: 1.3, 2: 20.0, 4: 40.0}[n] * MS


def test_candidates_are_powers_of_two_up_to_the_bound():
    assert bt.candidate_counts(1) == [1]
    assert bt.candidate_counts(2) == [1, 2]
    assert bt.candidate_counts(6) == [1, 2, 4, 6]
    assert bt.candidate_counts(8) == [1, 2, 4, 8]


def test_picks_the_faster_count_when_more_threads_win():
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    used = run_chunks(policy, clock, lib, idle, 12)
    assert used[:4] == [1, 2, 1, 2]          # two exploring rounds
    assert set(used[4:]) == {2}
    assert lib.n == 2


def test_picks_one_thread_when_a_second_one_loses():
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    used = run_chunks(policy, clock, lib, busy, 12)
    assert set(used[4:]) == {1}
    assert lib.n == 2                        # the user's setting is back


def test_what_was_learned_is_kept_for_the_next_session_with_the_same_key():
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    run_chunks(policy, clock, lib, idle, 4)
    assert run_chunks(policy, clock, lib, idle, 3) == [2, 2, 2]
    # another key explores on its own
    assert run_chunks(policy, clock, lib, idle, 2, key="other") == [1, 2]


def test_a_core_becoming_busy_mid_fit_is_noticed_at_once():
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    with policy.session("k", BIG) as s:
        run_chunks(policy, clock, lib, idle, 6, session=s)
        assert lib.n == 2
        # well before PROBE_AFTER seconds of the running count: the drift
        # of its own time per unit triggers the probe
        used = run_chunks(policy, clock, lib, busy, 4, session=s)
    assert clock.t < bt.PROBE_AFTER
    assert used[:2] == [2, 1]                # one slow chunk, then the probe
    assert used[2:] == [1, 1]


def test_a_core_becoming_free_is_noticed_by_a_later_probe():
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    run_chunks(policy, clock, lib, busy, 6)

    def free_again(n):   # one thread as fast as when busy: no drift
        return {1: 1.3, 2: 0.7}[n] * MS

    used = run_chunks(policy, clock, lib, free_again, 200)
    assert 2 in used
    assert used[-5:] == [2] * 5


def test_one_thread_getting_slower_does_not_probe_more_threads():
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    run_chunks(policy, clock, lib, busy, 6)

    def busier(n):       # one thread 3x slower: more threads cannot help
        return {1: 4.0, 2: 60.0}[n] * MS

    start = clock.t
    used = run_chunks(policy, clock, lib, busier, 15)
    assert clock.t - start < bt.PROBE_AFTER
    assert set(used) == {1}


def test_drift_probes_back_off_on_a_noisy_machine():
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    run_chunks(policy, clock, lib, idle, 6)
    swings = itertools.cycle([1.0] * 3 + [4.0] * 3)   # load comes and goes

    def noisy(n):
        return idle(n) * next(swings) if n == 2 else 3.0 * MS

    used = run_chunks(policy, clock, lib, noisy, 3000)
    probes = used.count(1)
    assert used[-1] == 2
    # at most one probe chunk per wait / 8 seconds, wait doubling while the
    # probes lose: far fewer than one probe per slow swing (500 of them)
    assert 5 <= probes <= 60


def probe_gaps(used, seconds_per_unit, probed=2):
    """Seconds between the starts of chunks on ``probed`` threads (10 units
    each, as run_chunks runs them)."""
    starts, t = [], 0.0
    for n in used:
        if n == probed:
            starts.append(t)
        t += seconds_per_unit(n) * 10
    return [round(b - a) for a, b in zip(starts, starts[1:])]


def test_probing_backs_off_while_it_keeps_losing():
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)

    def a_little_slower(n):     # 2 threads lose, without collapsing
        return {1: 1.0, 2: 1.2}[n] * MS

    used = run_chunks(policy, clock, lib, a_little_slower, 6000)
    # after exploring (2 chunks on 2 threads), waits of 1, 2, 4, 8, 16, 16,
    # ... seconds between probes
    assert probe_gaps(used, a_little_slower)[1:7] == [1, 2, 4, 8, 16, 16]


def test_a_probe_that_collapses_waits_longer_before_the_next():
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    used = run_chunks(policy, clock, lib, busy, 6000)
    # exploring runs 2 threads once (they collapse); then the first probe
    # after 1 s, and every probe that collapses waits >= COLLAPSE_WAIT (each
    # gap also holds the slow probe chunk itself, 0.2 s)
    assert bt.COLLAPSE_WAIT == 4.0
    assert probe_gaps(used, busy)[:6] == [1, 4, 8, 16, 16, 16]


def test_never_more_threads_than_the_user_setting_at_session_start():
    lib = FakeLibrary(4)
    policy, clock = make_policy(lib)

    def more_is_faster(n):
        return MS / n

    used = run_chunks(policy, clock, lib, more_is_faster, 20)
    assert max(used) == 4 and used[-1] == 4
    lib.n = 2                                 # the user limits BLAS to 2
    lib.history.clear()
    used = run_chunks(policy, clock, lib, more_is_faster, 20)
    assert max(used) == 2 and max(lib.history) == 2
    assert lib.n == 2
    lib.n = 1
    lib.history.clear()
    run_chunks(policy, clock, lib, more_is_faster, 20)
    assert lib.history == [] and lib.n == 1


def test_each_library_is_capped_by_its_own_setting():
    numpy_blas, scipy_blas = FakeLibrary(4, "numpy"), FakeLibrary(2, "scipy")
    policy, clock = make_policy(numpy_blas, scipy_blas)
    used = run_chunks(policy, clock, numpy_blas, lambda n: MS / n, 10)
    assert used[:3] == [1, 2, 4]              # exploring 1, 2, 4 threads
    assert max(numpy_blas.history) == 4
    assert max(scipy_blas.history) == 2       # never above its own setting
    assert (numpy_blas.n, scipy_blas.n) == (4, 2)


def test_tiny_products_run_on_one_thread_without_measuring():
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    with policy.session("k", bt.TINY_GEMM - 1) as s:
        for _ in range(5):
            assert s.begin() == 1
            clock.t += MS
            s.end(1)
    assert lib.history == [1, 2]
    assert policy._stats == {}


def test_the_number_of_keys_remembered_is_bounded(monkeypatch):
    monkeypatch.setattr(bt, "MAX_KEYS", 3)
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    for rows in range(10):                      # e.g. predict on 10 sizes
        run_chunks(policy, clock, lib, idle, 1, key=("forward", rows))
    assert list(policy._stats) == [(("forward", r), 2) for r in (7, 8, 9)]


def test_the_count_is_set_only_when_it_changes():
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    run_chunks(policy, clock, lib, busy, 4)
    lib.history.clear()
    run_chunks(policy, clock, lib, busy, 50, units=0)  # 0 units: not measured
    assert lib.history == [1, 2]           # once in, once back out


def test_restores_the_setting_when_a_chunk_raises():
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    with pytest.raises(KeyboardInterrupt):
        with policy.session("k", BIG, threads=1) as s:
            s.begin()
            assert lib.n == 1
            raise KeyboardInterrupt
    assert lib.n == 2


def test_concurrent_sessions_share_the_cores_and_restore_when_the_last_ends():
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    run_chunks(policy, clock, lib, idle, 6)   # alone, 2 threads win
    both_in, first_out = threading.Barrier(2), threading.Event()
    seen = {}

    def first():
        with policy.session("k", BIG) as s:
            both_in.wait()
            s.begin()
            seen["first"] = lib.n
            s.end(10)
        first_out.set()

    def second():
        with policy.session("k", BIG) as s:
            both_in.wait()
            first_out.wait()
            seen["second, alone again"] = lib.n   # not yet re-chosen
            clock.t += bt.CONCURRENT_LINGER       # the first fit is done
            s.begin()
            seen["second, next chunk"] = lib.n
            s.end(10)
            seen["second, after"] = lib.n

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"first": 1, "second, alone again": 1,
                    "second, next chunk": 2, "second, after": 2}
    assert lib.n == 2
    assert lib.history[-1] == 2


@pytest.mark.parametrize("other_ends_first", [True, False])
def test_chunks_overlapping_another_session_are_not_measured(other_ends_first):
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    other_in, done, other_out = (threading.Event() for _ in range(3))

    def other():
        with policy.session("other", BIG):
            other_in.set()
            done.wait()
        other_out.set()

    t = threading.Thread(target=other)
    with policy.session("k", BIG) as s:
        assert s.begin() == 1                 # alone: exploring starts
        t.start()                             # another session starts ...
        other_in.wait()
        if other_ends_first:                  # ... and perhaps ends
            done.set()
            other_out.wait()
        clock.t += 100.0                      # a chunk slowed down by it
        s.end(10)
    done.set()
    t.join()
    stats = policy._stats[("k", 2)]
    assert stats.round == {}                  # that chunk was not counted
    assert stats.queue[0] == 1                # and is measured again
    assert lib.n == 2


def test_a_limit_caps_sessions_nested_in_it_in_the_same_thread():
    lib = FakeLibrary(4)
    policy, clock = make_policy(lib)
    with policy.session(None, 0, threads=1):
        assert lib.n == 1                      # in force for the whole block
        used = run_chunks(policy, clock, lib, lambda n: MS / n, 10)
        assert set(used) == {1}
        assert lib.n == 1                      # the outer limit still holds
    assert lib.n == 4
    stats = policy._stats.get(("k", 4))
    assert stats is None or set(stats.round) <= {1}   # nothing seen above 1


def test_environment_variable_forces_a_count_without_measuring(monkeypatch):
    lib = FakeLibrary(4)
    policy, clock = make_policy(lib)
    monkeypatch.setattr(bt, "_policy", policy)
    monkeypatch.setenv("FASTBP_BLAS_THREADS", "2")
    with bt.blas_session("k", BIG) as s:
        for _ in range(6):
            assert s.begin() == 2
            clock.t += MS
            s.end(1)
    assert lib.history == [2, 4] and policy._stats == {}
    monkeypatch.setenv("FASTBP_BLAS_THREADS", "8")     # capped by the setting
    with bt.blas_session("k", BIG) as s:
        assert s.begin() == 4
    monkeypatch.setenv("FASTBP_BLAS_THREADS", "")      # empty: measure
    with bt.blas_session("k", BIG) as s:
        assert s.begin() == 1 and ("k", 4) in policy._stats


def test_most_threads_is_the_users_setting_whatever_is_forced_or_picked(monkeypatch):
    # train_epoch shapes its work by it: it must not follow the counts the
    # policy picks, nor FASTBP_BLAS_THREADS, or the numbers would
    lib = FakeLibrary(4)
    policy, clock = make_policy(lib)
    monkeypatch.setattr(bt, "_policy", policy)
    for forced in ("", "1", "2"):
        monkeypatch.setenv("FASTBP_BLAS_THREADS", forced)
        with bt.blas_session("k", BIG) as s:
            assert s.most_threads() == 4
            s.begin()
            assert s.most_threads() == 4
            s.end(1)
        with bt.blas_session("k", bt.TINY_GEMM - 1) as s:
            assert s.most_threads() == 1     # tiny products: one thread
    lib.n = 1
    monkeypatch.setenv("FASTBP_BLAS_THREADS", "")
    with bt.blas_session("k", BIG) as s:
        assert s.most_threads() == 1         # the user's setting
    with bt.BlasThreads(clock=clock, libraries=lambda: []).session("k", BIG) as s:
        assert s.most_threads() == 0         # no library to control


def test_between_sets_the_blocks_own_calls_without_capping_the_calls_in_it(monkeypatch):
    # L-BFGS-B's own level-1 BLAS calls on one thread; its loss evaluations
    # (sessions) still get two; the user's setting back at the end
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    monkeypatch.setattr(bt, "_policy", policy)
    monkeypatch.setenv("FASTBP_BLAS_THREADS", "2")
    with bt.blas_between(1) as block:
        assert lib.n == 1
        for _ in range(3):
            with bt.blas_session("k", BIG) as s:
                assert s.begin() == 2 and lib.n == 2 and s.most_threads() == 2
                s.end(1)
            block.settle()
            assert lib.n == 1
    assert lib.n == 2


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_environment_variable_must_be_a_positive_count(monkeypatch, value):
    monkeypatch.setenv("FASTBP_BLAS_THREADS", value)
    with pytest.raises(ValueError, match="FASTBP_BLAS_THREADS"):
        bt.blas_session("k", BIG)


def test_no_library_means_nothing_to_do():
    policy = bt.BlasThreads(clock=FakeClock(), libraries=lambda: [])
    with policy.session("k", BIG) as s:
        assert s.begin() is None
        s.end(3)


def test_per_thread_libraries_are_set_and_restored_in_the_sessions_thread():
    counts = {}

    def get():
        return counts.get(threading.get_ident(), 4)

    def set_(n):
        counts[threading.get_ident()] = n

    policy = bt.BlasThreads(
        clock=FakeClock(),
        libraries=lambda: [bt._Library("omp", get, set_, per_thread=True)])

    def work():
        with policy.session("k", BIG, threads=2) as s:
            s.begin()
            assert get() == 2
        assert get() == 4

    t = threading.Thread(target=work)
    t.start()
    t.join()
    work()
    assert set(counts.values()) == {4}


# ------------------------------------------------------- real BLAS libraries
def _real_counts():
    from threadpoolctl import threadpool_info

    return {d["filepath"]: d["num_threads"] for d in threadpool_info()
            if d["user_api"] == "blas"}


@pytest.fixture
def two_blas_threads():
    """Real BLAS at two threads (raw entry points, as a user's
    OPENBLAS_NUM_THREADS=2 would leave it), restored afterwards."""
    libraries = bt.scan_libraries()
    if not libraries:
        pytest.skip("no BLAS library threadpoolctl can control")
    before = [lib.get() for lib in libraries]
    for lib in libraries:
        lib.set(2)
    if set(_real_counts().values()) != {2}:
        for lib, n in zip(libraries, before):
            lib.set(n)
        pytest.skip("BLAS cannot run two threads here")
    yield
    for lib, n in zip(libraries, before):
        lib.set(n)


def test_limits_take_effect_while_another_thread_controls_threadpoolctl(
        two_blas_threads):
    # threadpoolctl gives one live thread control of a pthreads OpenBLAS and
    # ignores set_num_threads from all others; fastbp must not depend on it.
    from threadpoolctl import threadpool_limits

    from threadpoolctl import OpenBLASController

    OpenBLASController.clear_controlling_thread(force=True)
    holding, release = threading.Event(), threading.Event()

    def hold_control():
        with threadpool_limits(limits=2, user_api="blas"):
            holding.set()
            release.wait()

    t = threading.Thread(target=hold_control)
    t.start()
    holding.wait()
    try:
        before = _real_counts()
        with bt.blas_limit(1):
            assert set(_real_counts().values()) == {1}
        assert _real_counts() == before
    finally:
        release.set()
        t.join()


def test_setting_restored_when_sessions_end_in_another_thread_than_began(
        two_blas_threads):
    # The first session limits BLAS in thread A, the last one to end runs in
    # thread B while A is still alive: the user's setting must come back.
    from threadpoolctl import OpenBLASController

    OpenBLASController.clear_controlling_thread(force=True)
    before = _real_counts()
    a_limited, b_in, a_out, b_done = (threading.Event() for _ in range(4))

    def a():
        with bt.blas_limit(1):
            a_limited.set()
            b_in.wait()
        a_out.set()
        b_done.wait()          # keep thread A alive

    def b():
        a_limited.wait()
        with bt.blas_session("b", BIG) as s:
            b_in.set()
            a_out.wait()
            s.begin()
            s.end(1)
        b_done.set()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _real_counts() == before


def test_many_threads_of_sessions_leave_the_setting_as_it_was(two_blas_threads):
    import numpy as np

    from threadpoolctl import OpenBLASController

    OpenBLASController.clear_controlling_thread(force=True)
    before = _real_counts()
    a = np.ones((64, 64))
    errors = []

    def work(i):
        try:
            for j in range(20):
                limit = bt.blas_limit(1) if (i + j) % 3 == 0 else None
                if limit is not None:
                    limit.__enter__()
                with bt.blas_session(("stress", i % 2), BIG) as s:
                    for _ in range(3):
                        s.begin()
                        a @ a
                        s.end(1)
                if limit is not None:
                    limit.__exit__(None, None, None)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        all_done.wait()  # every thread alive until all sessions have ended

    all_done = threading.Barrier(8)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _real_counts() == before


@pytest.mark.parametrize("probe_gain, switches", [(0.85, False), (0.7, True)])
def test_more_threads_must_win_a_probe_clearly(probe_gain, switches):
    # One thread wins on a busy machine; later a probe with two threads is
    # faster by (1 - probe_gain): a single lucky chunk 15% faster must not
    # bring back a count that collapses, a clear 30% must.
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    run_chunks(policy, clock, lib, busy, 6)
    assert lib.n == 2 and run_chunks(policy, clock, lib, busy, 1) == [1]

    def later(n):
        return busy(1) * (probe_gain if n == 2 else 1.0)

    clock.t += bt.PROBE_AFTER_MAX       # the next probe round is due
    used = run_chunks(policy, clock, lib, later, 6)
    assert 2 in used                    # the probe ran
    assert (used[-1] == 2) is switches


def test_a_drift_probe_competes_with_the_winners_present_speed():
    # Two threads won on an idle machine; a core becomes busy and makes them
    # 5x slower, one thread now beats them but is still slower than their old
    # average: the probe must compare with what two threads do now.
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)

    def now_busy(n):
        return {1: 2.0, 2: 3.0}[n] * MS

    with policy.session("k", BIG) as s:
        run_chunks(policy, clock, lib, idle, 8, session=s)
        assert lib.n == 2
        clock.t += bt.PROBE_AFTER / 4   # a drift may trigger a probe at once
        used = run_chunks(policy, clock, lib, now_busy, 5, session=s)
    assert used[:2] == [2, 1]
    assert used[2:] == [1, 1, 1]


def test_a_core_becoming_busy_after_a_long_idle_run_is_noticed_within_chunks():
    # Hours of idle training back the periodic probes off to their longest
    # wait; a core becoming busy must still switch to one thread at once.
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    with policy.session("k", BIG) as s:
        run_chunks(policy, clock, lib, idle, 8000, session=s)   # ~50 s
        assert lib.n == 2
        used = run_chunks(policy, clock, lib, busy, 6, session=s)
    assert used[-3:] == [1, 1, 1]


# ------------------------------------------- what a collapse tells other work
def test_exploring_runs_a_count_that_collapsed_only_once():
    # On a busy machine one chunk on 2 threads costs as much as 15 on one:
    # a second exploring chunk on 2 threads tells nothing new.
    lib = FakeLibrary(4)
    policy, clock = make_policy(lib)
    start = clock.t
    used = run_chunks(policy, clock, lib, busy, 20)
    assert used[:3] == [1, 2, 1]              # 4 threads are not tried either
    assert used.count(2) == 1 and 4 not in used
    assert clock.t - start < bt.PROBE_AFTER


def test_a_new_key_starts_at_the_count_that_won_where_more_threads_collapsed():
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    run_chunks(policy, clock, lib, busy, 4, key="train")   # 2 threads collapse
    start = clock.t
    used = run_chunks(policy, clock, lib, busy, 30, key="predict")
    assert used[:30] == [1] * 30            # no exploring chunk on 2 threads
    assert clock.t - start < bt.PROBE_AFTER
    # and the other count is still probed later, as for a winner
    assert 2 in run_chunks(policy, clock, lib, busy, 100, key="predict")


def test_a_new_key_explores_when_the_collapse_was_seen_long_ago():
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    run_chunks(policy, clock, lib, busy, 4, key="train")
    clock.t += bt.EVIDENCE_FOR + 1
    assert run_chunks(policy, clock, lib, idle, 2, key="predict") == [1, 2]


def test_more_threads_winning_again_ends_what_the_collapse_said():
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    run_chunks(policy, clock, lib, busy, 4, key="a")        # collapse
    # the machine is free again: key b starts at one thread, its probe finds
    # 2 threads faster ...
    used = run_chunks(policy, clock, lib, idle, 200, key="b")
    assert used[0] == 1 and used[-1] == 2
    # ... so a key after it explores again
    assert run_chunks(policy, clock, lib, idle, 2, key="c") == [1, 2]


def test_a_key_learned_before_a_collapse_elsewhere_switches_to_its_count():
    # 2 threads won for training on an idle machine; then cores became busy
    # and predict saw 2 threads collapse: the next training epoch starts on
    # one thread instead of paying a collapsed chunk to find out.
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    run_chunks(policy, clock, lib, idle, 6, key="train")
    assert run_chunks(policy, clock, lib, idle, 1, key="train") == [2]
    run_chunks(policy, clock, lib, busy, 4, key="predict")
    assert run_chunks(policy, clock, lib, busy, 10, key="train") == [1] * 10


def test_the_winner_is_not_probed_while_openblas_threads_settle():
    # After a chunk on 2 threads OpenBLAS's second thread spins for a while
    # on a busy machine and slows the one-thread chunks after it down; when
    # it stops, one thread gets faster again. That is not a core becoming
    # free and must not start a probe of 2 threads (which spins again).
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    last_two = [-1.0]

    def after_two(n):
        if n == 2:
            last_two[0] = clock.t + busy(2) * 10   # when this chunk ends
            return busy(2)
        spinning = clock.t - last_two[0] < 0.2
        return busy(1) * (3.0 if spinning else 1.0)

    used = run_chunks(policy, clock, lib, after_two, 40)   # < PROBE_AFTER
    assert clock.t < bt.PROBE_AFTER
    assert used.count(2) == 1                 # the one exploring chunk


# ------------------------------------------------------------- concurrency
def _overlap(policy, key="k"):
    """Two sessions in two threads that overlap, then both end."""
    both_in = threading.Barrier(2)

    def work():
        with policy.session(key, BIG):
            both_in.wait()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_a_session_right_after_an_overlap_still_shares_the_cores():
    # GridSearchCV(n_jobs=2) with threads: between two fits of one thread the
    # other thread's fit runs alone for a moment; it must not take both
    # cores just before the next fit starts beside it.
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    run_chunks(policy, clock, lib, idle, 6)          # alone, 2 threads win
    _overlap(policy)
    clock.t += bt.CONCURRENT_LINGER / 2
    with policy.session("k", BIG) as s:
        assert s.begin() == 1
        assert s._measuring is None               # shared: not measured
        clock.t += bt.CONCURRENT_LINGER / 2 + MS
        s.end(10)
        assert s.begin() == 2                     # no overlap for long: alone
    assert lib.n == 2


# ------------------------------------------ a machine without a free core
class FakeCpuClock:
    """The calling thread's CPU seconds: ``share`` of the wall clock's."""

    def __init__(self, clock, share=1.0):
        self.clock, self.share = clock, share
        self.t, self.last = 0.0, clock.t

    def __call__(self):
        self.t += (self.clock.t - self.last) * self.share
        self.last = self.clock.t
        return self.t


def make_policy_with_cpu(lib, share):
    clock = FakeClock()
    cpu = FakeCpuClock(clock, share)
    policy = bt.BlasThreads(clock=clock, libraries=lambda: [lib.library()],
                            cpu_clock=cpu)
    return policy, clock, cpu


def test_one_thread_with_a_free_core_explores_as_usual():
    lib = FakeLibrary(2)
    policy, clock, cpu = make_policy_with_cpu(lib, share=0.99)
    assert run_chunks(policy, clock, lib, idle, 6)[:4] == [1, 2, 1, 2]


def test_no_free_core_for_one_thread_means_more_threads_are_not_tried():
    # Two busy processes on two cores: one thread gets 2/3 of a core. A
    # chunk on 2 threads would collapse; it is neither explored nor probed
    # while the machine stays so, and probed as soon as a core is free.
    lib = FakeLibrary(2)
    policy, clock, cpu = make_policy_with_cpu(lib, share=0.67)
    used = run_chunks(policy, clock, lib, busy, 3000)
    assert set(used) == {1}
    assert clock.t > bt.EVIDENCE_FOR     # still crowded: still evidence
    assert run_chunks(policy, clock, lib, busy, 1000, key="predict") == [1] * 1000
    cpu.share = 1.0                                       # a core is free
    used = run_chunks(policy, clock, lib, idle, 3)
    assert used == [1, 2, 2]      # the chunk that saw it, the probe, the winner


def test_a_collapse_with_a_free_core_stays_with_its_own_work():
    # Idle machine (one thread gets a whole core): tiny products at batch 32
    # run slower on 2 threads than on one. That is their shape, not a busy
    # machine: a larger product's key must still explore and take 2 threads.
    lib = FakeLibrary(2)
    policy, clock, cpu = make_policy_with_cpu(lib, share=1.0)

    def tiny(n):
        return {1: 1.0, 2: 3.0}[n] * MS

    run_chunks(policy, clock, lib, tiny, 6, key="batch32")
    assert run_chunks(policy, clock, lib, tiny, 1, key="batch32") == [1]
    used = run_chunks(policy, clock, lib, idle, 6, key="batch256")
    assert used[:2] == [1, 2] and used[-1] == 2


def test_the_cpu_clock_is_read_only_around_chunks_on_one_thread():
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    reads = []
    policy.cpu_clock = lambda: reads.append(lib.n) or clock.t   # a free core
    used = run_chunks(policy, clock, lib, idle, 12)
    assert 2 in used
    assert reads and set(reads) == {1}


def test_a_key_learned_with_a_free_core_follows_a_crowded_machine_seen_since():
    lib = FakeLibrary(2)
    policy, clock, cpu = make_policy_with_cpu(lib, share=1.0)
    run_chunks(policy, clock, lib, idle, 6, key="train")   # 2 threads won
    cpu.share = 0.67
    run_chunks(policy, clock, lib, busy, 3000, key="predict")
    assert clock.t > bt.EVIDENCE_FOR         # crowded all along, until now
    assert run_chunks(policy, clock, lib, busy, 3, key="train") == [1, 1, 1]


def test_openblas_threads_spinning_after_a_chunk_on_two_are_not_a_crowd():
    # After a chunk on 2 threads OpenBLAS's second thread spins on a core for
    # a while; with one busy process on two cores that leaves the next
    # one-thread chunk 2/3 of a core. That is fastbp's own doing, not a
    # machine without a free core: exploring goes on.
    lib = FakeLibrary(4)
    policy, clock, cpu = make_policy_with_cpu(lib, share=1.0)
    last_many = [-1.0]

    def spin_after_more(n):
        cpu.share = 0.67 if clock.t - last_many[0] < 0.2 else 1.0
        if n > 1:
            last_many[0] = clock.t + idle(n) * 10
        return idle(n)

    used = run_chunks(policy, clock, lib, spin_after_more, 8)
    assert used[:6] == [1, 2, 4, 1, 2, 4]


def test_a_chunk_not_judged_for_a_free_core_keeps_the_last_judgement():
    lib = FakeLibrary(2)
    policy, clock, cpu = make_policy_with_cpu(lib, share=0.67)
    run_chunks(policy, clock, lib, busy, 100)          # crowded, > PROBE_AFTER
    assert clock.t > bt.PROBE_AFTER
    with policy.session("forced", BIG, threads=2) as s:   # e.g. FASTBP_BLAS_THREADS
        s.begin()
        clock.t += MS
        s.end(1)
    # the next chunk is within SETTLE of it: not judged, still no free core
    # known, so no probe of 2 threads though one is due
    assert run_chunks(policy, clock, lib, busy, 3) == [1, 1, 1]


def test_the_thread_cpu_clock_is_not_used_where_it_counts_in_ticks(monkeypatch):
    monkeypatch.setattr(bt.sys, "platform", "win32")
    assert bt._thread_cpu_clock() is None
    monkeypatch.setattr(bt.sys, "platform", "linux")
    assert bt._thread_cpu_clock() in (bt.time.thread_time, None)


# --------------------------------- other processes holding the cores now
class FakeLoad:
    """Threads of other processes runnable now, and of this one but the
    caller (``ours``: counted with ``own=True``); counts every read."""

    def __init__(self, others, ours=0):
        self.others = others
        self.ours = ours
        self.reads = 0

    def __call__(self, own=False):
        self.reads += 1
        return self.others + (self.ours if own else 0)


def make_policy_with_load(lib, others, cores=2):
    clock = FakeClock()
    load = FakeLoad(others)
    policy = bt.BlasThreads(clock=clock, libraries=lambda: [lib.library()],
                            others_running=load, cores=cores)
    return policy, clock, load


def test_no_core_for_a_second_thread_means_it_is_not_run_until_one_is_free():
    # One busy process on two cores: a second BLAS thread would share a core
    # with it and stall every product. Not run at all, not even to explore;
    # the exploration resumes as soon as a core is free.
    lib = FakeLibrary(2)
    policy, clock, load = make_policy_with_load(lib, others=1)
    with policy.session("k", BIG) as s:
        assert run_chunks(policy, clock, lib, busy, 50, session=s) == [1] * 50
        load.others = 0
        used = run_chunks(policy, clock, lib, idle, 6, session=s)
    assert used[:3] == [2, 1, 2] and used[-1] == 2   # the rest of [1, 2, 1, 2]
    assert lib.n == 2                                 # the user's setting back


def test_a_winner_on_two_threads_runs_one_while_another_process_holds_a_core():
    # Learned idle, then a core becomes busy: the very next chunk runs on one
    # thread (no collapsed chunk first), and two again once it is free.
    lib = FakeLibrary(2)
    policy, clock, load = make_policy_with_load(lib, others=0)
    assert run_chunks(policy, clock, lib, idle, 6)[-1] == 2
    load.others = 1
    assert run_chunks(policy, clock, lib, busy, 20) == [1] * 20
    load.others = 0
    assert run_chunks(policy, clock, lib, idle, 3) == [2, 2, 2]


def test_our_own_runnable_threads_hold_a_core_where_chunks_run_threads_of_their_own():
    # OpenBLAS's threads spinning after a NumPy product (this process): a
    # chunk whose second thread is fastbp's own would share a core with
    # them (measured: 7.5x slower per minibatch, taken for a collapse, and
    # the fit then ran on one thread). Such a session runs one thread, not
    # measured, until they sleep, then explores; a session whose chunks use
    # BLAS's threads (which are those threads) does not wait for them.
    for own, want in ((True, [1] * 10 + [2, 1, 2]), (False, [1, 2, 1, 2] + [2] * 9)):
        lib = FakeLibrary(2)
        policy, clock, load = make_policy_with_load(lib, others=0)
        load.ours = 1
        with policy.session("k", BIG) as s:
            if own:
                s.runs_own_threads()
            used = run_chunks(policy, clock, lib, idle, 10, session=s)
            load.ours = 0
            used += run_chunks(policy, clock, lib, idle, 3, session=s)
        assert used == want, own
        assert lib.n == 2


def test_our_own_spinning_threads_are_not_a_crowded_machine_for_our_own_threads():
    # Right after a threaded NumPy product (the bench's GEMM peak) its
    # OpenBLAS threads spin and take half of a one-thread chunk's core. For
    # a session whose chunks run threads of their own that is no crowded
    # machine (it would keep the fit on one thread for EVIDENCE_FOR s): the
    # chunks wait on one thread, unjudged, and explore once the spinning
    # stops. A session using BLAS's threads still judges (ours are its own).
    for own, want in ((True, [1] * 6 + [2, 1, 2, 2]), (False, [1] * 10)):
        lib = FakeLibrary(2)
        clock = FakeClock()
        cpu = FakeCpuClock(clock, share=0.5)
        load = FakeLoad(others=0, ours=1)
        policy = bt.BlasThreads(clock=clock, libraries=lambda: [lib.library()],
                                cpu_clock=cpu, others_running=load, cores=2)
        with policy.session("k", BIG) as s:
            if own:
                s.runs_own_threads()
            used = run_chunks(policy, clock, lib, idle, 6, session=s)
            load.ours, cpu.share = 0, 1.0
            used += run_chunks(policy, clock, lib, idle, 4, session=s)
        assert used == want, own


def test_the_room_left_by_other_processes_caps_larger_counts():
    lib = FakeLibrary(8)
    policy, clock, load = make_policy_with_load(lib, others=5, cores=8)
    used = run_chunks(policy, clock, lib, lambda n: MS / n, 40)
    assert max(used) == 2                             # 8 cores - 5 others = 3 -> 2


def test_the_load_is_read_only_before_chunks_on_more_than_one_thread():
    lib = FakeLibrary(2)
    policy, clock, load = make_policy_with_load(lib, others=0)

    def small(n):          # a second thread loses a little
        return {1: 1.0, 2: 1.3}[n] * MS

    assert run_chunks(policy, clock, lib, small, 4) == [1, 2, 1, 2]
    assert load.reads == 2
    assert run_chunks(policy, clock, lib, small, 20) == [1] * 20   # no probe due
    assert load.reads == 2


@pytest.mark.parametrize("reading", [None, "raises"])
def test_a_load_that_cannot_be_read_leaves_the_policy_to_measure(reading):
    lib = FakeLibrary(2)

    def load():
        if reading == "raises":
            raise OSError("no /proc")
        return None

    clock = FakeClock()
    policy = bt.BlasThreads(clock=clock, libraries=lambda: [lib.library()],
                            others_running=load, cores=2)
    assert run_chunks(policy, clock, lib, idle, 6)[:4] == [1, 2, 1, 2]


def _fake_proc(root, loadavg, states):
    (root / "self" / "task").mkdir(parents=True)
    (root / "loadavg").write_text(loadavg)
    for tid, state in enumerate(states, start=100):
        (root / "self" / "task" / str(tid)).mkdir()
        # a command name with a space and a parenthesis, as threads may have
        (root / "self" / "task" / str(tid) / "stat").write_text(
            f"{tid} (py (worker) x) {state} 1 1 1 0 -1 4194560 0 0\n")


def test_the_reader_counts_runnable_threads_less_this_process_own(tmp_path, monkeypatch):
    monkeypatch.setattr(bt.sys, "platform", "linux")
    monkeypatch.setattr(bt.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(bt.os, "cpu_count", lambda: 4)
    _fake_proc(tmp_path, "0.50 0.40 0.30 5/312 4242\n", ["R", "S", "R", "S"])
    read = bt._others_running_reader(str(tmp_path))
    assert read() == 3                                # 5 runnable, 2 of them ours
    assert read(own=True) == 4                        # all but the caller
    (tmp_path / "loadavg").write_text("0.50 0.40 0.30 1/312 4242\n")
    assert read() == 0                                # never below zero


def test_the_reader_is_not_used_where_the_count_is_not_our_cores(tmp_path, monkeypatch):
    _fake_proc(tmp_path, "0.50 0.40 0.30 5/312 4242\n", ["R"])
    monkeypatch.setattr(bt.sys, "platform", "linux")
    monkeypatch.setattr(bt.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(bt.os, "cpu_count", lambda: 4)     # a cpuset of 2 of 4
    assert bt._others_running_reader(str(tmp_path)) is None
    monkeypatch.setattr(bt.os, "cpu_count", lambda: 2)
    assert bt._others_running_reader(str(tmp_path / "missing")) is None
    monkeypatch.setattr(bt.sys, "platform", "darwin")
    assert bt._others_running_reader(str(tmp_path)) is None


@pytest.mark.skipif(bt._others_running_reader() is None,
                    reason="no /proc load reading on this platform")
def test_the_reader_sees_a_busy_process_beside_this_one():
    import subprocess
    import sys
    import time

    child = subprocess.Popen(
        [sys.executable, "-c", "import sys\nprint(1, flush=True)\nwhile True: pass"],
        stdout=subprocess.PIPE)
    try:
        child.stdout.readline()                       # it runs
        read = bt._others_running_reader()
        seen = []
        for _ in range(50):
            seen.append(read())
            time.sleep(0.002)
        assert max(seen) >= 1
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


# ------------------------------------- fits of a thread pool starting apart
def _in_worker_thread(fn, other_workers):
    """Run ``fn`` in a new thread while ``other_workers`` more threads are
    alive (blocked); return what it returned."""
    release = threading.Event()
    others = [threading.Thread(target=release.wait) for _ in range(other_workers)]
    for t in others:
        t.start()
    out = []
    try:
        worker = threading.Thread(target=lambda: out.append(fn()))
        worker.start()
        worker.join()
    finally:
        release.set()
        for t in others:
            t.join()
    return out[0]


def _newcomer_run(policy, clock, lib):
    with policy.session("k", BIG) as s:
        young = run_chunks(policy, clock, lib, idle, 5, session=s)
        clock.t += bt.NEWCOMER_WAIT
        grown = run_chunks(policy, clock, lib, idle, 6, session=s)
    return young, grown


def test_a_fit_in_a_worker_thread_shares_the_cores_while_other_workers_start():
    # GridSearchCV(n_jobs=2) with threads: the first fit must not take both
    # cores while the second one is a few ms from starting.
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    young, grown = _in_worker_thread(lambda: _newcomer_run(policy, clock, lib), 1)
    assert young == [1] * 5                     # 5 chunks within NEWCOMER_WAIT
    assert grown[:4] == [1, 2, 1, 2]            # then on its own: explores
    assert lib.n == 2


def test_a_lone_fit_in_a_worker_thread_does_not_wait_for_others():
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    young, _ = _in_worker_thread(lambda: _newcomer_run(policy, clock, lib), 0)
    assert young[:4] == [1, 2, 1, 2]


def test_a_fit_in_the_main_thread_does_not_wait_for_worker_threads():
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    release = threading.Event()
    other = threading.Thread(target=release.wait)   # e.g. a dashboard's thread
    other.start()
    try:
        young, _ = _newcomer_run(policy, clock, lib)
    finally:
        release.set()
        other.join()
    assert young[:4] == [1, 2, 1, 2]


def test_a_chunk_running_threads_of_its_own_limits_blas_and_is_measured_as_given():
    # train_epoch's helper thread: the chunk gets 2 threads from the policy,
    # runs BLAS on one, and is measured (and explored) as the 2-thread count
    lib = FakeLibrary(2)
    policy, clock = make_policy(lib)
    used = []
    with policy.session("k", BIG) as s:
        for _ in range(8):
            n = s.begin()
            if n == 2:
                s.limit_blas(1)
                assert lib.n == 1
            used.append(n)
            clock.t += (0.5 if n == 2 else 1.0) * MS * 10   # two threads win
            s.end(10)
    assert used[:4] == [1, 2, 1, 2] and used[-1] == 2
    assert lib.n == 2                                      # the setting restored
    assert lib.history.count(1) >= 4                       # set per chunk
