"""bpfast.sklearn: the estimators pass scikit-learn's own checks, and minimise its objective."""
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from bpfast.sklearn import BPClassifier, BPRegressor  # noqa: E402

ESTIMATORS = [BPClassifier(), BPRegressor(), BPClassifier(dtype="float32"),
              BPRegressor(dtype="float32"), BPClassifier(solver="sgd"),
              BPClassifier(solver="lbfgs"), BPRegressor(solver="lbfgs")]


def expected_failures(estimator):
    """One, in float32 only: scikit-learn's weight equivalence check compares a fit with weights
    and one with repeated rows to rtol = 1e-7, below float32's rounding (6e-8 a operation): the
    two sums round differently, ~1e-7 apart (they agree to 1e-6; float64 passes). The check
    trains on fewer rows than a mini-batch, so it holds there for every solver; on larger data
    it holds for L-BFGS only — a repeated row changes shuffled mini-batches, a weight does not
    (`test_sample_weight.py` tests the full-batch equivalence)."""
    if estimator.dtype == "float32":
        return {"check_sample_weight_equivalence_on_dense_data":
                "float32 rounding (~1e-7) is above the check's rtol of 1e-7"}
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failures)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


# --- scikit-learn's objective, exactly -------------------------------------------------------

def classification(kind, n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    if kind == "binary":
        y = (X[:, 0] + X[:, 1] > 0).astype(int)
    elif kind == "multiclass":
        y = np.digitize(X[:, 0] + 0.5 * X[:, 2], [-0.5, 0.5])
    else:
        y = np.stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] > 0.5], axis=1).astype(int)
    return X, y


def regression(outputs, n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    Y = np.stack([np.sin(X[:, 0]) + X[:, 1] ** 2, X[:, 2] * X[:, 3]], axis=1)[:, :outputs]
    return X, Y.ravel() if outputs == 1 else Y


def assert_same_network(ours, theirs, rtol):
    for mine, other in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(mine, other, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel", 1])
def test_lbfgs_minimises_scikit_learns_objective(kind):
    """The same data, seed and settings as MLPClassifier or MLPRegressor with L-BFGS: the same
    iterations, the same loss and the same weights (the L2 term, the ½ of the squared error,
    the output layer and the initial weights all have to be scikit-learn's for that). Not with
    several regression outputs: scikit-learn's L-BFGS then gets the loss of the mean over the
    outputs with the gradient of their sum, a pair that is not a function and its gradient;
    bpfast's minimises the sum (what scikit-learn's SGD and Adam descend)."""
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    ours, theirs = ((BPRegressor, MLPRegressor) if isinstance(kind, int)
                    else (BPClassifier, MLPClassifier))
    X, y = regression(kind) if isinstance(kind, int) else classification(kind)
    settings = dict(hidden_layer_sizes=(7,), activation="tanh", solver="lbfgs", alpha=0.3,
                    max_iter=40, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a, b = ours(**settings).fit(X, y), theirs(**settings).fit(X, y)
    assert a.n_iter_ == b.n_iter_ == 40
    assert a.loss_ == pytest.approx(b.loss_, rel=1e-9)
    assert a.out_activation_ == b.out_activation_
    assert_same_network(a, b, 1e-7)
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("estimator,data", [
    ("classifier", "multiclass"), ("classifier", "binary"), ("regressor", 2)])
@pytest.mark.parametrize("solver", [dict(solver="sgd", momentum=0.9),
                                    dict(solver="sgd", momentum=0.0),
                                    dict(solver="adam", epsilon=1e-30)],
                         ids=["sgd-nesterov", "sgd", "adam"])
def test_stochastic_steps_are_scikit_learns(estimator, data, solver):
    """Unshuffled mini-batches that divide the data (scikit-learn's α/B on a shorter last batch
    and its ε before Adam's bias correction are the two places where the steps differ, both
    documented): the weights after 5 epochs and the loss curve are scikit-learn's."""
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    ours, theirs = ((BPRegressor, MLPRegressor) if estimator == "regressor"
                    else (BPClassifier, MLPClassifier))
    X, y = regression(data) if estimator == "regressor" else classification(data)
    settings = dict(hidden_layer_sizes=(6,), activation="relu", alpha=0.01, batch_size=20,
                    learning_rate_init=0.05, max_iter=5, shuffle=False, random_state=3,
                    tol=0.0, **solver)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a, b = ours(**settings).fit(X, y), theirs(**settings).fit(X, y)
    assert_same_network(a, b, 1e-9)
    np.testing.assert_allclose(a.loss_curve_[0], b.loss_curve_[0], rtol=0.05)


def test_partial_fit_continues_the_optimizer_as_one_fit_would():
    X, y = classification("multiclass")
    settings = dict(hidden_layer_sizes=(6,), solver="adam", shuffle=False, random_state=0,
                    max_iter=3, tol=0.0, n_iter_no_change=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        whole = BPClassifier(**settings).fit(X, y)
    parts = BPClassifier(**settings)
    for _ in range(3):
        parts.partial_fit(X, y, classes=np.unique(y))
    assert_same_network(parts, whole, 0)
    assert parts.t_ == whole.t_ == 3 * len(X)


def test_a_fitted_estimator_has_scikit_learns_attributes_and_the_network():
    X, y = classification("multiclass")
    clf = BPClassifier(hidden_layer_sizes=(8, 4), max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X.astype(np.float32), y)
    assert [c.shape for c in clf.coefs_] == [(5, 8), (8, 4), (4, 3)]
    assert clf.network_.sizes == (5, 8, 4, 3) and clf.network_.dtype == np.float32
    assert clf.predict_proba(X.astype(np.float32)).dtype == np.float32
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1, rtol=1e-6)
    assert clf.out_activation_ == "softmax" and clf.n_layers_ == 4 and clf.n_outputs_ == 3
    assert len(clf.loss_curve_) == clf.n_iter_ == 20 and clf.best_loss_ == min(clf.loss_curve_)
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])


def test_early_stopping_keeps_the_best_validation_score():
    X, y = classification("multiclass", n=400)
    clf = BPClassifier(hidden_layer_sizes=(16,), early_stopping=True, n_iter_no_change=3,
                       max_iter=500, learning_rate_init=0.05, random_state=0).fit(X, y)
    assert clf.n_iter_ < 500 and len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.best_loss_ is None


@pytest.mark.parametrize("parameter,value,message", [
    ("hidden_layer_sizes", (4, 0), "hidden_layer_sizes must hold integers > 0"),
    ("activation", "softplus", "activation must be one of"),
    ("solver", "newton", "solver must be one of"),
    ("alpha", -1.0, "alpha must be ≥ 0"),
    ("learning_rate_init", 0.0, "learning_rate_init must be > 0"),
    ("momentum", 1.0, "momentum must be < 1"),
    ("validation_fraction", 1.0, "validation_fraction must be < 1"),
    ("batch_size", 0, "batch_size must be an integer ≥ 1"),
    ("dtype", "float16", "dtype must be None"),
])
def test_bad_parameters_are_refused_by_name(parameter, value, message):
    X, y = classification("binary")
    with pytest.raises(ValueError, match=message):
        BPClassifier(**{parameter: value}).fit(X, y)


# --- where practitioners use them ------------------------------------------------------------

def test_pipelines_grid_searches_cross_validation_clones_and_pickles():
    import pickle

    from joblib import parallel_backend
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = classification("multiclass", n=300)
    pipe = make_pipeline(StandardScaler(), BPClassifier(hidden_layer_sizes=(16,), max_iter=300,
                                                        random_state=0))
    assert cross_val_score(pipe, X, y, cv=3).mean() > 0.8
    grid = {"bpclassifier__alpha": [1e-4, 1e-2], "bpclassifier__solver": ["adam", "lbfgs"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        serial = GridSearchCV(pipe, grid, cv=3).fit(X, y)
        with parallel_backend("threading", n_jobs=2):
            threads = GridSearchCV(pipe, grid, cv=3, n_jobs=2).fit(X, y)
        processes = GridSearchCV(pipe, grid, cv=3, n_jobs=2).fit(X, y)
    np.testing.assert_allclose(threads.cv_results_["mean_test_score"],
                               serial.cv_results_["mean_test_score"])
    np.testing.assert_allclose(processes.cv_results_["mean_test_score"],
                               serial.cv_results_["mean_test_score"])
    fitted = serial.best_estimator_
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict_proba(X), fitted.predict_proba(X))
    assert clone(fitted).get_params()["bpclassifier__alpha"] == fitted.get_params()[
        "bpclassifier__alpha"]


def test_pandas_data_frames_and_their_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = classification("binary")
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)])
    clf = BPClassifier(hidden_layer_sizes=(4,), max_iter=50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(frame, pd.Series(y))
    np.testing.assert_array_equal(clf.feature_names_in_, frame.columns)
    assert clf.predict(frame).shape == (len(X),)


def test_importing_bpfast_does_not_import_scikit_learn():
    import subprocess
    import sys
    code = "import sys, bpfast; print('sklearn' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True).stdout.strip() == "False"


def test_weights_with_lbfgs_are_scikit_learns_and_class_weight_weighs_the_classes():
    """L-BFGS with sample_weight: scikit-learn's iterations and weights (its objective divides
    the L2 term by the weights' sum); class_weight is sample_weight by class."""
    from sklearn.neural_network import MLPClassifier
    X, y = classification("multiclass")
    w = np.random.default_rng(5).integers(0, 4, len(X)).astype(float)
    settings = dict(hidden_layer_sizes=(7,), activation="tanh", solver="lbfgs", alpha=0.3,
                    max_iter=30, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = BPClassifier(**settings).fit(X, y, sample_weight=w)
        theirs = MLPClassifier(**settings).fit(X, y, sample_weight=w)
        assert ours.n_iter_ == theirs.n_iter_ == 30
        assert_same_network(ours, theirs, 1e-7)
        balanced = {0: 2.0, 1: 1.0, 2: 0.5}
        by_class = BPClassifier(class_weight=balanced, **settings).fit(X, y)
        by_sample = BPClassifier(**settings).fit(X, y, sample_weight=np.vectorize(
            balanced.get)(y))
    assert_same_network(by_class, by_sample, 0)


def test_partial_fit_and_warm_start_refuse_what_would_change_the_task():
    X, y = classification("multiclass")
    clf = BPClassifier(hidden_layer_sizes=(4,), random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, y)
    clf.partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="is not the same as on the first call"):
        clf.partial_fit(X, y, classes=[0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"y holds labels \[7\] that were not in classes_"):
        clf.partial_fit(X, np.where(y == 2, 7, y))
    clf.set_params(hidden_layer_sizes=(5,))
    with pytest.raises(ValueError, match="hidden_layer_sizes changed to \\[5\\]"):
        clf.partial_fit(X, y)
    with pytest.raises(AttributeError, match="has no attribute 'partial_fit'") as caught:
        BPClassifier(solver="lbfgs").partial_fit(X, y, classes=[0, 1, 2])
    assert "only available for stochastic optimizers" in str(caught.value.__cause__)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        BPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])


def test_warm_start_continues_the_same_network():
    X, y = regression(1)
    reg = BPRegressor(hidden_layer_sizes=(6,), solver="sgd", max_iter=3, warm_start=True,
                      random_state=0, learning_rate_init=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y)
        first = reg.network_
        before = reg.loss_curve_[-1]
        reg.fit(X, y)
    assert reg.network_ is first and len(reg.loss_curve_) == 6
    assert reg.loss_curve_[-1] < before
