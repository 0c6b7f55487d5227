"""How many BLAS threads fastbp's kernels run on.

Both backends drive their work in *chunks* (a ~20 ms group of minibatches of
an epoch, a block of rows on the predict path, one L-BFGS ``loss_grad``
block) and ask this module, around every chunk, which BLAS thread count to
use::

    with blas_session(key, largest_gemm) as session:
        while work remains:
            session.begin()              # sets the thread count for this chunk
            units = run_one_chunk()      # kernel, without the GIL
            session.end(units)           # how many units (batches, rows) it did

``key`` is a hashable description of the GEMM shapes (what the work is), so
what was learned about one shape is kept for the next call with the same
shape; ``largest_gemm`` is the multiply-adds of the largest GEMM of one unit.

The policy measures (see docs/performance.md, "How fastbp chooses BLAS
threads"):

* Candidates are 1, 2, 4, ... up to the user's setting when the session
  starts (threadpoolctl, ``OPENBLAS_NUM_THREADS``, or the library default):
  never more threads than that.
* A new key is explored: each candidate runs two chunks, and the one with the
  least time per unit wins. A count that *collapses* (``COLLAPSE``x slower
  per unit than fewer threads: the busy-core case) is not run again, nor are
  larger ones.
* What the machine looks like now is shared between keys. A chunk on one
  thread whose thread got less than ``CROWDED`` of a core (CPU time / wall
  time) shows that no core is free: more threads would collapse, so they are
  neither explored nor probed while it stays so. That, or a collapse seen by
  a key that also found no free core (any collapse where no CPU clock can
  tell), makes new keys start at the count that won (one thread) instead
  of exploring, and keys that learned before switch to it, for
  ``EVIDENCE_FOR`` seconds or until a key sees more threads win.
* Before a chunk on more than one thread, the machine's load is read
  (Linux: runnable threads of other processes, ``/proc``). When other
  processes leave fewer cores than the count, the chunk runs on as many
  threads as there are cores left (one, when a single core is left), and is
  not measured: a chunk on a core another process holds stalls every
  product, and OpenBLAS's thread then spins on for ~0.15 s, slowing the
  chunks after it (one such chunk and its aftermath cost a one-epoch fit at
  batch 256 ~40% with one busy process on two cores). Exploring or probing
  that count waits until the cores are free; a winner at that count resumes
  then. Other processes' threads count even when they run at a low
  priority (``nice``), though they would then take little from ours.
  Where a chunk's second thread is fastbp's own (``runs_own_threads``:
  the two-thread step), this process's other runnable threads count too:
  OpenBLAS's threads spin for ~0.1 s after a NumPy product, and a chunk
  whose helper shared a core with them ran 7.5x slower per minibatch,
  which exploring took for a collapse (the fit then ran on one thread).
  For such sessions a one-thread chunk that got less than ``CROWDED`` of
  its core while threads of this process were runnable is not judged
  crowded either (those threads took it, not other processes).
* While the winner runs, its time per unit is followed (a moving average). A
  probe round (one chunk on each neighbour, half and twice the count) comes
  after ``PROBE_AFTER`` seconds, then after twice as long each time probing
  loses (up to ``PROBE_AFTER_MAX``); it comes at once when the winner's time
  per unit drifts by more than ``DRIFT``x from what it was when it won, in a
  direction where another count may now win (slower: fewer threads; faster:
  more), at most every wait / 8 seconds. A probe round that collapses waits
  at least ``COLLAPSE_WAIT`` seconds for the next. For ``SETTLE`` seconds
  after chunks on more threads than the winner (OpenBLAS's idle threads
  spin, and slow it down) the winner's time only re-sets its reference.
* Products below ``TINY_GEMM`` multiply-adds always run on one thread.
* A chunk may run threads of its own instead of BLAS's (``limit_blas``:
  train_epoch's helper thread, for small float32 batches and for the
  two-thread step); it is measured as the count it was given. What such
  work looks like may depend on ``most_threads()`` (the user's setting),
  never on the counts picked, so the picks do not change the numbers.
* ``FASTBP_BLAS_THREADS=n`` in the environment forces n threads (at most the
  user's setting) and turns measuring off.
* When sessions run in several threads at once (fits in threads,
  ``GridSearchCV(n_jobs=2)`` with joblib's threading backend), they share the
  process-wide setting: each chunk runs on ``max(1, bound // threads)`` at
  most, and chunks that overlap another thread's session are not measured;
  so for ``CONCURRENT_LINGER`` seconds after the last overlap (between two
  fits of a grid search, one thread's fit runs alone for a moment).
  A session in a worker thread starts sharing the cores with the other
  worker threads alive for its first ``NEWCOMER_WAIT`` seconds: the fits
  of a thread pool start some milliseconds apart, and the first one must
  not take every core meanwhile.

The BLAS thread count is process-wide state shared by every thread. The
user's setting is read once, under a lock, when the first session of the
process starts, and set back when the last one ends, exceptions included.
Counts are set through the libraries' own entry points (``openblas_set_num_
threads``), not through threadpoolctl's limiter: threadpoolctl lets only one
"controlling" Python thread change a pthreads OpenBLAS and silently ignores
calls from any other thread, so a limit taken in one worker thread and
restored from another was never restored. Per-thread libraries (OpenBLAS
built on OpenMP) are set and restored in the session's own thread.
"""

import itertools
import os
import sys
import threading
import time

# Below this many multiply-adds the largest product of a unit runs on one
# thread without measuring: starting a second BLAS thread costs more than
# such a product (2 threads were 1.17-1.24x slower from 65k to 262k).
TINY_GEMM = 2 ** 14
# Seconds the winner runs before the first probe round; each probe round
# that loses doubles the wait, up to PROBE_AFTER_MAX.
PROBE_AFTER = 1.0
PROBE_AFTER_MAX = 16.0
# The winner's time per unit drifting by more than this factor from its
# time when it won (either way) triggers a probe round at once: at most every
# DRIFT_WAIT seconds, doubling while drift rounds lose (a noisy machine), up to
# DRIFT_WAIT_MAX. (Kept apart from the periodic probes' back-off: after a long
# idle run that back-off is at its maximum, and a core becoming busy must still
# be noticed within a few chunks.)
DRIFT = 1.5
DRIFT_WAIT = 0.05
DRIFT_WAIT_MAX = PROBE_AFTER_MAX / 8
# A probed count replaces the winner only when this much faster per unit:
# a little for fewer threads, more for more threads, whose single probe chunk
# on a machine with busy cores can win by luck and then collapse (seen at
# batch 1024 with two busy processes: the count flipped back and forth).
SWITCH_MARGIN = 0.95
SWITCH_UP_MARGIN = 0.8
# Weight of the newest chunk in the winner's moving average time per unit.
SMOOTHING = 0.3
# Chunks measured per candidate when a key is new.
EXPLORE_ROUNDS = 2
# More threads *collapse* when their time per unit is at least this many
# times fewer threads' (on an idle machine a second thread loses by 1.2x at
# most, on products too small for it; with a busy core it loses 2-25x: each
# of OpenBLAS's threads waits for the others at every call). A collapsed
# count is not measured again while exploring, the next probe of it waits at
# least COLLAPSE_WAIT seconds, and new keys start from the collapse (below).
COLLAPSE = 2.0
COLLAPSE_WAIT = 4.0
# A collapse seen by one key is the machine's state for this long (or until
# a key sees more threads win): a new key starts at the count that won there
# instead of exploring the collapsing counts, and a key whose knowledge is
# older switches to it.
EVIDENCE_FOR = 30.0
# After chunks on more threads than the winner, OpenBLAS's idle threads spin
# for a while (0.1-0.25 s measured with busy cores) and slow the winner down:
# for this long its time per unit only re-sets its reference, so the end of
# that slowdown is not taken for a core becoming free.
SETTLE = 0.3
# Sessions running in several threads share the cores; a thread's session
# starting within this many seconds of the last overlap (a fit of a
# GridSearchCV between two others) still shares them: it would otherwise set
# all threads for itself while the next fit of the other thread starts.
CONCURRENT_LINGER = 0.5
# A session in a worker thread (not the main thread) while other worker
# threads are alive shares the cores with them for its first this many
# seconds, as if their sessions were open: the fits of a thread pool
# (GridSearchCV with joblib's threading backend, two threading.Threads)
# start a few to ~30 ms apart, and the first would otherwise take every
# core for its first chunks and leave OpenBLAS's thread spinning beside
# both fits for ~0.15 s (measured, two 1-epoch fits on 10,000 rows in two
# threads: 0.14-0.17 s without this, 0.09-0.10 s with it; one after the
# other 0.15-0.16 s). A lone fit in a worker thread is not affected.
NEWCOMER_WAIT = 0.1
# A chunk on one thread whose thread got less than this share of the chunk's
# wall time on a core (its CPU time / wall time) ran on a machine with no
# free core: more threads would collapse (measured on 2 cores: 0.99-1.00
# idle, 0.2-0.5 with two busy processes). Exploring then skips them, and a
# winner at one thread is not probed while it stays so. Not judged within
# SETTLE seconds of a chunk on more threads: OpenBLAS's own spinning threads
# then take a core.
CROWDED = 0.9
# Keys remembered (the oldest is forgotten first): predict on many different
# row counts must not grow the table without end.
MAX_KEYS = 256


class _Library:
    """One BLAS library's thread count: ``get()`` and ``set(n)`` calls that
    always take effect, and whether the count is per thread."""

    __slots__ = ("name", "get", "set", "per_thread")

    def __init__(self, name, get, set, per_thread=False):
        self.name = name
        self.get = get
        self.set = set
        self.per_thread = per_thread


def _openblas_entry_points(dynlib):
    for prefix, suffix in itertools.product(("", "scipy_"), ("", "64_", "_64")):
        get = getattr(dynlib, f"{prefix}openblas_get_num_threads{suffix}", None)
        set_ = getattr(dynlib, f"{prefix}openblas_set_num_threads{suffix}", None)
        if get is not None and set_ is not None:
            return get, set_
    return None


def scan_libraries():
    """The BLAS libraries loaded in the process (NumPy's and SciPy's OpenBLAS,
    MKL, ...), as :class:`_Library` objects."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's BLAS)
    except ImportError:
        pass
    try:
        from threadpoolctl import ThreadpoolController

        controllers = ThreadpoolController().select(user_api="blas").lib_controllers
    except Exception:  # threadpoolctl missing or failing: nothing to control
        return []
    libraries = []
    for lc in controllers:
        name = lc.filepath
        if lc.internal_api == "openblas":
            if getattr(lc, "threading_layer", None) == "openmp":
                # omp_set_num_threads: per calling thread, no controlling
                # thread in threadpoolctl.
                libraries.append(_Library(name, lc.get_num_threads,
                                          lc.set_num_threads, per_thread=True))
                continue
            # A pthreads OpenBLAS has one process-wide pool; threadpoolctl's
            # set_num_threads only acts from its "controlling" thread, so call
            # OpenBLAS itself.
            entry = _openblas_entry_points(lc.dynlib)
            if entry is not None:
                libraries.append(_Library(name, entry[0], entry[1]))
            continue
        libraries.append(_Library(name, lc.get_num_threads, lc.set_num_threads))
    return libraries


def candidate_counts(bound):
    """1, 2, 4, ... and ``bound`` itself: the thread counts measured."""
    counts = []
    n = 1
    while n < bound:
        counts.append(n)
        n *= 2
    counts.append(max(1, bound))
    return counts


class _KeyStats:
    """What was measured for one (key, bound): time per unit by count."""

    __slots__ = ("queue", "exploring", "round", "best", "top", "ref", "avg",
                 "next_probe", "last_round", "wait", "drift_wait", "drifted",
                 "settle_until", "collapsed", "crowded")

    def __init__(self, candidates, start=None):
        # ``start``: the count a collapse seen elsewhere says to run (the
        # others are probed later, as for a winner)
        self.queue = ([start] if start is not None
                      else list(candidates) * EXPLORE_ROUNDS)
        self.top = max(candidates)
        self.exploring = True
        self.round = {}      # count -> time per unit measured in this round
        self.best = None
        self.ref = None      # the winner's time per unit when it won
        self.avg = None      # the winner's moving average time per unit
        self.next_probe = 0.0
        self.last_round = 0.0  # when the last round ended
        self.wait = PROBE_AFTER
        self.drift_wait = DRIFT_WAIT
        self.drifted = False  # the coming round was triggered by a drift
        self.settle_until = 0.0  # see SETTLE
        self.collapsed = None    # in this round, more threads than this collapsed
        self.crowded = False     # the winner's last chunk found no free core


class _Thread(threading.local):
    def __init__(self):
        self.depth = 0           # sessions open in this thread
        self.caps = []           # forced counts of open sessions (nesting)
        self.originals = None    # per-thread libraries' counts before
        self.full = None         # the largest of them
        self.applied = None      # count set on per-thread libraries


class BlasThreads:
    """The process's BLAS thread policy and the state it shares between
    threads. ``clock``, ``libraries`` (a callable returning :class:`_Library`
    objects) and ``cpu_clock`` (the calling thread's CPU seconds, to see a
    machine without a free core; None: not measured) can be replaced for
    tests."""

    def __init__(self, clock=time.perf_counter, libraries=scan_libraries,
                 cpu_clock=None, others_running=None, cores=None):
        self.clock = clock
        self.cpu_clock = cpu_clock  # the calling thread's CPU time, or None
        # threads of other processes runnable now (an int, None when it
        # cannot be told), on a machine of ``cores`` cores; None: not known
        self.others_running = others_running
        self.cores = cores if cores is not None else _usable_cores()
        self._scan = libraries
        self._lock = threading.Lock()
        self._libraries = None
        self._modules_seen = -1
        self._shared = []        # process-wide libraries
        self._per_thread = []
        self._originals = None   # process-wide libraries' counts before
        self._full = None        # the largest of them
        self._applied = None     # count set on the process-wide libraries
        self._active = {}        # thread id -> sessions open in it
        self._generation = 0     # changes whenever _active changes
        self._shared_until = -1.0  # sessions share the cores until then ...
        self._sharing = 1          # ... between this many threads
        self._evidence = None    # (when, count): more threads collapsed then
        self._spinning_until = -1.0  # OpenBLAS's threads may spin until then
        self._stats = {}
        self._tls = _Thread()

    # ----------------------------------------------------------- libraries
    def _refresh_libraries(self):
        # Rescan only when modules were imported since (a new import may
        # have loaded a BLAS); called under the lock with no session open.
        n_modules = len(sys.modules)
        if self._libraries is None or n_modules != self._modules_seen:
            self._modules_seen = n_modules
            try:
                self._libraries = list(self._scan())
            except Exception:
                self._libraries = []
            self._shared = [lib for lib in self._libraries if not lib.per_thread]
            self._per_thread = [lib for lib in self._libraries if lib.per_thread]

    @staticmethod
    def _read(libraries):
        counts = []
        for lib in libraries:
            try:
                n = lib.get()
            except Exception:
                n = None
            counts.append(n if isinstance(n, int) and n >= 1 else None)
        return counts

    @staticmethod
    def _write(libraries, originals, n):
        for lib, original in zip(libraries, originals):
            if original is None:
                continue
            target = original if n is None else min(n, original)
            try:
                lib.set(target)
            except Exception:  # never fail a fit over the thread count
                pass

    # ------------------------------------------------------------ sessions
    def _enter(self, forced):
        tls = self._tls
        me = threading.get_ident()
        with self._lock:
            if not self._active:
                self._refresh_libraries()
                self._originals = self._read(self._shared)
                # the count that leaves every library at its own setting
                self._full = max(filter(None, self._originals), default=None)
                self._applied = self._full
            self._active[me] = self._active.get(me, 0) + 1
            self._generation += 1
            self._note_sharing()
            full = self._full
        if tls.depth == 0:
            tls.originals = self._read(self._per_thread)
            tls.full = max(filter(None, tls.originals), default=None)
            tls.applied = tls.full
        tls.depth += 1
        bound = max(full or 0, tls.full or 0)
        if forced is not None:
            tls.caps.append(max(1, int(forced)))
        return bound

    def _exit(self, forced):
        tls = self._tls
        me = threading.get_ident()
        if forced is not None:
            tls.caps.pop()
        tls.depth -= 1
        if tls.depth == 0 and tls.applied != tls.full:
            self._write(self._per_thread, tls.originals, None)
            tls.applied = tls.full
        with self._lock:
            self._note_sharing()
            left = self._active[me] - 1
            if left:
                self._active[me] = left
            else:
                del self._active[me]
            self._generation += 1
            if not self._active and self._applied != self._full:
                self._write(self._shared, self._originals, None)
                self._applied = self._full

    def _note_sharing(self):
        # under the lock: sessions of several threads overlap now
        if len(self._active) > 1:
            now = self.clock()
            if now > self._shared_until:
                self._sharing = 1
            self._sharing = max(self._sharing, len(self._active))
            self._shared_until = now + CONCURRENT_LINGER

    def _sharing_threads(self):
        """Threads running fastbp sessions now, or until CONCURRENT_LINGER
        after the last overlap; under the lock."""
        n = len(self._active)
        if n > 1:
            return n
        if self._shared_until >= 0 and self.clock() < self._shared_until:
            return max(n, self._sharing)
        return n

    def _apply(self, n):
        """Set ``n`` threads (capped per library by the user's setting)."""
        tls = self._tls
        if tls.full is not None and tls.applied != min(n, tls.full):
            tls.applied = min(n, tls.full)
            self._write(self._per_thread, tls.originals, tls.applied)
        full = self._full
        if full is not None and self._applied != min(n, full):
            with self._lock:
                n = min(n, self._full or n)
                if self._applied != n and self._active:
                    self._write(self._shared, self._originals, n)
                    self._applied = n

    def session(self, key, largest_gemm, threads=None):
        return _Session(self, key, largest_gemm, threads)

    def forget(self):
        """Drop everything measured (tests, or after the machine changed)."""
        with self._lock:
            self._stats.clear()
            self._evidence = None

    # -------------------------------------------------------------- policy
    def _choose(self, session):
        """The count for the next chunk, and whether to measure it."""
        bound = session.bound
        cap = min(self._tls.caps, default=None)
        if session.fixed is not None or bound <= 1:
            n = session.fixed if session.fixed is not None else 1
            return min(n, cap or n), None
        with self._lock:
            concurrent = self._sharing_threads()
            generation = self._generation
        if concurrent <= 1:
            concurrent = self._newcomer_sharing(session)
        if concurrent > 1:
            stats = self._stats.get(session.stats_key)
            best = stats.best if stats is not None and stats.best else bound
            n = max(1, min(best, bound // concurrent))
            return min(n, cap or n), None
        with self._lock:
            now = self.clock()
            stats = self._stats.get(session.stats_key)
            hint = self._hint(session.candidates, now)
            if stats is None:
                while len(self._stats) >= MAX_KEYS:
                    del self._stats[next(iter(self._stats))]
                stats = self._stats[session.stats_key] = _KeyStats(
                    session.candidates, hint)
            elif (hint is not None and not stats.exploring and not stats.queue
                  and stats.best > hint and stats.last_round < self._evidence[0]):
                # learned before more threads collapsed elsewhere: run the
                # count that won there (a probe tries this one again later)
                stats.exploring = True
                stats.queue = [hint]
                stats.round = {}
                stats.collapsed = None
            if (not stats.queue and now >= stats.next_probe
                    and not (stats.crowded and stats.best == 1)):
                self._start_probe(stats, session.candidates)
            n = stats.queue[0] if stats.queue else stats.best
        if n > 1:
            room = self._room(session.own_threads)
            if room is not None and room < n:
                # No core for n threads now: fewer, not measured (they would
                # say nothing about n; an exploration or probe of n waits
                # until the cores are free, a winner at n resumes then).
                n = max(c for c in session.candidates if c <= room)
                return min(n, cap or n), None
        if cap is not None and cap < n:
            return cap, None
        return n, (stats, n, generation)

    def _room(self, own=False):
        """How many threads of this process can have a core each now (the
        cores less the threads other processes keep runnable), or None.
        ``own``: the chunk runs threads of its own (``runs_own_threads``), so
        this process's other runnable threads hold cores too."""
        if self.others_running is None or not self.cores:
            return None
        try:
            others = self.others_running(own=True) if own else self.others_running()
        except Exception:  # never fail a fit over the machine's load
            return None
        if others is None:
            return None
        return max(1, self.cores - others)

    def _ours_running(self):
        """Whether other threads of this process are runnable now (the
        load reader's count with them exceeds its count without), i.e. a
        one-thread chunk that got little of its core may have lost it to
        them: OpenBLAS's threads spinning for ~0.1 s after a NumPy product
        (the bench's GEMM peak, right before its first fit, took half of a
        one-thread chunk's core that way, which judged the machine crowded
        and kept the fit on one thread). Where that is so, a session that
        runs threads of its own does not judge the chunk: the room it reads
        before each chunk on more threads counts those threads anyway.
        False where the load cannot be read."""
        if self.others_running is None:
            return False
        try:
            with_ours = self.others_running(own=True)
            without = self.others_running()
        except Exception:  # never fail a fit over the machine's load
            return False
        return with_ours is not None and without is not None and with_ours > without

    def _newcomer_sharing(self, session):
        """How many threads a young session in a worker thread shares the
        cores with (see NEWCOMER_WAIT): the worker threads alive, or 1."""
        if self.clock() - session.started >= NEWCOMER_WAIT:
            return 1
        main = threading.main_thread()
        if threading.current_thread() is main:
            return 1
        workers = threading.active_count() - (1 if main.is_alive() else 0)
        return workers if workers > 1 else 1

    def _hint(self, candidates, now):
        """The count to start from after a recent collapse (under the lock),
        or None: the largest candidate not above the count that won."""
        evidence = self._evidence
        if evidence is None or now - evidence[0] > EVIDENCE_FOR:
            return None
        fitting = [c for c in candidates if c <= evidence[1]]
        hint = max(fitting, default=candidates[0])
        return hint if hint < max(candidates) else None

    @staticmethod
    def _start_probe(stats, candidates):
        i = candidates.index(stats.best)
        stats.queue = [candidates[j] for j in (i - 1, i + 1)
                       if 0 <= j < len(candidates)]
        stats.round = {}
        stats.collapsed = None

    def _record(self, measuring, per_unit, share=None):
        stats, n, generation = measuring
        judged = n == 1 and share is not None
        crowded = judged and share < CROWDED
        with self._lock:
            if generation != self._generation or len(self._active) > 1:
                return  # another thread's session overlapped this chunk
            now = self.clock()
            if judged:
                stats.crowded = crowded
            if stats.queue and stats.queue[0] == n:
                stats.queue.pop(0)
                old = stats.round.get(n)
                stats.round[n] = per_unit if old is None else min(old, per_unit)
                if stats.exploring and any(
                        per_unit >= COLLAPSE * t for c, t in stats.round.items() if c < n):
                    # n threads collapse, and more would too: not again
                    stats.queue = [c for c in stats.queue if c < n]
                if stats.exploring and crowded:
                    # no free core: more threads would collapse
                    stats.queue = [c for c in stats.queue if c <= n]
                    stats.collapsed = n
                if not stats.queue:
                    self._finish_round(stats, now)
                    self._learn(stats, now)
            elif n == stats.best:
                if crowded:
                    self._evidence = (now, 1)
                stats.avg = (per_unit if stats.avg is None else
                             (1 - SMOOTHING) * stats.avg + SMOOTHING * per_unit)
                if now < stats.settle_until:
                    stats.ref = stats.avg  # OpenBLAS's threads still spin
                    return
                slower = stats.avg > stats.ref * DRIFT
                faster = stats.avg < stats.ref / DRIFT
                if (slower and stats.best > 1) or (faster and stats.best < stats.top):
                    # The machine changed (a core became busy, or free):
                    # probe now, but not more often than every drift_wait s
                    # while drift rounds keep losing (a noisy machine).
                    stats.next_probe = min(stats.next_probe, max(
                        now, stats.last_round + stats.drift_wait))
                    stats.drifted = True
                    # the probe competes with what the winner does now, not
                    # with an average that still remembers the old machine
                    stats.avg = per_unit
                elif slower or faster:
                    stats.ref = stats.avg  # no count to try that way

    @staticmethod
    def _finish_round(stats, now):
        before = stats.best
        if stats.exploring:
            stats.exploring = False
            best = min(stats.round, key=lambda c: (stats.round[c], c))
            won = True
        else:
            best, won = stats.best, False
            for c, t in sorted(stats.round.items(), key=lambda ct: ct[1]):
                margin = SWITCH_UP_MARGIN if c > stats.best else SWITCH_MARGIN
                if t < margin * stats.avg:
                    best, won = c, True
                break
        # the winner's time per unit in this round (a probe round measures
        # only the others: the winner's is its present average)
        base = stats.round[best] if won else stats.avg
        if any(c > best and t >= COLLAPSE * base for c, t in stats.round.items()):
            stats.collapsed = min(best, stats.collapsed or best)
        if won:
            stats.best = best
            stats.ref = stats.avg = stats.round[best]
            stats.wait = PROBE_AFTER
            stats.drift_wait = DRIFT_WAIT
        else:
            # The winner stays; its present speed is the new reference, so a
            # drift already seen does not trigger the next round at once.
            stats.ref = stats.avg
            stats.wait = min(2 * stats.wait, PROBE_AFTER_MAX)
            if stats.drifted:
                stats.drift_wait = min(2 * stats.drift_wait, DRIFT_WAIT_MAX)
            if stats.collapsed is not None:
                # a probe that collapses costs a slow chunk and the winner's
                # slowdown after it (SETTLE): not every second
                stats.wait = min(max(stats.wait, COLLAPSE_WAIT), PROBE_AFTER_MAX)
        if max(stats.round) > best or (before is not None and before > best):
            stats.settle_until = now + SETTLE
        stats.drifted = False
        stats.next_probe = now + stats.wait
        stats.last_round = now
        stats.round = {}

    def _learn(self, stats, now):
        """After a round (under the lock): keep what it says about the
        machine for other keys."""
        if stats.collapsed is not None and (self.cpu_clock is None or stats.crowded):
            # More threads collapsing says something about the machine only
            # when one thread found no free core either: on a machine with a
            # free core it is this work's shape (tiny products on two threads
            # at batch 32), and other keys explore for themselves. Without a
            # CPU clock there is no telling, so it counts for the machine.
            self._evidence = (now, stats.collapsed)
        elif self._evidence is not None and stats.best > self._evidence[1]:
            self._evidence = None  # more threads won: a core is free again


class _Session:
    __slots__ = ("_owner", "key", "bound", "fixed", "candidates", "stats_key",
                 "_forced", "_measuring", "_start", "_cpu_start", "threads",
                 "started", "blas_threads", "_tiny", "own_threads")

    def __init__(self, owner, key, largest_gemm, threads):
        self._owner = owner
        self.key = key
        self._forced = threads
        self.fixed = threads
        self._tiny = largest_gemm < TINY_GEMM
        if threads is None and self._tiny:
            self.fixed = 1
        self.bound = 0
        self.candidates = None
        self.stats_key = None
        self._measuring = None
        self._start = None
        self._cpu_start = None
        self.threads = None   # the count of the current chunk
        self.blas_threads = None  # BLAS's count in it (limit_blas)
        self.started = None   # when the session was entered
        self.own_threads = False  # see runs_own_threads

    def __enter__(self):
        self.started = self._owner.clock()
        self.bound = self._owner._enter(self._forced)
        if self.fixed is not None:
            self.fixed = max(1, min(int(self.fixed), max(self.bound, 1)))
            if self._forced is not None and self.bound >= 1:
                self._owner._apply(self.fixed)  # in force for the whole block
        self.candidates = candidate_counts(self.bound)
        self.stats_key = (self.key, self.bound)
        return self

    def begin(self):
        """Before a chunk: set the BLAS thread count for it; returns it (None
        when no BLAS library can be controlled)."""
        owner = self._owner
        if self.bound < 1:
            return None
        n, self._measuring = owner._choose(self)
        owner._apply(n)
        self.threads = self.blas_threads = n
        self._start = owner.clock() if self._measuring is not None else None
        cpu = owner.cpu_clock
        self._cpu_start = None
        if (cpu is not None and self._start is not None and n == 1
                and self._start >= owner._spinning_until):
            self._cpu_start = cpu()
        return n

    def most_threads(self):
        """The most threads this session's chunks could use on this machine
        (inside the ``with``): the user's setting (1 for products under
        TINY_GEMM), whatever ``FASTBP_BLAS_THREADS`` forces and whatever the
        policy picks chunk by chunk; 0 when no BLAS library can be
        controlled. train_epoch shapes its work by it, so the numbers may
        depend on the user's setting, never on the policy's picks."""
        if self.bound < 1:
            return 0
        return 1 if self._tiny else self.bound

    def runs_own_threads(self):
        """Say that this session's chunks given more than one thread run
        threads of fastbp's own (train_epoch's helper) with BLAS on one:
        then any other runnable thread of this process holds a core too
        (OpenBLAS's threads spinning after a NumPy product, another Python
        thread's work), where a BLAS-threaded chunk would have used
        OpenBLAS's spinning threads itself. Such threads cap the count like
        other processes' (a chunk beside them runs on fewer threads, not
        measured), so that a second thread is not judged on a core it did
        not have."""
        self.own_threads = True

    def limit_blas(self, n):
        """For the rest of this chunk, BLAS calls run on at most ``n``
        threads: the chunk runs threads of its own instead (train_epoch's
        helper thread), which must not compete with OpenBLAS's for the
        cores. The chunk is still measured, and judged, as running on the
        count :meth:`begin` returned."""
        if self.threads is None or n >= self.blas_threads:
            return
        self._owner._apply(max(1, int(n)))
        self.blas_threads = max(1, int(n))

    def end(self, units):
        """After a chunk of ``units`` units of work."""
        owner = self._owner
        if self.blas_threads is not None and self.blas_threads > 1:
            owner._spinning_until = owner.clock() + SETTLE
        if self._start is None:
            return
        elapsed = owner.clock() - self._start
        share = None
        if self._cpu_start is not None and elapsed > 0:
            share = (owner.cpu_clock() - self._cpu_start) / elapsed
            if share < CROWDED and self.own_threads and owner._ours_running():
                share = None  # our own threads took the core (see _ours_running)
        self._start = self._cpu_start = None
        if units > 0 and elapsed >= 0:
            owner._record(self._measuring, elapsed / units, share)

    def __exit__(self, *exc):
        self._start = None
        self._owner._exit(self._forced)
        return False


def _thread_cpu_clock():
    """``time.thread_time`` where it resolves a chunk, else None. Windows
    counts a thread's CPU time in scheduler ticks (15.6 ms: most of a chunk)
    while reporting a 100 ns resolution, so it is not used there."""
    if sys.platform == "win32":
        return None
    try:
        if time.get_clock_info("thread_time").resolution <= 1e-6:
            return time.thread_time
    except (AttributeError, ValueError, OSError):
        pass
    return None


def _usable_cores():
    """Cores this process may run on (its affinity mask where known)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _others_running_reader(proc="/proc"):
    """A callable returning how many threads of *other* processes are
    runnable at this instant (with ``own=True``: of other processes, and of
    this one but the caller), or None where that cannot be read.

    Linux: the kernel's count of runnable threads (``/proc/loadavg``, 4th
    field, machine-wide) less this process's own threads in state R
    (``/proc/self/task/*/stat``: the caller, and OpenBLAS's threads while
    they spin; with ``own``, only the caller). Costs ~30 us, read only
    before a chunk that would run on more than one thread. Not used when
    this process may run on fewer cores than the machine has (an affinity
    mask, a cpuset): the count is then the whole machine's, not that of our
    cores."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        if len(os.sched_getaffinity(0)) != os.cpu_count():
            return None
    except (AttributeError, OSError):
        return None

    def others_running(own=False):
        try:
            with open(f"{proc}/loadavg", "rb") as f:
                running = int(f.read().split()[3].split(b"/")[0])
            ours = 0
            for tid in os.listdir(f"{proc}/self/task"):
                try:
                    with open(f"{proc}/self/task/{tid}/stat", "rb") as f:
                        stat = f.read()
                except OSError:  # the thread ended meanwhile
                    continue
                # the state follows the command name, which is in parentheses
                end = stat.rfind(b")")
                if end >= 0 and stat[end + 2:end + 3] == b"R":
                    ours += 1
        except (OSError, ValueError, IndexError):
            return None
        if own:   # (the caller is one of ours, whatever the states read)
            return max(0, running - ours) + max(0, ours - 1)
        return max(0, running - ours)

    if others_running() is None:
        return None
    return others_running


_policy = BlasThreads(cpu_clock=_thread_cpu_clock(),
                      others_running=_others_running_reader())


def forced_threads():
    """The count forced by the ``FASTBP_BLAS_THREADS`` environment variable,
    or None (unset or empty: measure)."""
    value = os.environ.get("FASTBP_BLAS_THREADS", "").strip()
    if not value:
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError("FASTBP_BLAS_THREADS must be a positive integer "
                         f"(a BLAS thread count), got {value!r}.")
    return n


def blas_session(key, largest_gemm, *, threads=None):
    """Context manager for one kernel call made of chunks (see the module
    docstring). ``threads`` (or else the ``FASTBP_BLAS_THREADS`` environment
    variable) forces a count for the session and for sessions nested in it in
    the same thread, capped by the user's setting, without measuring."""
    if threads is None:
        threads = forced_threads()
    return _policy.session(key, largest_gemm, threads)


def blas_limit(threads):
    """Run a block (code that is not chunked, e.g. an optimizer's own BLAS
    calls) on at most ``threads`` BLAS threads, restoring the user's setting
    afterwards exactly like a session; sessions opened inside it in the same
    thread use at most that many."""
    return _policy.session(None, 0, threads)


class _Between:
    """See :func:`blas_between`."""

    def __init__(self, policy, threads):
        self._policy = policy
        self._threads = max(1, int(threads))
        self._session = None

    def __enter__(self):
        self._session = self._policy.session(None, 0, None)
        self._session.__enter__()
        self.settle()
        return self

    def settle(self):
        """Set the block's count again (after a chunked call inside it, which
        leaves the count its last chunk ran on)."""
        if self._session is not None and self._session.bound >= 1:
            self._policy._apply(self._threads)

    def __exit__(self, *exc):
        session, self._session = self._session, None
        return session.__exit__(*exc)


def blas_between(threads):
    """Run a block whose own BLAS calls (scipy's L-BFGS-B between two loss
    evaluations: level-1 products over the parameters) use ``threads``
    threads, while the chunked calls it makes are *not* capped (unlike
    :func:`blas_limit`): they choose their threads as always. Call
    ``settle()`` on the context after each such call. OpenBLAS's threads
    keep spinning for a while after a threaded call; spinning beside
    train_epoch's or loss_grad's helper thread, they took the core it runs
    on (L-BFGS, workload W: each loss evaluation 0.12 s instead of 0.063 s
    right after L-BFGS-B's 2-thread ``ddot`` calls). The user's setting is
    restored when the block ends, exactly like a session."""
    return _Between(_policy, threads)
