"""scikit-learn callbacks (``sklearn.callback``) for fastbp's estimators.

scikit-learn 1.9 ships a callback framework -- :class:`sklearn.callback.
CallbackSupportMixin`, :class:`~sklearn.callback.ProgressBar`,
:class:`~sklearn.callback.ScoringMonitor` -- that its own MLP does not use.
fastbp's estimators support it the way :class:`~sklearn.linear_model.
LogisticRegression` does:

* the fit (or ``partial_fit``) call is the root task; its context is made by
  ``estimator._init_callback_context`` so that a Pipeline or a search that
  propagates its callbacks into fastbp's fit attaches fastbp's task tree to
  its own;
* every epoch of sgd / adam is one subtask (``task_name="epoch"``), and every
  L-BFGS iteration is one subtask (``task_name="lbfgs-iter"``) -- with the
  same extra, empty trailing subtask that scikit-learn's L-BFGS bridge has;
* hooks run *between* epochs, in Python, never inside the compiled loop, so a
  fit without callbacks pays nothing per batch;
* ``fitted_estimator`` is built lazily (only when a callback asks for it)
  from copies of the weights, so it stays valid while training goes on;
* an ``on_fit_task_end`` hook that returns True stops the training after
  the current epoch (or L-BFGS iteration).

The teardown of callbacks is done by scikit-learn's ``_fit_context``
decorator, which wraps ``fit`` and ``partial_fit``.

This module is private: users only ever call ``set_callbacks``.
"""

__all__ = ["FitCallbacks"]


class FitCallbacks:
    """The callback hooks of one ``fit`` / ``partial_fit`` call.

    Parameters
    ----------
    estimator : BPClassifier or BPRegressor
        The estimator being fitted (it already has ``classes_``,
        ``n_outputs_``, ``out_activation_`` ... set).
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        The training data, as the estimator will use it.
    Y : ndarray of shape (n_samples, n_outputs)
        The encoded training targets (one-hot for classifiers).
    sample_weight : ndarray of shape (n_samples,) or None
        Sample weights, passed to the callbacks as ``metadata``.
    max_subtasks : int or None
        Upper bound on the number of epochs / iterations of this call.
    """

    def __init__(self, estimator, X, Y, sample_weight, max_subtasks):
        self.estimator = estimator
        self.ctx = estimator._init_callback_context(max_subtasks=max_subtasks)
        # Without callbacks, skip creating per-epoch subcontexts altogether.
        self.active = bool(getattr(self.ctx, "_callbacks", None))
        self._iter_ctx = None
        if self.active:
            self.ctx.call_on_fit_task_begin(
                estimator=estimator, **self._data(X, Y, sample_weight)
            )

    def __bool__(self):
        # ``if callbacks:`` in the training loops: False when no callback is set.
        return self.active

    # ------------------------------------------------------------ helpers
    def _data(self, X, Y, sample_weight):
        """Keyword arguments of the hooks; y is decoded lazily."""
        est = self.estimator
        return dict(
            X=X,
            y=(lambda: est._validation_target(Y)) if Y is not None else None,
            metadata={"sample_weight": sample_weight} if sample_weight is not None else None,
        )

    def _reconstruction(self, params=None):
        """Lazy fitted attributes: copies of the weights as they are now."""
        est = self.estimator

        def attrs():
            net = est._net
            p = est._params if params is None else params
            coefs, intercepts = net.views(p.astype(net.dtype, copy=True))
            return {
                "coefs_": coefs,
                "intercepts_": intercepts,
                "n_iter_": getattr(est, "n_iter_", 0),
            }

        return attrs

    # -------------------------------------------------------------- hooks
    def begin_iteration(self, X, Y, sample_weight, task_name="epoch", params=None):
        """Open the subtask of the next epoch / iteration and call its begin hooks."""
        if not self.active:
            return
        self._iter_ctx = self.ctx.subcontext(task_name=task_name)
        self._iter_ctx.call_on_fit_task_begin(
            estimator=self.estimator,
            reconstruction_attributes=self._reconstruction(params),
            **self._data(X, Y, sample_weight),
        )

    def end_iteration(self, X, Y, sample_weight, params=None):
        """Close the current subtask; returns True when a callback asks to stop."""
        if not self.active or self._iter_ctx is None:
            return False
        ctx, self._iter_ctx = self._iter_ctx, None
        return bool(
            ctx.call_on_fit_task_end(
                estimator=self.estimator,
                reconstruction_attributes=self._reconstruction(params),
                **self._data(X, Y, sample_weight),
            )
        )

    def close_iteration(self):
        """End a subtask that never ran (an interrupted epoch, the trailing
        L-BFGS one) as an empty task, so every begin has its end."""
        if self.active and self._iter_ctx is not None:
            ctx, self._iter_ctx = self._iter_ctx, None
            ctx.call_on_fit_task_end(estimator=self.estimator)

    def end_fit(self, X, Y, sample_weight):
        """Call the end hooks of the root task (the whole fit)."""
        if not self.active:
            return
        self.close_iteration()
        self.ctx.call_on_fit_task_end(
            estimator=self.estimator,
            reconstruction_attributes=self._reconstruction(),
            **self._data(X, Y, sample_weight),
        )


class LbfgsBridge:
    """``scipy.optimize.minimize`` callback that maps L-BFGS iterations onto
    subtasks, as scikit-learn's ``_LbfgsCallbackBridge`` does.

    The first iteration's subtask is opened at construction; each call ends
    the iteration scipy just finished and opens the next one; ``close`` ends
    the last, never-run one as an empty task.
    """

    def __init__(self, callbacks, X, Y, sample_weight, x0):
        self.cb = callbacks
        self.data = (X, Y, sample_weight)
        self.stopped = False  # set when a callback asked to stop
        self.cb.begin_iteration(*self.data, task_name="lbfgs-iter", params=x0)

    def __call__(self, xk):
        stop = self.cb.end_iteration(*self.data, params=xk)
        self.cb.begin_iteration(*self.data, task_name="lbfgs-iter", params=xk)
        return stop

    def close(self):
        self.cb.close_iteration()


class TextProgress:
    """A plain-text progress line, for when rich (and so scikit-learn's
    :class:`~sklearn.callback.ProgressBar`) is not installed.

    Prints ``epoch i/max_iter  loss ...`` on one line of ``stream``
    (rewritten in place with a carriage return when it is a terminal) after
    each epoch or L-BFGS iteration of a fastbp estimator. It is
    auto-propagated, so it can be set on a Pipeline or a search.

    Parameters
    ----------
    stream : file-like, default=None
        Where to write; ``sys.stderr`` when None.
    """

    max_propagation_depth = None

    def __init__(self, stream=None):
        self.stream = stream

    def _out(self):
        import sys

        return self.stream if self.stream is not None else sys.stderr

    def setup(self, estimator, context):
        self._printed = False

    def on_fit_task_begin(self, estimator, context):
        pass

    def on_fit_task_end(self, estimator, context):
        if context.task_name not in ("epoch", "lbfgs-iter") or context.parent is None:
            return
        curve = getattr(estimator, "loss_curve_", None) or [float("nan")]
        total = context.parent.max_subtasks
        if context.task_name == "lbfgs-iter" and total:
            total -= 1  # the trailing, empty L-BFGS subtask
        out = self._out()
        tty = getattr(out, "isatty", lambda: False)()
        word = "epoch" if context.task_name == "epoch" else "iteration"
        line = f"  {context.estimator_name} {word} {context.task_id + 1}/{total}  loss {curve[-1]:.5f}"
        out.write(("\r" + line) if tty else (line + "\n"))
        out.flush()
        self._printed = tty

    def teardown(self, estimator, context):
        if getattr(self, "_printed", False):
            self._out().write("\n")
            self._out().flush()
        self._printed = False
