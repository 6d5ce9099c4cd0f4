"""Assignment 3's image-captioning network: image features projected to
the first hidden state, words embedded, a vanilla RNN or an LSTM, and an
affine layer to vocabulary scores at every step, trained with the masked
temporal softmax loss (the recurrent layers of
:mod:`xpnn.layers.recurrent`).
"""
from __future__ import annotations

import numpy as np
from array_api_compat import device as _device

from .. import backend
from ..layers._util import as_device_array, check_int
from ..layers import (lstm_backward, lstm_forward, rnn_backward, rnn_forward,
                      temporal_affine_backward, temporal_affine_forward, temporal_softmax_loss,
                      word_embedding_backward, word_embedding_forward)
from ..layers.recurrent import lstm_step_forward, rnn_step_forward

__all__ = ["CaptioningRNN"]

_CELLS = {"rnn": (1, rnn_forward, rnn_backward), "lstm": (4, lstm_forward, lstm_backward)}


#: the words the network itself reads or writes: their indices must be rows
#: of W_embed and columns of the scores
SPECIAL_WORDS = ("<NULL>", "<START>", "<END>")


def check_vocabulary(word_to_idx, where="CaptioningRNN: word_to_idx"):
    """The size V of a vocabulary ``word_to_idx``: a dict of V words
    (strings, '<NULL>' among them) to distinct integer indices >= 0, those of
    '<NULL>', '<START>' and '<END>' below V. (Another word may have a larger
    index, as the course's own notebook's {'<NULL>': 0, 'cat': 2, 'dog': 3}:
    such a word is never embedded nor predicted.) Anything else is a
    ValueError (TypeError) saying what is wrong."""
    if not isinstance(word_to_idx, dict):
        raise TypeError(f"{where} must be a dict of words to indices, got "
                        f"{type(word_to_idx).__name__}")
    if "<NULL>" not in word_to_idx:
        raise ValueError(f"{where} must hold '<NULL>' (the padding word)")
    V = len(word_to_idx)
    seen = {}
    for word, idx in word_to_idx.items():
        if not isinstance(word, str):
            raise TypeError(f"{where}: every word must be a string, got {word!r}")
        if isinstance(idx, bool) or not isinstance(idx, (int, np.integer)):
            raise TypeError(f"{where}: {word!r} maps to {idx!r}; indices must be integers")
        if idx < 0 or (word in SPECIAL_WORDS and idx >= V):
            raise ValueError(f"{where}: {word!r} maps to {idx}, outside [0, {V - 1}] (the rows "
                             f"of the embedding of its {V} words)")
        if idx in seen:
            raise ValueError(f"{where}: {seen[idx]!r} and {word!r} both map to {idx}; each "
                             f"index names one word")
        seen[int(idx)] = word
    return V


class CaptioningRNN:
    """CaptioningRNN(word_to_idx, input_dim=512, wordvec_dim=128,
    hidden_dim=128, cell_type='rnn', dtype=np.float32).

    ``word_to_idx`` maps each of the V words to an index in [0, V) and must
    hold '<NULL>' (padding, never scored); '<START>' begins sampled
    captions and '<END>' ends them. Weights are drawn from NumPy's global
    RandomState in the course's order (W_embed / 100, W_proj / sqrt(D),
    Wx / sqrt(W), Wh / sqrt(H), W_vocab / sqrt(H); biases zero) and cast to
    ``dtype``. ``params`` and the data move to the active backend on entry.
    """

    def __init__(self, word_to_idx, input_dim=512, wordvec_dim=128, hidden_dim=128,
                 cell_type="rnn", dtype=np.float32):
        if not isinstance(cell_type, str) or cell_type not in _CELLS:
            raise ValueError(f'Invalid cell_type "{cell_type}": "rnn" or "lstm"')
        V = check_vocabulary(word_to_idx)
        D = check_int("CaptioningRNN: input_dim", input_dim, 1)
        W = check_int("CaptioningRNN: wordvec_dim", wordvec_dim, 1)
        H = check_int("CaptioningRNN: hidden_dim", hidden_dim, 1)
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            self.dtype = None
        if self.dtype is None or self.dtype.kind != "f":
            raise TypeError(f"CaptioningRNN: dtype must be a floating type (np.float32 or "
                            f"np.float64), got {dtype!r}")
        self.cell_type = cell_type
        self.word_to_idx = word_to_idx
        self.idx_to_word = {int(i): w for w, i in word_to_idx.items()}
        self._null = word_to_idx["<NULL>"]
        self._start = word_to_idx.get("<START>", None)
        self._end = word_to_idx.get("<END>", None)
        k = _CELLS[cell_type][0]
        r = np.random
        p = {"W_embed": r.randn(V, W) / 100}
        p["W_proj"] = r.randn(D, H) / np.sqrt(D)
        p["b_proj"] = np.zeros(H)
        p["Wx"] = r.randn(W, k * H) / np.sqrt(W)
        p["Wh"] = r.randn(H, k * H) / np.sqrt(H)
        p["b"] = np.zeros(k * H)
        p["W_vocab"] = r.randn(H, V) / np.sqrt(H)
        p["b_vocab"] = np.zeros(V)
        self.params = backend.to_device({n: v.astype(self.dtype) for n, v in p.items()})

    def _sync(self, *arrays):
        self.params = backend.to_device(self.params)
        return backend.namespace(), [backend.to_device(a) for a in arrays]

    def _features(self, fn, features):
        features = as_device_array(f"{fn}: features", features, "of image features (N, D)")
        D = int(self.params["W_proj"].shape[0])
        if features.ndim != 2 or features.shape[1] != D:
            raise ValueError(f"{fn}: features must be (N, {D}) (input_dim {D}), got "
                             f"{tuple(features.shape)}")
        if not backend.namespace().isdtype(features.dtype, "real floating"):
            raise TypeError(f"{fn}: features must be floating, got dtype {features.dtype}")
        return features

    def loss(self, features, captions):
        """Training loss and gradients for image features (N, D) and their
        captions (N, T) of word indices: the network reads words 0..T-2 and
        is scored on predicting words 1..T-1, '<NULL>' positions ignored.
        Returns (loss, grads) with grads keyed as params."""
        xp, _ = self._sync()
        features = self._features("CaptioningRNN.loss", features)
        captions = as_device_array("CaptioningRNN.loss: captions", captions,
                                   "of word indices (N, T)", "integer word indices")
        if captions.ndim != 2 or features.shape[0] != captions.shape[0]:
            raise ValueError(f"CaptioningRNN.loss: captions must be (N, T) for the features' "
                             f"N = {features.shape[0]}, got {tuple(captions.shape)}")
        if not xp.isdtype(captions.dtype, "integral"):
            raise TypeError(f"CaptioningRNN.loss: captions must hold integer word indices, got "
                            f"dtype {captions.dtype}")
        V = int(self.params["W_embed"].shape[0])
        if captions.size and backend.labels_need_check(captions):
            lo, hi = backend.label_range(captions)
            if lo < 0 or hi >= V:
                raise ValueError(f"CaptioningRNN.loss: captions must hold word indices in "
                                 f"[0, {V - 1}] (the vocabulary's {V} words), got values in "
                                 f"[{lo}, {hi}]")
        with backend.labels_checked():
            return self._loss(xp, features, captions)

    def _loss(self, xp, features, captions):
        p = self.params
        _, forward, backward = _CELLS[self.cell_type]
        captions_in, captions_out = captions[:, :-1], captions[:, 1:]
        mask = captions_out != self._null
        h0 = xp.matmul(features, p["W_proj"]) + p["b_proj"]
        x, c_embed = word_embedding_forward(captions_in, p["W_embed"])
        h, c_cell = forward(x, h0, p["Wx"], p["Wh"], p["b"])
        scores, c_vocab = temporal_affine_forward(h, p["W_vocab"], p["b_vocab"])
        loss, dscores = temporal_softmax_loss(scores, captions_out, mask)
        grads = {}
        dh, grads["W_vocab"], grads["b_vocab"] = temporal_affine_backward(dscores, c_vocab)
        dx, dh0, grads["Wx"], grads["Wh"], grads["b"] = backward(dh, c_cell)
        grads["W_embed"] = word_embedding_backward(dx, c_embed)
        grads["W_proj"] = xp.matmul(xp.matrix_transpose(features), dh0)
        grads["b_proj"] = xp.sum(dh0, axis=0)
        return loss, grads

    def sample(self, features, max_length=30):
        """Greedy captions (N, max_length) for image features (N, D): from
        '<START>', each step feeds back the highest-scoring word; positions
        are filled from the first predicted word on. Returns NumPy int32."""
        xp, _ = self._sync()
        features = self._features("CaptioningRNN.sample", features)
        max_length = check_int("CaptioningRNN.sample: max_length", max_length, 0)
        if self._start is None:
            raise ValueError("sample: word_to_idx has no '<START>' word to begin captions with")
        p = self.params
        N = features.shape[0]
        h = xp.matmul(features, p["W_proj"]) + p["b_proj"]
        c = xp.zeros_like(h)
        words = xp.full((N,), self._start, dtype=xp.int64, device=_device(h))
        out = []
        for _ in range(max_length):
            x = xp.take(p["W_embed"], words, axis=0)
            if self.cell_type == "rnn":
                h, _ = rnn_step_forward(x, h, p["Wx"], p["Wh"], p["b"])
            else:
                h, c, _ = lstm_step_forward(x, h, c, p["Wx"], p["Wh"], p["b"])
            words = xp.argmax(xp.matmul(h, p["W_vocab"]) + p["b_vocab"], axis=1)
            out.append(words)
        if not out:
            return np.full((N, 0), self._null, dtype=np.int32)
        return np.asarray(backend.to_numpy(xp.stack(out, axis=1))).astype(np.int32)
