"""The course's monolithic two-layer network with its own train()/predict().

Weights are stored as W1 (H, D) and W2 (C, H), as in that notebook, so its
seeded cells print the same scores and losses.
"""
from __future__ import annotations

import numpy as np

from array_api_compat import device as _device

from .. import backend
from ..layers._util import check_number
from .linear import check_sgd, training_set

__all__ = ["TwoLayerNet"]


class TwoLayerNet:
    """input - fully connected - ReLU - fully connected - softmax.

    input_size D, hidden_size H, output_size C; weights drawn as
    ``std * randn`` from NumPy's global RandomState (W1 first), biases zero.

    The course editions differ in three details, kept as class attributes
    (``xpnn.compat`` sets them per edition): ``w_layout`` 'out_in' stores
    W1 (H, D) and W2 (C, H) (UCLA), 'in_out' W1 (D, H) and W2 (H, C)
    (CS231n); ``reg_scale`` is the factor of ``reg * sum(W**2)`` in the loss
    (0.5 UCLA, 1 CS231n); ``cap_batch`` draws min(N, batch_size) rows per
    step (True) or batch_size rows with replacement whatever N is;
    ``default_reg`` is train()'s default reg; ``true_epoch_division``
    counts an epoch as num_train / batch_size iterations (UCLA; with a
    fraction, fewer iterations are multiples of it) instead of
    num_train // batch_size.
    """

    w_layout = "out_in"
    reg_scale = 0.5
    cap_batch = True
    default_reg = 1e-5
    true_epoch_division = False
    #: train(verbose=True)'s line every 100 iterations
    verbose_format = "iteration {it} / {num_iters}: loss {loss}"

    def __init__(self, input_size, hidden_size, output_size, std=1e-4):
        if self.w_layout == "out_in":
            shapes = ((hidden_size, input_size), (output_size, hidden_size))
        else:
            shapes = ((input_size, hidden_size), (hidden_size, output_size))
        self.params = {"W1": std * np.random.randn(*shapes[0])}
        self.params["b1"] = np.zeros(hidden_size)
        self.params["W2"] = std * np.random.randn(*shapes[1])
        self.params["b2"] = np.zeros(output_size)
        self.params = backend.to_device(self.params)

    def _sync(self, *arrays):
        self.params = backend.to_device(self.params)
        return backend.namespace(), [None if a is None else backend.to_device(a) for a in arrays]

    def loss(self, X, y=None, reg=0.0):
        """Scores (N, C) if y is None, else (loss, grads): softmax loss plus
        ``reg_scale * reg * (||W1||^2 + ||W2||^2)``."""
        xp, (X, y) = self._sync(X, y)
        W1, b1, W2, b2 = (self.params[k] for k in ("W1", "b1", "W2", "b2"))
        t = xp.matrix_transpose
        out_in = self.w_layout == "out_in"
        a1 = xp.matmul(X, t(W1) if out_in else W1) + b1
        h1 = xp.where(a1 > 0, a1, xp.zeros_like(a1))
        scores = xp.matmul(h1, t(W2) if out_in else W2) + b2
        if y is None:
            return scores
        N, C = scores.shape
        shifted = scores - xp.max(scores, axis=1, keepdims=True)
        exp = xp.exp(shifted)
        probs = exp / xp.sum(exp, axis=1, keepdims=True)
        classes = xp.arange(C, dtype=y.dtype, device=_device(y))
        hot = xp.astype(y[:, None] == classes[None, :], scores.dtype)
        data_loss = -xp.sum(hot * xp.log(probs)) / N
        k = self.reg_scale * reg
        loss = data_loss + k * (xp.sum(W1 * W1) + xp.sum(W2 * W2))
        dscores = (probs - hot) / N
        dW2 = xp.matmul(t(dscores), h1) if out_in else xp.matmul(t(h1), dscores)
        grads = {"W2": dW2 + 2 * k * W2, "b2": xp.sum(dscores, axis=0)}
        dh1 = xp.where(a1 > 0, xp.matmul(dscores, W2 if out_in else t(W2)), xp.zeros_like(a1))
        dW1 = xp.matmul(t(dh1), X) if out_in else xp.matmul(t(X), dh1)
        grads["W1"] = dW1 + 2 * k * W1
        grads["b1"] = xp.sum(dh1, axis=0)
        return loss, grads

    def train(self, X, y, X_val, y_val, learning_rate=1e-3, learning_rate_decay=0.95,
              reg=None, num_iters=100, batch_size=200, verbose=False):
        """Minibatch SGD; minibatches drawn with replacement by
        ``np.random.choice``. reg defaults to ``default_reg``. Returns the
        loss/train-acc/val-acc histories."""
        reg = check_number("train: reg", self.default_reg if reg is None else reg, low=0.0)
        learning_rate, num_iters, batch_size = check_sgd("train", learning_rate, num_iters,
                                                         batch_size)
        learning_rate_decay = check_number("train: learning_rate_decay", learning_rate_decay,
                                           low=0.0, low_inclusive=False)
        X, y, _ = training_set(X, y)
        X_val, y_val, _ = training_set(X_val, y_val, "train: the validation set")
        xp, (X, y, X_val, y_val) = self._sync(X, y, X_val, y_val)
        num_train = X.shape[0]
        iterations_per_epoch = max(num_train / batch_size if self.true_epoch_division
                                   else num_train // batch_size, 1)
        loss_history, train_acc_history, val_acc_history = [], [], []
        rows = min(num_train, batch_size) if self.cap_batch else batch_size
        for it in range(num_iters):
            idx = np.random.choice(np.arange(num_train), rows)
            idx = backend.to_device(idx)
            X_batch, y_batch = xp.take(X, idx, axis=0), xp.take(y, idx, axis=0)
            loss, grads = self.loss(X_batch, y=y_batch, reg=reg)
            loss_history.append(loss)
            for k in self.params:
                self.params[k] = self.params[k] - learning_rate * grads[k]
            if verbose and it % 100 == 0:
                print(self.verbose_format.format(it=it, num_iters=num_iters, loss=float(loss)))
            if it % iterations_per_epoch == 0:
                train_acc_history.append(_accuracy(xp, self.predict(X_batch), y_batch))
                val_acc_history.append(_accuracy(xp, self.predict(X_val), y_val))
                learning_rate *= learning_rate_decay
        return {"loss_history": [float(v) for v in backend.to_numpy(loss_history)],
                "train_acc_history": train_acc_history, "val_acc_history": val_acc_history}

    def predict(self, X):
        """Predicted class labels (N,)."""
        xp = backend.namespace()
        return xp.argmax(self.loss(X), axis=1)


def _accuracy(xp, pred, y):
    return float(xp.mean(xp.astype(pred == y, xp.float64)))
