"""scikit-learn estimators: `BPClassifier` and `BPRegressor`, bpfast's kernels behind
scikit-learn's `MLPClassifier` and `MLPRegressor` interface (``pip install "bpfast[sklearn]"``).

They minimise scikit-learn's objective with its defaults, so that a grid tuned on one transfers
to the other. In the slides' notation, for a mini-batch of B examples (all N with L-BFGS):

    classifier   C_k = log-loss of softmax outputs (several classes), or of one logistic output
                 (two classes), or of one logistic output per label (multilabel) — bpfast's
                 cross-entropy after softmax or sigmoid; objective (1/B) Σ_k C_k + α/(2B) Σ‖w‖²
    regressor    C_k = ½ Σ_j (a_j − y_j)², identity outputs: half bpfast's quadratic cost;
                 objective (1/B) Σ_k C_k + α/(2B) Σ‖w‖²

So ``alpha`` = α becomes `fit`'s ``l2`` = α/B for the classifier; for the regressor, whose C_k
is half bpfast's, each step of SGD or momentum takes η/2 on bpfast's gradient with l2 = 2α/B,
and Adam (insensitive to the gradient's scale) takes η with l2 = 2α/B and ε doubled. L-BFGS
minimises the same objective over all N examples, with scipy's L-BFGS-B as scikit-learn calls
it (``max_iter``, ``max_fun``, ``gtol=tol``). The weights start as scikit-learn's do (Glorot's
uniform law, drawn in the same order from ``random_state``): the same seed gives the same
initial network.

Where they differ from scikit-learn, by design: only the constant learning rate (no
``learning_rate`` schedule); warm_start continues the optimizer's state (momentum, Adam's
moments and step count) as partial_fit does, where scikit-learn starts a new optimizer; α/B
uses the configured B on the last, shorter mini-batch of an epoch too; Adam is PyTorch's (ε
added to √r̂ after the bias correction, where scikit-learn adds it before: the same steps once
√r ≫ ε); ``loss_`` per epoch is the mean of the costs of the epoch's examples, each taken with
the parameters in force at its step, plus the penalty at the epoch's end.

bpfast's own parameters: ``cost`` and ``output_activation`` (other losses and output layers
than scikit-learn's), ``dtype`` (float32 data train in float32 by default), ``n_threads``; the
fitted `bpfast.Network` is ``network_``, for the slides' view of it.
"""
import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from ._validation import check_sample_weight
from .network import Network

#: scikit-learn's activation names, as bpfast's.
ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
SOLVERS = ("lbfgs", "sgd", "adam")


def _check_real(value, name, low=None, high=None, low_open=False, high_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}.")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '≥'} {low}, got {value!r}.")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '≤'} {high}, got {value!r}.")
    return float(value)


def _check_int(value, name, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer ≥ {low}, got {value!r}.")
    return int(value)


def _stochastic(estimator):
    """partial_fit exists for the stochastic solvers only (hasattr says so, as scikit-learn's)."""
    if estimator.solver not in ("sgd", "adam"):
        raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                             f"{estimator.solver} is not stochastic.")
    return True


class _BPBase(BaseEstimator):
    """What the classifier and the regressor share: parameters, training, attributes."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate_init=0.001, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 cost=None, output_activation=None, dtype=None, n_threads=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.cost = cost
        self.output_activation = output_activation
        self.dtype = dtype
        self.n_threads = n_threads

    # --- parameters --------------------------------------------------------------------------

    def _hidden(self):
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") and not isinstance(sizes, str) \
            else [sizes]
        for size in sizes:
            if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size <= 0:
                raise ValueError(f"hidden_layer_sizes must hold integers > 0, got "
                                 f"{self.hidden_layer_sizes!r}.")
        return [int(size) for size in sizes]

    def _check_parameters(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {list(ACTIVATIONS)}, got "
                             f"{self.activation!r}.")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {list(SOLVERS)}, got {self.solver!r}.")
        _check_real(self.alpha, "alpha", 0)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            _check_int(self.batch_size, "batch_size", 1)
        _check_real(self.learning_rate_init, "learning_rate_init", 0, low_open=True)
        _check_int(self.max_iter, "max_iter", 1)
        _check_real(self.tol, "tol", 0)
        _check_real(self.momentum, "momentum", 0, 1, high_open=True)
        _check_real(self.validation_fraction, "validation_fraction", 0, 1, True, True)
        _check_real(self.beta_1, "beta_1", 0, 1, high_open=True)
        _check_real(self.beta_2, "beta_2", 0, 1, high_open=True)
        _check_real(self.epsilon, "epsilon", 0, low_open=True)
        _check_int(self.n_iter_no_change, "n_iter_no_change", 1)
        _check_int(self.max_fun, "max_fun", 1)
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        if self.dtype not in (None, "float32", "float64", np.float32, np.float64):
            raise ValueError(f"dtype must be None (float32 data stay float32, others float64), "
                             f"'float32' or 'float64', got {self.dtype!r}.")
        if self.n_threads is not None:
            _check_int(self.n_threads, "n_threads", 1)

    def _dtype(self, X):
        if self.dtype is not None:
            return np.dtype(self.dtype)
        return np.dtype(np.float32) if X.dtype == np.float32 else np.dtype(np.float64)

    # --- training ----------------------------------------------------------------------------

    def _fit(self, X, y, sample_weight=None, incremental=False, classes=None):
        self._check_parameters()
        hidden = self._hidden()
        first = not hasattr(self, "network_") or (not self.warm_start and not incremental)
        X, Y = self._validate_input(X, y, first, incremental, classes)
        weights = self._sample_weight(sample_weight, y, X.shape[0])
        dtype = self._dtype(X) if first else self.network_.dtype
        X = np.ascontiguousarray(X, dtype=dtype)
        Y = np.ascontiguousarray(Y, dtype=dtype)
        self._random_state = check_random_state(self.random_state)
        if first:
            sizes = [X.shape[1], *hidden, Y.shape[1]]
            self._initialize(sizes, dtype)
        elif self.network_.sizes[1:-1] != tuple(hidden):
            raise ValueError(f"hidden_layer_sizes changed to {hidden} since the last fit "
                             f"({list(self.network_.sizes[1:-1])}): warm_start and partial_fit "
                             "continue training the same network.")
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, Y, weights)
        else:
            self._fit_stochastic(X, Y, weights, incremental)
        self._publish()
        return self

    def _initialize(self, sizes, dtype):
        """scikit-learn's initial network: Glorot's uniform law (bound √(6 / (fan_in + fan_out)),
        √(2 / …) for logistic units), drawn in scikit-learn's order from random_state."""
        weights, biases = [], []
        factor = 2.0 if self.activation == "logistic" else 6.0
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            coef = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
            intercept = self._random_state.uniform(-bound, bound, fan_out)
            weights.append(coef.T)
            biases.append(intercept)
        output, cost = self._output_layer(sizes[-1])
        self.network_ = Network.from_params(weights, biases,
                                            activation=ACTIVATIONS[self.activation],
                                            output_activation=output, cost=cost, dtype=dtype)
        self.n_iter_, self.t_ = 0, 0
        self.loss_curve_ = []
        self._no_improvement_count = 0
        self.best_loss_ = np.inf
        self.validation_scores_ = [] if self.early_stopping else None
        self.best_validation_score_ = -np.inf if self.early_stopping else None
        self._state = None

    def _cost_scale(self):
        """C_k over bpfast's C_k: ½ for scikit-learn's squared error, else 1."""
        return 0.5 if self.network_.cost_function == "quadratic" else 1.0

    def _reported(self, mean_cost, n):
        """scikit-learn's loss_: its C_k's mean — for the squared error also over the outputs
        (its gradients are those of the sum over them, as bpfast's: with several outputs the
        loss it reports is not the one it descends) — plus α/(2n) Σ‖w‖²."""
        scale = self._cost_scale()
        if scale != 1.0:
            scale /= self.network_.sizes[-1]
        return scale * mean_cost + self._penalty(n)

    def _penalty(self, n):
        """α/(2n) Σ‖w‖²: the L2 term of the objective over n examples."""
        return self.alpha / (2 * n) * self.network_._weight_squares() if self.alpha else 0.0

    def _sample_weight(self, sample_weight, y, n):
        """The examples' weights (float64), or None: sample_weight, times class_weight's."""
        return check_sample_weight(sample_weight, n)

    def _fit_lbfgs(self, X, Y, weights):
        net, N, scale = self.network_, X.shape[0], self._cost_scale()
        # scale C + (α/(2N))Σ‖w‖² = scale · (C + (λ/2)Σ‖w‖²) with λ = α / (N · scale); with
        # weights, scikit-learn's N is their sum.
        total = N if weights is None else float(weights.sum())
        objective = net._objective(X, Y, self.alpha / (total * scale), scale, weights)
        result = net._minimize(objective, method="L-BFGS-B", tol=None,
                               options=dict(maxiter=self.max_iter, maxfun=self.max_fun,
                                            gtol=self.tol), callback=None)
        self.n_iter_ = int(result.nit)
        self.loss_ = self._reported((float(result.fun) - self._penalty(total)) / scale, total)
        self.t_ += N
        if result.status == 1:
            warnings.warn(f"lbfgs failed to converge after {self.n_iter_} iteration(s) "
                          f"(status 1: {result.message}). Increase max_iter or max_fun, or "
                          "scale the data.", ConvergenceWarning, stacklevel=3)

    def _fit_stochastic(self, X, Y, weights, incremental):
        net = self.network_
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True.")
        X_val = Y_val = w_val = None
        if self.early_stopping:
            stratify = Y.argmax(axis=1) if is_classifier(self) and self._single_label else None
            arrays = (X, Y) if weights is None else (X, Y, weights)
            parts = train_test_split(*arrays, random_state=self._random_state,
                                     test_size=self.validation_fraction, stratify=stratify)
            X, X_val, Y, Y_val = parts[:4]
            if weights is not None:
                weights, w_val = parts[4:]
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "validation_fraction or the size of your dataset.")
        N = X.shape[0]
        if isinstance(self.batch_size, str):
            B = min(200, N)
        else:
            if self.batch_size > N:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped", UserWarning, stacklevel=3)
            B = min(self.batch_size, N)
        scale = self._cost_scale()
        # scikit-learn's α/(2 Σ_batch w) Σ‖w‖² per step: α / (B w̄) on average.
        mean_weight = 1.0 if weights is None else float(weights.mean())
        eta, eps = self.learning_rate_init, self.epsilon
        l2 = self.alpha / (B * mean_weight * scale) if mean_weight > 0 else 0.0
        rule = dict(optimizer=self.solver)
        if self.solver == "sgd":
            eta *= scale
            if self.momentum > 0:
                rule.update(momentum=self.momentum, nesterov=bool(self.nesterovs_momentum))
        else:
            rule.update(betas=(self.beta_1, self.beta_2))
            eps = self.epsilon / scale
            rule["eps"] = eps
        n_batches = -(-N // B)
        epochs = 1 if incremental else self.max_iter
        self.n_iter_ = 0
        stopped = []

        def after_epoch(epoch, figures):
            self.n_iter_ += 1
            self.t_ += N
            # scikit-learn's: each mini-batch's mean cost plus α/(2B)Σ‖w‖², weighted by its
            # rows: the epoch's mean cost plus n_batches · α/(2N) Σ‖w‖².
            loss = self._reported(figures["cost"], N) + self._penalty(N) * (n_batches - 1)
            self.loss_ = loss
            self.loss_curve_.append(loss)
            if self._no_improvement(X_val, Y_val, w_val):
                stopped.append(True)
                return False
            return True

        if epochs:
            history = net.fit(X, Y, epochs=epochs, batch_size=B, learning_rate=eta, l2=l2,
                              seed=int(self._random_state.randint(2**31 - 1)),
                              n_threads=self.n_threads, callback=after_epoch,
                              sampling="shuffle" if self.shuffle else "ordered",
                              resume=self._state, sample_weight=weights, **rule)
            self._state = history.state
        if self.early_stopping and self._best_theta is not None:
            net.set_parameters_vector(self._best_theta)
        if not incremental and not stopped and self.n_iter_ >= self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                          "and the optimization hasn't converged yet.", ConvergenceWarning,
                          stacklevel=3)

    _best_theta = None

    def _no_improvement(self, X_val, Y_val, w_val):
        """scikit-learn's stopping rule after an epoch: True once the training loss (or with
        early_stopping, the validation score) has not improved by tol for more than
        n_iter_no_change epochs in a row."""
        if self.early_stopping:
            score = self._validation_score(X_val, Y_val, w_val)
            self.validation_scores_.append(score)
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_theta = self.network_.parameters_vector()
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            self.best_loss_ = min(self.best_loss_, self.loss_curve_[-1])
        if self._no_improvement_count > self.n_iter_no_change:
            self._no_improvement_count = 0
            return True
        return False

    def _publish(self):
        """scikit-learn's fitted attributes, from the network."""
        net = self.network_
        self.coefs_ = [w.T.copy() for w in net.weights]
        self.intercepts_ = [b.copy() for b in net.biases]
        self.n_layers_ = net.L + 1
        self.n_outputs_ = net.sizes[-1]
        output = net.activations[-1]
        self.out_activation_ = {"sigmoid": "logistic"}.get(output, output)
        if self.solver == "lbfgs" or self.early_stopping:
            self.best_loss_ = None
        if self.solver == "lbfgs":
            self.loss_curve_ = None

    def _outputs(self, X):
        """The network's outputs on X, in X's precision (float32 for float32 data, float64
        otherwise, whatever the network computes in)."""
        check_is_fitted(self, "network_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        out = self.network_.predict(np.ascontiguousarray(X, dtype=self.network_.dtype),
                                    n_threads=self.n_threads)
        return out.astype(X.dtype, copy=False)


class BPClassifier(ClassifierMixin, _BPBase):
    """scikit-learn's `MLPClassifier`, trained by bpfast (see the module's documentation for the
    objective and each parameter's meaning in bpfast's terms). Binary, multiclass and
    multilabel targets. ``class_weight`` (None, "balanced" or {label: weight}) multiplies each
    example's sample weight by its class's, as scikit-learn's linear models take it."""

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate_init=0.001, max_iter=200,
                 shuffle=True, random_state=None, tol=1e-4, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 cost=None, output_activation=None, dtype=None, n_threads=None,
                 class_weight=None):
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate_init=learning_rate_init, max_iter=max_iter, shuffle=shuffle,
            random_state=random_state, tol=tol, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2,
            epsilon=epsilon, n_iter_no_change=n_iter_no_change, max_fun=max_fun, cost=cost,
            output_activation=output_activation, dtype=dtype, n_threads=n_threads)
        self.class_weight = class_weight

    def _output_layer(self, n_outputs):
        default = "softmax" if self._single_label and n_outputs > 1 else "sigmoid"
        return self.output_activation or default, self.cost or "cross_entropy"

    def _validate_input(self, X, y, first, incremental, classes):
        X, y = validate_data(self, X, y, reset=first, dtype=[np.float64, np.float32],
                             multi_output=True)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected. Please "
                          "change the shape of y to (n_samples,), for example using ravel().",
                          DataConversionWarning, stacklevel=3)
            y = y.ravel()
        kind = type_of_target(y, input_name="y")
        if kind not in ("binary", "multiclass", "multilabel-indicator"):
            raise ValueError(f"Unknown label type: {kind}. Maybe you are trying to fit a "
                             "classifier, which expects discrete classes on a regression "
                             "problem." if kind != "multiclass-multioutput" else
                             "Multioutput target data is not supported with label "
                             "binarization (multiclass-multioutput y).")
        if first:
            known = classes if incremental and classes is not None else y
            self._multilabel = kind == "multilabel-indicator"
            self.classes_ = (np.arange(y.shape[1]) if self._multilabel else np.unique(known))
        elif self._multilabel != (kind == "multilabel-indicator"):
            raise ValueError("y is not the kind of target of the first fit (multilabel or "
                             "not): warm_start and partial_fit continue the same task.")
        self._single_label = not self._multilabel
        return X, self._indicators(y)

    def _indicators(self, y):
        """The targets as the network's outputs: one-hot rows over classes_ (one 0/1 column for
        two classes), or the label indicator matrix itself."""
        if self._multilabel:
            return np.asarray(y, dtype=np.float64)
        column = np.searchsorted(self.classes_, y)
        column = np.minimum(column, len(self.classes_) - 1)
        unseen = self.classes_[column] != y
        if unseen.any():
            raise ValueError(f"y holds labels {sorted(set(np.asarray(y)[unseen].tolist()))} that "
                             f"were not in classes_ {list(self.classes_)} when training began: "
                             "warm_start and partial_fit continue with the classes of the "
                             "first fit.")
        Y = np.zeros((len(y), len(self.classes_)))
        Y[np.arange(len(y)), column] = 1
        return Y[:, 1:] if len(self.classes_) == 2 else Y

    def fit(self, X, y, sample_weight=None):
        """Train on X (n_samples, n_features) and the labels y (n_samples,), or a label
        indicator matrix (n_samples, n_labels) for multilabel classification; with
        ``sample_weight``, each mini-batch's loss is its examples' weighted mean."""
        return self._fit(X, y, sample_weight)

    @available_if(_stochastic)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y) with sgd or adam, continuing the network and the optimizer's
        state; ``classes`` (every label there will be) is needed on the first call."""
        first = not hasattr(self, "network_")
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if not first and classes is not None and not np.array_equal(
                np.unique(classes), self.classes_):
            raise ValueError(f"classes={classes!r} is not the same as on the first call to "
                             f"partial_fit, {list(self.classes_)}.")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _sample_weight(self, sample_weight, y, n):
        weights = check_sample_weight(sample_weight, n)
        if self.class_weight is None:
            return weights
        from sklearn.utils.class_weight import compute_sample_weight
        by_class = compute_sample_weight(self.class_weight, y)
        return by_class if weights is None else weights * by_class

    def _validation_score(self, X, Y, weights=None):
        correct = np.all(self._binarized_predictions(X) == Y, axis=1)
        return float(np.average(correct, weights=weights))

    def _binarized_predictions(self, X):
        proba = self.network_.predict(X, n_threads=self.n_threads)
        if self.network_.activations[-1] == "softmax":
            out = np.zeros_like(proba)
            out[np.arange(len(proba)), proba.argmax(axis=1)] = 1
            return out
        return (proba > 0.5).astype(proba.dtype)

    def predict(self, X):
        """The predicted labels (a label indicator matrix for multilabel targets)."""
        proba = self._outputs(X)
        if self._multilabel:
            return (proba > 0.5).astype(int)
        if len(self.classes_) == 1:
            return np.full(len(proba), self.classes_[0])
        if proba.shape[1] == 1:
            return self.classes_[(proba[:, 0] > 0.5).astype(int)]
        return self.classes_[proba.argmax(axis=1)]

    def predict_proba(self, X):
        """Class probabilities, one column per class of classes_ (two for a binary task)."""
        proba = self._outputs(X)
        if len(self.classes_) == 1:
            return np.ones_like(proba)
        if self.network_.activations[-1] == "sigmoid":
            # σ(z) rounds to 1 beyond z ≈ 37 (17 in float32): kept inside (0, 1), as
            # probabilities of the positive class are taken to be.
            eps = np.finfo(proba.dtype).eps
            proba = np.clip(proba, np.finfo(proba.dtype).tiny, 1 - eps)
        if len(self.classes_) == 2 and proba.shape[1] == 1:
            return np.hstack([1 - proba, proba])
        return proba

    def predict_log_proba(self, X):
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class BPRegressor(RegressorMixin, _BPBase):
    """scikit-learn's `MLPRegressor`, trained by bpfast (see the module's documentation for the
    objective and each parameter's meaning in bpfast's terms). Single and multiple outputs."""

    def _output_layer(self, n_outputs):
        return self.output_activation or "identity", self.cost or "quadratic"

    def _validate_input(self, X, y, first, incremental, classes):
        X, y = validate_data(self, X, y, reset=first, dtype=[np.float64, np.float32],
                             multi_output=True, y_numeric=True)
        return X, (y.reshape(-1, 1) if y.ndim == 1 else y).astype(np.float64)

    def fit(self, X, y, sample_weight=None):
        """Train on X (n_samples, n_features) and the targets y (n_samples,) or (n_samples,
        n_outputs); with ``sample_weight``, each mini-batch's loss is its examples' weighted
        mean."""
        return self._fit(X, y, sample_weight)

    @available_if(_stochastic)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y) with sgd or adam, continuing the network and the optimizer's
        state."""
        return self._fit(X, y, sample_weight, incremental=True)

    def _validation_score(self, X, Y, weights=None):
        from sklearn.metrics import r2_score
        return float(r2_score(Y, self.network_.predict(X, n_threads=self.n_threads),
                              sample_weight=weights))

    def predict(self, X):
        """The predicted targets, (n_samples,) for a single output."""
        out = self._outputs(X)
        return out.ravel() if out.shape[1] == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

