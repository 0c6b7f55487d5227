"""Plots of a fit's history (matplotlib, the optional extra ``fastbp[plot]``)."""

__all__ = ["plot_loss_curve"]

_MPL_HINT = (
    "plot_loss_curve needs matplotlib, which is an optional dependency of "
    "fastbp: pip install \"fastbp[plot]\" (or pip install matplotlib)."
)


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_MPL_HINT) from exc
    return plt


def plot_loss_curve(estimator, ax=None, *, label=None, validation=True):
    """Draw the training loss per epoch and, when present, the validation scores.

    Works with any fitted estimator that has a ``loss_curve_``: fastbp's
    :class:`~fastbp.BPClassifier` / :class:`~fastbp.BPRegressor` and
    scikit-learn's MLPs alike; a :class:`~sklearn.pipeline.Pipeline` or a
    fitted search (``best_estimator_``) is unwrapped to its final estimator.

    Parameters
    ----------
    estimator : estimator instance
        A fitted estimator with a ``loss_curve_`` attribute (one value per
        epoch for sgd / adam, per iteration for lbfgs).
    ax : matplotlib.axes.Axes, default=None
        Axes to draw on; a new figure is made when None.
    label : str, default=None
        Legend label of the loss curve; defaults to the estimator's class
        name and backend.
    validation : bool, default=True
        Also draw ``validation_scores_`` (early stopping) on a second y-axis
        on the right, when the estimator has them.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The axes with the loss curve. When validation scores were drawn, the
        second axes is ``ax.validation_ax_``.

    Raises
    ------
    ImportError
        If matplotlib is not installed (``pip install "fastbp[plot]"``).
    sklearn.exceptions.NotFittedError
        If the estimator has no ``loss_curve_``.

    See Also
    --------
    fastbp.BPClassifier : Its ``loss_curve_`` and ``validation_scores_``.
    fastbp.BPRegressor : Its ``loss_curve_`` and ``validation_scores_``.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_digits
    >>> from fastbp import BPClassifier, plot_loss_curve
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = BPClassifier(max_iter=20, early_stopping=True, random_state=0)
    >>> ax = plot_loss_curve(clf.fit(X / 16, y))
    >>> ax.get_xlabel()
    'epoch'
    """
    from sklearn.exceptions import NotFittedError

    plt = _pyplot()

    est = estimator
    if hasattr(est, "best_estimator_"):
        est = est.best_estimator_
    if hasattr(est, "steps"):
        est = est.steps[-1][1]
    loss_curve = getattr(est, "loss_curve_", None)
    if loss_curve is None:
        raise NotFittedError(
            f"{type(est).__name__} has no loss_curve_: fit it first (with an "
            "iterative solver) before plotting its loss curve."
        )

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    if label is None:
        label = type(est).__name__
        if getattr(est, "backend_", None):
            label += f" ({est.backend_})"
    epochs = range(1, len(loss_curve) + 1)
    solver = getattr(est, "solver", None)
    ax.plot(epochs, loss_curve, color="C0", label=f"{label} training loss")
    ax.set_xlabel("iteration" if solver == "lbfgs" else "epoch")
    ax.set_ylabel("training loss")
    ax.grid(True, alpha=0.3)

    handles, labels = ax.get_legend_handles_labels()
    scores = getattr(est, "validation_scores_", None)
    if validation and scores:
        ax2 = ax.twinx()
        ax2.plot(range(1, len(scores) + 1), scores, color="C1",
                 label="validation score")
        ax2.set_ylabel("validation score")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
        ax.validation_ax_ = ax2
    ax.legend(handles, labels, loc="center right")
    ax.set_title(f"{type(est).__name__}: loss curve")
    return ax
