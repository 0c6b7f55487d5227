"""The PyTorch (CPU) reference of the bench: the same minibatch loop as the
estimators, only for the speed comparison. Imported only when torch is."""

import numpy as np


class TorchClassifier:
    """The same minibatch loop in PyTorch (CPU): Linear layers, softmax
    cross-entropy, scikit-learn's L2 term (``alpha / batch`` weight decay on
    the weights only), Adam or SGD with (Nesterov) momentum, a reshuffle per
    epoch."""

    _ACT = {"relu": "ReLU", "tanh": "Tanh", "logistic": "Sigmoid",
            "softplus": "Softplus", "identity": "Identity"}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", solver="adam",
                 batch_size=200, max_iter=1, alpha=1e-4, learning_rate_init=1e-3,
                 momentum=0.9, nesterovs_momentum=True, random_state=0, **ignored):
        self.hidden_layer_sizes = tuple(hidden_layer_sizes)
        self.activation = activation
        self.solver = solver
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.alpha = alpha
        self.learning_rate_init = learning_rate_init
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.random_state = random_state

    def fit(self, X, y):
        import torch

        torch.manual_seed(self.random_state)
        X = np.ascontiguousarray(X)
        self.classes_, yi = np.unique(y, return_inverse=True)
        Xt = torch.from_numpy(X)
        yt = torch.from_numpy(yi.astype(np.int64))
        dtype = Xt.dtype
        sizes = [X.shape[1], *self.hidden_layer_sizes, len(self.classes_)]
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(torch.nn.Linear(sizes[i], sizes[i + 1], dtype=dtype))
            if i < len(sizes) - 2:
                layers.append(getattr(torch.nn, self._ACT[self.activation])())
        self.model_ = model = torch.nn.Sequential(*layers)
        n = X.shape[0]
        bs = min(self.batch_size, n)
        weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
        biases = [p for name, p in model.named_parameters() if name.endswith("bias")]
        groups = [{"params": weights, "weight_decay": self.alpha / bs},
                  {"params": biases, "weight_decay": 0.0}]
        if self.solver == "adam":
            opt = torch.optim.Adam(groups, lr=self.learning_rate_init, eps=1e-8)
        else:
            opt = torch.optim.SGD(groups, lr=self.learning_rate_init,
                                  momentum=self.momentum,
                                  nesterov=self.nesterovs_momentum)
        loss_fn = torch.nn.CrossEntropyLoss()
        rng = np.random.default_rng(self.random_state)
        for _ in range(self.max_iter):
            order = torch.from_numpy(rng.permutation(n))
            for start in range(0, n, bs):
                idx = order[start:start + bs]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(Xt.index_select(0, idx)), yt.index_select(0, idx))
                loss.backward()
                opt.step()
        self.n_iter_ = self.max_iter
        return self

    def predict_proba(self, X):
        import torch

        with torch.no_grad():
            H = self.model_(torch.from_numpy(np.ascontiguousarray(X)))
            return torch.softmax(H, dim=1).numpy()

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def torch_version():
    """torch's version and intra-op threads, when torch is already imported."""
    import sys

    if "torch" not in sys.modules:
        return {}
    import torch

    return {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
