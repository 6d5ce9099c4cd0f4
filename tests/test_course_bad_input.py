"""Hostile input to assignments 1 and 3, as a table: each row is a call
that once computed something silently wrong or failed with an error that
did not say what was wrong, and the error it must give now (its type, and
a pattern naming the function, the argument and what was expected).

The rows run on every backend (the ``xb`` fixture); a row whose input is
built from the backend's arrays gets them through ``xb.asarray``."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

from xpnn import features as F
from xpnn.models import knn as knn_mod
from xpnn.models import linear as L

from conftest import host


def _mod(edition, path):
    return importlib.import_module(f"xpnn.compat.{edition}.{path}")


_r = np.random.RandomState(0)
X, Y, W = _r.randn(30, 5), _r.randint(3, size=30), 1e-2 * _r.randn(5, 3)
IMG = _r.randint(0, 256, (32, 32, 3)).astype(np.uint8)


def _knn(X_train=X, y_train=Y):
    k = knn_mod.KNearestNeighbor()
    k.train(X_train, y_train)
    return k


def _trained(cls):
    c = getattr(L, cls)()
    c.train(X, Y, num_iters=1)
    return c


def _with_W(W):
    c = L.LinearSVM()
    c.W = W
    return c


def _ucla(name):
    return getattr(_mod("nndl", name.lower()), name)(dims=[3, 5])


def _with_nan(a):
    a = a.copy()
    a.flat[3] = np.nan
    return a


# (id, call, exception, pattern)
A1_ROWS = [
    # k-NN
    ("knn k=1.5", lambda: _knn().predict(X, k=1.5), ValueError,
     r"^predict_labels: k must be an integer >= 1, got 1\.5"),
    ("knn k=nan", lambda: _knn().predict(X, k=float("nan")), ValueError,
     r"^predict_labels: k must be an integer >= 1, got nan"),
    ("knn k=None", lambda: _knn().predict(X, k=None), TypeError,
     r"^predict_labels: k must be an integer >= 1, got None"),
    ("knn k=0", lambda: _knn().predict(X, k=0), ValueError, r"k must be an integer >= 1"),
    ("knn k>N", lambda: _knn().predict(X, k=31), ValueError,
     r"k must be in \[1, 30\] \(the training points\), got 31"),
    ("knn num_loops=3", lambda: _knn().predict(X, num_loops=3), ValueError,
     r"Invalid value 3 for num_loops"),
    ("knn num_loops=True", lambda: _knn().predict(X, num_loops=True), ValueError,
     r"Invalid value True for num_loops"),
    ("knn images not flat", lambda: _knn(X.reshape(30, 5, 1), Y), ValueError,
     r"^train: X must be 2-D points \(M, D\) \(flatten images first"),
    ("knn string X", lambda: _knn(X.astype(str), Y), TypeError,
     r"^train: X must hold numbers, got dtype"),
    ("knn ragged list X", lambda: _knn([[1.0, 2.0], [3.0]], [0, 1]), TypeError,
     r"^train: X must be an array of points \(M, D\); the list given is ragged"),
    ("knn X None", lambda: _knn(None, Y), TypeError,
     r"^train: X must be an array of points \(M, D\), got NoneType"),
    ("knn NaN train", lambda: _knn(_with_nan(X), Y), ValueError,
     r"^train: X holds NaN or infinite values"),
    ("knn NaN test", lambda: _knn().compute_distances_one_loop(_with_nan(X)), ValueError,
     r"^compute_distances_one_loop: X holds NaN"),
    ("knn empty train", lambda: _knn(X[:0], Y[:0]), ValueError, r"with N >= 1"),
    ("knn float labels", lambda: _knn(X, Y.astype(float)), TypeError,
     r"^train: y must hold integer class labels"),
    ("knn negative labels", lambda: _knn(X, Y - 1), ValueError,
     r"^train: class labels must be >= 0 \(the classes are 0 \.\. max\(y\)\), got values in "
     r"\[-1, 1\]"),
    ("knn test width", lambda: _knn().compute_distances_two_loops(X[:, :4]), ValueError,
     r"^compute_distances_two_loops: X must be \(M, 5\) like the training data, got \(30, 4\)"),
    ("knn before train", lambda: knn_mod.KNearestNeighbor().predict(X), RuntimeError,
     r"call train\(X, y\) first"),
    # the losses
    ("loss reg string", lambda: L.softmax_loss_vectorized(W, X, Y, "0.1"), TypeError,
     r"^softmax_loss_vectorized: reg must be a number, got '0\.1'"),
    ("loss reg negative", lambda: L.svm_loss_naive(W, X, Y, -1e-3), ValueError,
     r"^svm_loss_naive: reg must be a finite number in \[0\.0, inf\], got -0\.001"),
    ("loss reg nan", lambda: L.svm_loss_vectorized(W, X, Y, float("nan")), ValueError,
     r"^svm_loss_vectorized: reg must be a finite number"),
    ("loss W string", lambda: L.softmax_loss_naive(W.astype(str), X, Y, 0.0), TypeError,
     r"^softmax_loss_naive: W must hold numbers, got dtype <U"),
    ("loss W None", lambda: L.softmax_loss_naive(None, X, Y, 0.0), TypeError,
     r"^softmax_loss_naive: W must be an array of weights \(D, C\), got NoneType"),
    ("loss y float", lambda: L.svm_loss_vectorized(W, X, Y.astype(float), 0.0), TypeError,
     r"^svm_loss_vectorized: y must hold integer class labels"),
    # LinearClassifier.train
    ("train batch 1.5", lambda: L.LinearSVM().train(X, Y, batch_size=1.5), ValueError,
     r"^train: batch_size must be an integer >= 1, got 1\.5"),
    ("train batch 0", lambda: L.Softmax().train(X, Y, batch_size=0), ValueError,
     r"^train: batch_size must be an integer >= 1, got 0"),
    ("train iters -1", lambda: L.Softmax().train(X, Y, num_iters=-1), ValueError,
     r"^train: num_iters must be an integer >= 0, got -1"),
    ("train lr nan", lambda: L.LinearSVM().train(X, Y, learning_rate=float("nan")), ValueError,
     r"^train: learning_rate must be a finite number in \(0\.0, inf\], got nan"),
    ("train lr negative", lambda: L.LinearSVM().train(X, Y, learning_rate=-1e-3), ValueError,
     r"^train: learning_rate must be a finite number in \(0\.0, inf\], got -0\.001"),
    ("train lr zero", lambda: L.Softmax().train(X, Y, learning_rate=0), ValueError,
     r"learning_rate must be a finite number in \(0\.0, inf\]"),
    ("train reg negative", lambda: L.Softmax().train(X, Y, reg=-1), ValueError,
     r"^train: reg must be a finite number in \[0\.0, inf\], got -1"),
    ("train labels negative", lambda: L.LinearSVM().train(X, -np.ones(30, dtype=int)),
     ValueError, r"^train: class labels must be >= 0 \(the classes are 0 \.\. max\(y\)\), got "
                 r"values in \[-1, -1\]"),
    ("train empty", lambda: L.LinearSVM().train(X[:0], Y[:0]), ValueError,
     r"^train: X must be \(N, D\) with N >= 1"),
    ("train y string", lambda: L.LinearSVM().train(X, Y.astype(str)), TypeError,
     r"^train: y must hold integer class labels"),
    ("loss X None", lambda: L.svm_loss_vectorized(W, None, Y, 0.0), TypeError,
     r"^svm_loss_vectorized: X must be an array of samples \(N, D\), got NoneType"),
    ("loss y None", lambda: L.softmax_loss_vectorized(W, X, None, 0.0), TypeError,
     r"^softmax_loss_vectorized: y must be an array of labels \(N,\), got NoneType"),
    ("loss y strings", lambda: L.softmax_loss_naive(W, X, Y.astype(str), 0.0), TypeError,
     r"^softmax_loss_naive: y must hold integer class labels, got dtype <U"),
    ("loss X strings", lambda: L.svm_loss_naive(W, X.astype(str), Y, 0.0), TypeError,
     r"^svm_loss_naive: X must hold numbers, got dtype <U"),
    ("train X None", lambda: L.LinearSVM().train(None, Y), TypeError,
     r"^train: X must be an array of samples \(N, D\), got NoneType"),
    ("train y None", lambda: L.LinearSVM().train(X, None), TypeError,
     r"^train: y must be an array of labels \(N,\), got NoneType"),
    ("train W of other width", lambda: _with_W(np.zeros((4, 3))).train(X, Y), ValueError,
     r"^train: the classifier's W \(4, 3\) does not fit X \(30, 5\) with 3 classes; it must be "
     r"\(5, C\) with C >= 3 \(set W = None to start again\)"),
    ("train W of too few classes", lambda: _with_W(np.zeros((5, 2))).train(X, Y), ValueError,
     r"the classifier's W \(5, 2\) does not fit"),
    ("train W 1-D", lambda: _with_W(np.zeros(5)).train(X, Y), ValueError,
     r"the classifier's W \(5,\) does not fit"),
    ("train W strings", lambda: _with_W(np.zeros((5, 3)).astype(str)).train(X, Y), TypeError,
     r"^train: the classifier's W must hold numbers"),
    ("predict X None", lambda: _trained("LinearSVM").predict(None), TypeError,
     r"^predict: X must be an array of samples \(N, D\), got NoneType"),
    ("knn y None", lambda: _knn(X, None), TypeError,
     r"^train: y must be an array of labels \(N,\), got NoneType"),
    ("hog 5 channels", lambda: F.hog_feature(np.zeros((32, 32, 5))), ValueError,
     r"^hog_feature: expected one image \(H, W, 3\), \(H, W, 1\) or \(H, W\), got shape "
     r"\(32, 32, 5\)$"),
    ("hog short", lambda: F.hog_feature(IMG[:7]), ValueError,
     r"^hog_feature: the image \(7, 32\) is smaller than one cell \(8, 8\)"),
    ("hue 5 channels", lambda: F.color_histogram_hsv(np.zeros((32, 32, 5))), ValueError,
     r"^color_histogram_hsv: expected an RGB image \(H, W, 3\), got shape \(32, 32, 5\)$"),
    ("hue strings", lambda: F.color_histogram_hsv(IMG.astype(str)), TypeError,
     r"^color_histogram_hsv: im must hold numbers"),
    ("hue xmin", lambda: F.color_histogram_hsv(IMG, xmin="0"), TypeError,
     r"^color_histogram_hsv: xmin must be a number"),
    ("rgb2gray strings", lambda: F.rgb2gray(IMG.astype(str)), TypeError,
     r"^rgb2gray: rgb must hold numbers"),
    ("predict width", lambda: _trained("Softmax").predict(X[:, :3]), ValueError,
     r"^predict: X must be \(N, 5\), as the classifier's W \(5, 3\) takes, got \(30, 3\)"),
    # UCLA's classes
    ("ucla train lr", lambda: _ucla("Softmax").train(X, Y, learning_rate=float("nan")),
     ValueError, r"^train: learning_rate must be a finite number"),
    ("ucla train batch", lambda: _ucla("SVM").train(X, Y, batch_size=2.5), ValueError,
     r"^train: batch_size must be an integer >= 1, got 2\.5"),
    ("ucla train labels", lambda: _ucla("SVM").train(X, Y - 5), ValueError,
     r"^train: class labels must be >= 0"),
    ("ucla predict width", lambda: _ucla("Softmax").predict(X[:, :2]), ValueError,
     r"^predict: X must be \(N, 5\), as the classifier's W \(3, 5\) \(C, D\) takes"),
    ("ucla grad check", lambda: _ucla("SVM").grad_check_sparse(X, Y, W.T, num_checks=-1),
     ValueError, r"^grad_check_sparse: num_checks must be an integer >= 0"),
    # the two-layer net
    ("2-layer lr", lambda: _mod("cs231n_2019", "classifiers.neural_net").TwoLayerNet(5, 4, 3)
     .train(X, Y, X, Y, learning_rate=-1), ValueError,
     r"^train: learning_rate must be a finite number"),
    ("2-layer batch", lambda: _mod("nndl", "neural_net").TwoLayerNet(5, 4, 3)
     .train(X, Y, X, Y, batch_size=0), ValueError, r"^train: batch_size must be an integer"),
    ("2-layer val labels", lambda: _mod("nndl", "neural_net").TwoLayerNet(5, 4, 3)
     .train(X, Y, X, Y.astype(float)), TypeError,
     r"^train: the validation set: y must hold integer class labels"),
    # features
    ("hog channels first", lambda: F.hog_feature(IMG.transpose(2, 0, 1)), ValueError,
     r"^hog_feature: expected one image \(H, W, 3\), \(H, W, 1\) or \(H, W\), got shape "
     r"\(3, 32, 32\); this looks channels-first: pass im\.transpose\(1, 2, 0\), shape "
     r"\(32, 32, 3\)"),
    ("hog smaller than a cell", lambda: F.hog_feature(IMG[:5, :5]), ValueError,
     r"^hog_feature: the image \(5, 5\) is smaller than one cell \(8, 8\)"),
    ("hog one wide", lambda: F.hog_feature(IMG[:, :7]), ValueError,
     r"^hog_feature: the image \(32, 7\) is smaller than one cell"),
    ("hog string", lambda: F.hog_feature(IMG.astype(str)), TypeError,
     r"^hog_feature: im must hold numbers \(pixel values\)"),
    ("hog None", lambda: F.hog_feature(None), TypeError, r"^hog_feature: im must be an array"),
    ("hog orientations", lambda: F.hog_feature(IMG, orientations=0), ValueError,
     r"^hog_feature: orientations must be an integer >= 1, got 0"),
    ("hog cell", lambda: F.hog_feature(IMG, cell=(0, 8)), ValueError,
     r"^hog_feature: cell must be an integer >= 1, got 0"),
    ("hog cell 3", lambda: F.hog_feature(IMG, cell=(8, 8, 8)), ValueError,
     r"^hog_feature: cell must be two integers \(rows, columns\)"),
    ("hog 4-D", lambda: F.hog_feature(IMG[None]), ValueError,
     r"^hog_feature: expected one image"),
    ("hue channels first", lambda: F.color_histogram_hsv(IMG.transpose(2, 0, 1)), ValueError,
     r"^color_histogram_hsv: expected an RGB image \(H, W, 3\), got shape \(3, 32, 32\); this "
     r"looks channels-first"),
    ("hue range", lambda: F.color_histogram_hsv(IMG.astype(float) * 2), ValueError,
     r"^color_histogram_hsv: pixel values must lie in \[0, xmax=255\], got values in "
     r"\[0, 510\]"),
    ("hue nbin", lambda: F.color_histogram_hsv(IMG, nbin=0), ValueError,
     r"^color_histogram_hsv: nbin must be an integer >= 1"),
    ("hue xmax", lambda: F.color_histogram_hsv(IMG, xmax=0), ValueError,
     r"^color_histogram_hsv: xmax must be a finite number in \(0\.0, inf\]"),
    ("rgb2gray grey", lambda: F.rgb2gray(IMG[..., 0]), ValueError,
     r"^rgb2gray: expected an RGB image \(\.\.\., 3\) \(or RGBA\), got shape \(32, 32\)"),
    ("extract one function", lambda: F.extract_features(IMG[None], F.hog_feature), TypeError,
     r"^extract_features: feature_fns must be a list of functions, got the function "
     r"hog_feature; pass \[hog_feature\]"),
    ("extract not callable", lambda: F.extract_features(IMG[None], [F.hog_feature, 3]),
     TypeError, r"^extract_features: every entry of feature_fns must be a function, got 3"),
    ("extract not a list", lambda: F.extract_features(IMG[None], 3), TypeError,
     r"^extract_features: feature_fns must be a list of functions, got int"),
    ("extract changed length", lambda: F.extract_features(
        np.stack([IMG, IMG]), [lambda im, n=iter([3, 4]): np.zeros(next(n))]), ValueError,
     r"^extract_features: <lambda> returned 4 values for image 1 but 3 for image 0"),
    ("extract 2-D feature", lambda: F.extract_features(IMG[None], [lambda im: im]), ValueError,
     r"^extract_features: feature functions must return one-dimensional vectors; <lambda> "
     r"returned shape \(32, 32, 3\) for image 0"),
    ("extract imgs None", lambda: F.extract_features(None, [F.hog_feature]), TypeError,
     r"^extract_features: imgs must be an array"),
]


# ------------------------------------------------------------------ silently wrong, now right
@pytest.mark.parametrize("version", ["no_loops", "one_loop", "two_loops"])
def test_knn_of_uint8_images_is_the_distance_of_their_values(xb, version):
    """uint8 pixels once wrapped around in the no-loop and one-loop
    versions (200 - 10 = 190, but 10 - 200 = 66 and 190**2 overflows)."""
    r = np.random.RandomState(1)
    Xtr, Xte = r.randint(0, 256, (20, 12)).astype(np.uint8), r.randint(0, 256, (6, 12))
    Xte = Xte.astype(np.uint8)
    knn = knn_mod.KNearestNeighbor()
    knn.train(xb.asarray(Xtr), xb.asarray(r.randint(3, size=20)))
    d = getattr(knn, f"compute_distances_{version}")(xb.asarray(Xte))
    want = np.sqrt(((Xte[:, None, :].astype(float) - Xtr[None].astype(float)) ** 2).sum(-1))
    np.testing.assert_allclose(host(d), want, rtol=1e-12)


def _ours(record):
    return [w for w in record if "the weights are diverging" in str(w.message)]


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_a_diverging_linear_classifier_warns_once():
    """The course's loop runs on to NaN weights without a word; xpnn's says
    so once, naming the iteration, and runs on as the course's does."""
    np.random.seed(0)
    clf = L.Softmax()
    with pytest.warns(RuntimeWarning, match=r"^train: the loss is (nan|inf) at iteration \d+: "
                                            r"the weights are diverging") as record:
        hist = clf.train(1e3 * X, Y, learning_rate=1e300, num_iters=10)
    assert len(_ours(record)) == 1 and len(hist) == 10 and not np.isfinite(hist[-1])
    np.random.seed(0)
    cls = _mod("nndl", "softmax").Softmax
    with pytest.warns(RuntimeWarning, match="the weights are diverging") as record:
        cls(dims=[3, 5]).train(1e3 * X, Y, learning_rate=1e300, num_iters=10)
    assert len(_ours(record)) == 1


def test_hog_of_a_one_channel_image_is_the_hog_of_its_grey_levels():
    grey = IMG[..., 0].astype(float)
    np.testing.assert_array_equal(F.hog_feature(grey[..., None]), F.hog_feature(grey))
    assert F.hog_feature(grey).shape == (4 * 4 * 9,)


# ------------------------------------------------------------------ assignment 3
from xpnn.captioning import CaptioningSolver  # noqa: E402
from xpnn.data import decode_captions, sample_coco_minibatch  # noqa: E402
from xpnn.layers import recurrent as R  # noqa: E402
from xpnn.models.rnn import CaptioningRNN  # noqa: E402

WORDS = {"<NULL>": 0, "<START>": 1, "<END>": 2, "a": 3, "cat": 4}
_x, _h = _r.randn(2, 3), _r.randn(2, 4)
_Wx, _Wh, _b = _r.randn(3, 4), _r.randn(4, 4), _r.randn(4)
_Wx4, _Wh4, _b4 = _r.randn(3, 16), _r.randn(4, 16), _r.randn(16)


def _rnn(**kw):
    return CaptioningRNN(WORDS, **{"input_dim": 3, "wordvec_dim": 2, "hidden_dim": 4, **kw})


def _caption_data(**changes):
    r = np.random.RandomState(0)
    data = {"train_captions": r.randint(0, 5, size=(6, 4)), "train_image_idxs": np.arange(6),
            "train_features": r.randn(6, 3), "train_urls": np.array([f"u{i}" for i in range(6)]),
            "word_to_idx": WORDS}
    data.update(changes)
    return data


class _Params:
    params: dict = {}


def _loss_scores(mask):
    r = np.random.RandomState(1)
    return R.temporal_softmax_loss(r.randn(2, 3, 5), r.randint(5, size=(2, 3)), mask)


A3_ROWS = [
    ("step x strings", lambda: R.rnn_step_forward(_x.astype(str), _h, _Wx, _Wh, _b), TypeError,
     r"^rnn_step_forward: x must hold real numbers, got dtype <U"),
    ("step Wh bool", lambda: R.rnn_step_forward(_x, _h, _Wx, _Wh > 0, _b), TypeError,
     r"^rnn_step_forward: Wh must hold real numbers, got dtype bool"),
    ("lstm step prev_c strings", lambda: R.lstm_step_forward(
        _x, _h, _h.astype(str), _Wx4, _Wh4, _b4), TypeError,
     r"lstm_step_forward: .*prev_c|must be an array"),
    ("lstm step prev_c shape", lambda: R.lstm_step_forward(_x, _h, _h[:1], _Wx4, _Wh4, _b4),
     ValueError, r"^lstm_step_forward: prev_c \(1, 4\) must have prev_h's shape \(2, 4\) \(or be "
                 r"a number, such as 0\)"),
    ("rnn T=0 wrong Wx", lambda: R.rnn_forward(np.zeros((2, 0, 3)), _h, _Wx[:2], _Wh, _b),
     ValueError, r"^rnn_forward: Wx must have shape \(3, 4\) for x \(2, 0, 3\) and h0 \(2, 4\), "
                 r"got \(2, 4\)"),
    ("lstm T=0 wrong b", lambda: R.lstm_forward(np.zeros((2, 0, 3)), _h, _Wx4, _Wh4, _b),
     ValueError, r"^lstm_forward: b must have shape \(16,\)"),
    ("sequence strings", lambda: R.lstm_forward(np.zeros((2, 1, 3)).astype(str), _h, _Wx4, _Wh4,
                                                _b4), TypeError,
     r"^lstm_forward: x must hold real numbers"),
    ("step prev_h bool", lambda: R.rnn_step_forward(_x, _h > 0, _Wx, _Wh, _b), TypeError,
     r"^rnn_step_forward: prev_h must hold real numbers"),
    ("step Wx strings", lambda: R.rnn_step_forward(_x, _h, _Wx.astype(str), _Wh, _b), TypeError,
     r"^rnn_step_forward: Wx must hold real numbers"),
    ("step b strings", lambda: R.lstm_step_forward(_x, _h, _h, _Wx4, _Wh4, _b4.astype(str)),
     TypeError, r"^lstm_step_forward: b must hold real numbers"),
    ("step Wx shape", lambda: R.rnn_step_forward(_x, _h, _Wx[:2], _Wh, _b), ValueError,
     r"^rnn_step_forward: Wx must have shape \(3, 4\) for x \(2, 3\) and prev_h \(2, 4\), got "
     r"\(2, 4\)"),
    ("sequence h0 bool", lambda: R.rnn_forward(np.zeros((2, 1, 3)), _h > 0, _Wx, _Wh, _b),
     TypeError, r"^rnn_forward: h0 must hold real numbers"),
    ("sequence Wx strings", lambda: R.rnn_forward(np.zeros((2, 1, 3)), _h, _Wx.astype(str), _Wh,
                                                  _b), TypeError,
     r"^rnn_forward: Wx must hold real numbers"),
    ("sequence Wh strings", lambda: R.lstm_forward(np.zeros((2, 1, 3)), _h, _Wx4,
                                                   _Wh4.astype(str), _b4), TypeError,
     r"^lstm_forward: Wh must hold real numbers"),
    ("sequence b strings", lambda: R.rnn_forward(np.zeros((2, 1, 3)), _h, _Wx, _Wh,
                                                 _b.astype(str)), TypeError,
     r"^rnn_forward: b must hold real numbers"),
    ("mask strings", lambda: _loss_scores(np.full((2, 3), "1")), TypeError,
     r"^temporal_softmax_loss: mask must hold real numbers"),
    ("mask weights", lambda: _loss_scores(np.full((2, 3), 0.5)), ValueError,
     r"^temporal_softmax_loss: mask must hold booleans or 0 and 1"),
    ("mask 2", lambda: _loss_scores(np.array([[1, 2, 0], [0, 1, 1]])), ValueError,
     r"mask must hold booleans or 0 and 1"),
    ("scores strings", lambda: R.temporal_softmax_loss(
        np.zeros((1, 1, 2)).astype(str), np.zeros((1, 1), int), np.ones((1, 1), bool)),
     TypeError, r"^temporal_softmax_loss: x must hold real numbers"),
    # CaptioningRNN
    ("rnn hidden -1", lambda: _rnn(hidden_dim=-1), ValueError,
     r"^CaptioningRNN: hidden_dim must be an integer >= 1, got -1"),
    ("rnn wordvec 2.5", lambda: _rnn(wordvec_dim=2.5), ValueError,
     r"^CaptioningRNN: wordvec_dim must be an integer >= 1, got 2\.5"),
    ("rnn dtype int", lambda: _rnn(dtype=np.int32), TypeError,
     r"^CaptioningRNN: dtype must be a floating type"),
    ("rnn dtype nonsense", lambda: _rnn(dtype="floaty"), TypeError,
     r"^CaptioningRNN: dtype must be a floating type"),
    ("rnn cell None", lambda: _rnn(cell_type=None), ValueError, r'Invalid cell_type "None"'),
    ("vocab END past V", lambda: CaptioningRNN({"<NULL>": 0, "<START>": 1, "<END>": 7}),
     ValueError, r"^CaptioningRNN: word_to_idx: '<END>' maps to 7, outside \[0, 2\]"),
    ("vocab START at V", lambda: CaptioningRNN({"<NULL>": 0, "a": 1, "<START>": 3}), ValueError,
     r"'<START>' maps to 3, outside \[0, 2\]"),
    ("vocab shared index", lambda: CaptioningRNN({"<NULL>": 0, "a": 1, "b": 1}), ValueError,
     r"^CaptioningRNN: word_to_idx: 'a' and 'b' both map to 1"),
    ("vocab negative", lambda: CaptioningRNN({"<NULL>": 0, "a": -1}), ValueError,
     r"'a' maps to -1"),
    ("vocab float index", lambda: CaptioningRNN({"<NULL>": 0, "a": 1.0}), TypeError,
     r"'a' maps to 1\.0; indices must be integers"),
    ("vocab word int", lambda: CaptioningRNN({"<NULL>": 0, 5: 1}), TypeError,
     r"every word must be a string, got 5"),
    ("sample max 2.5", lambda: _rnn().sample(_x, max_length=2.5), ValueError,
     r"^CaptioningRNN.sample: max_length must be an integer >= 0, got 2\.5"),
    ("sample width", lambda: _rnn().sample(_h), ValueError,
     r"^CaptioningRNN.sample: features must be \(N, 3\) \(input_dim 3\), got \(2, 4\)"),
    ("sample strings", lambda: _rnn().sample(_x.astype(str)), TypeError,
     r"^CaptioningRNN.sample: features must hold numbers"),
    ("loss width", lambda: _rnn().loss(_h, np.ones((2, 3), int)), ValueError,
     r"^CaptioningRNN.loss: features must be \(N, 3\)"),
    ("sample features None", lambda: _rnn().sample(None), TypeError,
     r"^CaptioningRNN.sample: features must be an array of image features \(N, D\), got "
     r"NoneType"),
    ("loss captions None", lambda: _rnn().loss(_x, None), TypeError,
     r"^CaptioningRNN.loss: captions must be an array of word indices \(N, T\), got NoneType"),
    ("loss captions strings", lambda: _rnn().loss(_x, np.ones((2, 3)).astype(str)), TypeError,
     r"^CaptioningRNN.loss: captions must hold integer word indices, got dtype <U"),
    ("rnn input_dim 0", lambda: _rnn(input_dim=0), ValueError,
     r"^CaptioningRNN: input_dim must be an integer >= 1, got 0"),
    ("loss float captions", lambda: _rnn().loss(_x, np.ones((2, 3))), TypeError,
     r"^CaptioningRNN.loss: captions must hold integer word indices"),
    ("loss captions past V", lambda: _rnn().loss(_x, np.array([[1, 5, 2], [1, 2, 0]])),
     ValueError, r"^CaptioningRNN.loss: captions must hold word indices in \[0, 4\] \(the "
                 r"vocabulary's 5 words\), got values in \[0, 5\]"),
    ("loss captions negative", lambda: _rnn().loss(_x, np.array([[1, -1, 2], [1, 2, 0]])),
     ValueError, r"got values in \[-1, 2\]"),
    # CaptioningSolver and the minibatches
    ("solver empty", lambda: CaptioningSolver(_rnn(), _caption_data(
        train_captions=np.zeros((0, 4), int), train_image_idxs=np.zeros(0, int))), ValueError,
     r"^CaptioningSolver: data\['train_captions'\] must be integer word indices \(N, T\) with "
     r"N >= 1, got shape \(0, 4\)"),
    ("solver idxs past features", lambda: CaptioningSolver(_rnn(), _caption_data(
        train_image_idxs=np.arange(6) + 3)), ValueError,
     r"^CaptioningSolver: data\['train_image_idxs'\] holds image indices in \[3, 8\] but "
     r"data\['train_features'\] has 6 rows and data\['train_urls'\] 6 \(indices must lie in "
     r"\[0, 5\]\)"),
    ("solver fewer idxs", lambda: CaptioningSolver(_rnn(), _caption_data(
        train_image_idxs=np.arange(4))), ValueError,
     r"^CaptioningSolver: data\['train_image_idxs'\] must be \(6,\) integers, an image for each "
     r"of the 6 captions, got shape \(4,\)"),
    ("solver float captions", lambda: CaptioningSolver(_rnn(), _caption_data(
        train_captions=np.ones((6, 4)))), ValueError,
     r"data\['train_captions'\] must be integer word indices"),
    ("solver no urls", lambda: CaptioningSolver(_rnn(), {
        k: v for k, v in _caption_data().items() if k != "train_urls"}), KeyError,
     r"CaptioningSolver: data has no 'train_urls'"),
    ("solver batch 1.5", lambda: CaptioningSolver(_rnn(), _caption_data(), batch_size=1.5),
     ValueError, r"^CaptioningSolver: batch_size must be an integer >= 1, got 1\.5"),
    ("solver lr_decay 0", lambda: CaptioningSolver(_rnn(), _caption_data(), lr_decay=0),
     ValueError, r"^CaptioningSolver: lr_decay must be a finite number in \(0\.0, inf\]"),
    ("solver features 1-D", lambda: CaptioningSolver(_rnn(), _caption_data(
        train_features=np.zeros(6))), ValueError,
     r"data\['train_features'\] must be floating image features \(M, D\), got shape \(6,\)"),
    ("solver fewer features", lambda: CaptioningSolver(_rnn(), _caption_data(
        train_features=np.zeros((3, 3)))), ValueError,
     r"data\['train_image_idxs'\] holds image indices in \[0, 5\] but data\['train_features'\] "
     r"has 3 rows and data\['train_urls'\] 6 \(indices must lie in \[0, 2\]\)"),
    ("solver print_every", lambda: CaptioningSolver(_rnn(), _caption_data(), print_every=-1),
     ValueError, r"^CaptioningSolver: print_every must be an integer >= 0"),
    ("solver model without loss", lambda: CaptioningSolver(_Params(), _caption_data()),
     TypeError, r"^CaptioningSolver: model must have a params dict and loss"),
    ("solver model", lambda: CaptioningSolver(object(), _caption_data()), TypeError,
     r"^CaptioningSolver: model must have a params dict and loss\(features, captions\)"),
    ("solver data list", lambda: CaptioningSolver(_rnn(), []), TypeError,
     r"^CaptioningSolver: data must be the dict load_coco_data returns, got list"),
    ("minibatch size", lambda: sample_coco_minibatch(_caption_data(), batch_size=0), ValueError,
     r"^sample_coco_minibatch: batch_size must be an integer >= 1"),
    ("minibatch split", lambda: sample_coco_minibatch(_caption_data(), split="test"),
     ValueError, r"split must be 'train' or 'val', got 'test'"),
    ("minibatch no val", lambda: sample_coco_minibatch(_caption_data(), split="val"), KeyError,
     r"^\"sample_coco_minibatch: data has no 'val_captions' \(load it with "
     r"load_coco_data\)"),
    ("minibatch past features", lambda: sample_coco_minibatch(_caption_data(
        train_image_idxs=np.arange(6) + 10)), IndexError,
     r"^sample_coco_minibatch: data\['train_image_idxs'\] points past the features"),
    ("decode -1", lambda: decode_captions(np.array([1, -1, 2]), ["<NULL>", "<START>", "<END>"]),
     ValueError, r"^decode_captions: word index -1 has no word in idx_to_word \(3 words\)"),
    ("decode past", lambda: decode_captions(np.array([[1, 3]]), ["<NULL>", "<START>", "<END>"]),
     ValueError, r"word index 3 has no word"),
    ("decode float", lambda: decode_captions(np.array([1.0, 3.7]), ["a"] * 5), TypeError,
     r"^decode_captions: captions must hold integer word indices, got dtype float64"),
    ("decode 3-D", lambda: decode_captions(np.zeros((1, 1, 1), int), ["a"]), ValueError,
     r"captions must be \(N, T\) or one caption \(T,\), got shape \(1, 1, 1\)"),
    ("decode words None", lambda: decode_captions(np.array([0]), None), TypeError,
     r"^decode_captions: idx_to_word must be a list \(or dict\) of words, got NoneType"),
    ("decode captions None", lambda: decode_captions(None, ["a"]), TypeError,
     r"^decode_captions: captions must be an array of word indices"),
]


@pytest.mark.parametrize("call, exc, pattern", [r[1:] for r in A1_ROWS + A3_ROWS],
                         ids=[r[0] for r in A1_ROWS + A3_ROWS])
def test_bad_input_to_assignments_1_and_3(xb, call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


# ------------------------------------------------------------------ the COCO files
def _coco_folder(tmp_path):
    pytest.importorskip("h5py", reason="h5py (the 'coco' extra) reads the COCO files")
    from test_assignment3 import _write_coco
    folder = tmp_path / "coco_captioning"
    _write_coco(str(folder), np.random.RandomState(0))
    return folder


def _rewrite_h5(path, **datasets):
    import h5py
    with h5py.File(path, "a") as f:
        for key, value in datasets.items():
            if key in f:
                del f[key]
            if value is not None:
                f[key] = value


def _vocab(folder, obj=None, text=None):
    import json
    with open(folder / "coco2014_vocab.json", "w") as f:
        f.write(text if text is not None else json.dumps(obj))


def _cut(path, keep=0.5):
    raw = path.read_bytes()
    path.write_bytes(raw[:int(len(raw) * keep)])


def _big_features(path):
    import h5py
    path.unlink()
    with h5py.File(path, "w") as f:   # declared, never written: the file stays small
        f.create_dataset("features", shape=(2 ** 22, 4096), dtype="f4")


WORDS15 = ["<NULL>", "<START>", "<END>", "<UNK>", "a", "cat", "dog", "sits", "runs", "on", "the",
           "mat", "grass", "red", "big"]
CAPS, FEATS, VAL_URLS = "coco2014_captions.h5", "train2014_vgg16_fc7_pca.h5", "val2014_urls.txt"

# (id, damage(folder), exception, pattern): each names the file (and key)
COCO_ROWS = [
    ("captions random", lambda d: (d / CAPS).write_bytes(np.random.RandomState(0).bytes(4096)),
     ValueError, rf"^load_coco_data: '.*{CAPS}' is not a readable HDF5 file .*download it again"),
    ("captions empty", lambda d: (d / CAPS).write_bytes(b""), ValueError,
     rf"'.*{CAPS}' is not a readable HDF5 file"),
    ("captions cut", lambda d: _cut(d / CAPS, 0.6), ValueError,
     rf"'.*{CAPS}' (is not a readable HDF5 file|is cut|.* cannot be read)"),
    ("features cut", lambda d: _cut(d / FEATS, 0.7), ValueError,
     rf"'.*{FEATS}' (is not a readable HDF5 file|is cut|.* cannot be read)"),
    ("features 64 GiB", lambda d: _big_features(d / FEATS), ValueError,
     rf"'.*{FEATS}': 'features' declares a \(4194304, 4096\) float32 array of 64\.0 GiB, more "
     rf"than this machine's"),
    ("features missing key", lambda d: _rewrite_h5(d / FEATS, features=None, other=np.zeros(3)),
     KeyError, rf"'.*{FEATS}' has no 'features'; the course's file holds other"),
    ("features strings", lambda d: _rewrite_h5(d / FEATS, features=np.array([b"a", b"b"])),
     ValueError, r"'features' holds \|S1, not numbers"),
    ("no train_captions", lambda d: _rewrite_h5(d / CAPS, train_captions=None), KeyError,
     rf"data has no 'train_captions' \(load it with load_coco_data\) \(in '.*{CAPS}'\)"),
    ("float captions", lambda d: _rewrite_h5(d / CAPS, train_captions=np.ones((50, 9)) * 3.7),
     ValueError, r"^load_coco_data: data\['train_captions'\] must be integer word indices \(N, "
                 r"T\)"),
    ("1-D captions", lambda d: _rewrite_h5(d / CAPS, train_captions=np.ones(50, np.int32)),
     ValueError, r"data\['train_captions'\] must be integer word indices \(N, T\) with N >= 1, "
                 r"got shape \(50,\)"),
    ("negative caption", lambda d: _rewrite_h5(
        d / CAPS, val_captions=-np.ones((10, 9), np.int32)), ValueError,
     rf"^load_coco_data: 'val_captions' in '.*{CAPS}' holds word indices in \[-1, -1\], "
     rf"outside the vocabulary's \[0, 14\]"),
    ("caption past the vocabulary", lambda d: _rewrite_h5(
        d / CAPS, train_captions=np.full((50, 9), 15, np.int32)), ValueError,
     r"holds word indices in \[15, 15\], outside the vocabulary's \[0, 14\]"),
    ("image index past the features", lambda d: _rewrite_h5(
        d / CAPS, train_image_idxs=np.arange(50, dtype=np.int32) + 1), ValueError,
     r"data\['train_image_idxs'\] holds image indices in \[1, 50\] but data\['train_features'\] "
     r"has 50 rows and data\['train_urls'\] 50 \(indices must lie in \[0, 49\]\)"),
    ("fewer image indices", lambda d: _rewrite_h5(
        d / CAPS, train_image_idxs=np.arange(40, dtype=np.int32)), ValueError,
     r"data\['train_image_idxs'\] must be \(50,\) integers, an image for each of the 50 captions"),
    ("fewer urls", lambda d: (d / VAL_URLS).write_text("http://x\n" * 4), ValueError,
     rf"'val_image_idxs'\] holds image indices in \[0, 9\] but data\['val_features'\] has 10 "
     rf"rows and data\['val_urls'\] 4 .*\(in '.*{CAPS}', '.*val2014_vgg16_fc7_pca.h5', "
     rf"'.*{VAL_URLS}'\)"),
    ("urls binary", lambda d: (d / VAL_URLS).write_bytes(b"\xff\xfe\x00\x81" * 8), ValueError,
     rf"'.*{VAL_URLS}' is not a text file of image urls"),
    ("vocab cut", lambda d: _vocab(d, text='{"idx_to_word": ["<NULL>", "a'), ValueError,
     r"'.*coco2014_vocab\.json' is not the course's vocabulary JSON"),
    ("vocab empty", lambda d: _vocab(d, text=""), ValueError,
     r"'.*coco2014_vocab\.json' is not the course's vocabulary JSON"),
    ("vocab list", lambda d: _vocab(d, ["a"]), ValueError,
     r"coco2014_vocab\.json' holds a list, expected a JSON object with 'word_to_idx' and "
     r"'idx_to_word'"),
    ("vocab no word_to_idx", lambda d: _vocab(d, {"idx_to_word": WORDS15}), ValueError,
     r"'word_to_idx' must be a JSON object, got NoneType"),
    ("vocab index past the words", lambda d: _vocab(d, {"idx_to_word": WORDS15, "word_to_idx": {
        **{w: i for i, w in enumerate(WORDS15)}, "big": 15}}), ValueError, r"disagree"),
    ("vocab disagrees", lambda d: _vocab(d, {"idx_to_word": WORDS15, "word_to_idx": {
        w: (i + 1) % 15 for i, w in enumerate(WORDS15)}}), ValueError,
     r"'word_to_idx' \(15 words\) and 'idx_to_word' \(15\) disagree"),
    ("vocab too short", lambda d: _vocab(d, {"idx_to_word": WORDS15[:5], "word_to_idx": {
        w: i for i, w in enumerate(WORDS15)}}), ValueError, r"disagree"),
]


@pytest.mark.parametrize("damage, exc, pattern", [r[1:] for r in COCO_ROWS],
                         ids=[r[0] for r in COCO_ROWS])
def test_load_coco_data_refuses_a_damaged_file_naming_it(tmp_path, damage, exc, pattern):
    from xpnn.data import load_coco_data
    folder = _coco_folder(tmp_path)
    load_coco_data(str(folder))            # whole, it loads
    damage(folder)
    with pytest.raises(exc, match=pattern):
        load_coco_data(str(folder))


def test_a_vocabulary_json_cannot_replace_the_arrays(tmp_path):
    """The course copies every key of the JSON into the data; xpnn reads
    only the vocabulary from it, so a key 'train_captions' there changes
    nothing."""
    from xpnn.data import load_coco_data
    folder = _coco_folder(tmp_path)
    want = load_coco_data(str(folder))["train_captions"]
    _vocab(folder, {"idx_to_word": WORDS15, "word_to_idx": {w: i for i, w in enumerate(WORDS15)},
                    "train_captions": [[1, 2]]})
    np.testing.assert_array_equal(load_coco_data(str(folder))["train_captions"], want)
    for bad in (0, 2.5, -1):
        with pytest.raises(ValueError, match="^load_coco_data: max_train must be an integer >= 1"):
            load_coco_data(str(folder), max_train=bad)


# ------------------------------------------------------------------ image_from_url
def _png_header(width, height):
    """The first bytes of a PNG that declares width x height pixels (PIL
    reads the size from them before decoding anything)."""
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + \
        chunk(b"IEND", b"")


@pytest.fixture
def server():
    """A real HTTP server on localhost: /trickle sends a byte of its body
    every 0.15 s and never ends, /headers its headers so, /chunked the size
    line of a chunked body so; /huge declares 1 TB, /bomb is a PNG
    declaring 10^10 pixels, /text is not an image, /missing is a 404."""
    import http.server
    import threading
    import time

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _trickle(self, byte):
            while not stop.is_set():
                self.wfile.write(byte)
                self.wfile.flush()
                time.sleep(0.15)

        def do_GET(self):
            if self.path == "/missing":
                self.send_error(404)
                return
            try:
                if self.path == "/headers":
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    self._trickle(b"a")
                    return
                if self.path == "/chunked":
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    self._trickle(b"0")
                    return
            except OSError:
                return
            body = {"/bomb": _png_header(100000, 100000), "/bomb1x": _png_header(10000, 10000),
                    "/text": b"<html>no</html>", "/photo": PHOTO[1],
                    "/unsized": b"y" * 300}.get(self.path, b"x")
            self.send_response(200)
            length = {"/huge": str(2 ** 40), "/trickle": str(10 ** 6)}.get(self.path,
                                                                         str(len(body)))
            if self.path != "/unsized":
                self.send_header("Content-Length", length)
            self.end_headers()
            try:
                if self.path == "/trickle":
                    self._trickle(b"x")
                elif self.path in ("/photo", "/unsized"):   # in pieces, as a network
                    for i in range(0, len(body), 97):              # delivers
                        self.wfile.write(body[i:i + 97])
                        self.wfile.flush()
                        time.sleep(0.002)
                else:
                    self.wfile.write(body)
            except OSError:
                pass   # the client hung up

    stop = threading.Event()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    stop.set()
    httpd.shutdown()
    httpd.server_close()


def _photo():
    """A small PNG photo (an RGB gradient) and its bytes."""
    import io
    from PIL import Image
    img = (np.arange(24 * 20 * 3) % 251).astype(np.uint8).reshape(24, 20, 3)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return img, buf.getvalue()


PHOTO = _photo()


def _call_in_thread(fn, limit=60):
    """fn() in a thread: its result, or a failure if it does not return
    within ``limit`` seconds (a download without a total deadline would
    never return from /trickle)."""
    import threading
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as exc:   # noqa: BLE001 (handed to the test)
            box["error"] = exc
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(limit)
    assert not t.is_alive(), f"still downloading after {limit} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


@pytest.mark.parametrize("path", ["/trickle", "/headers", "/chunked"])
def test_image_from_url_stops_a_trickling_server_at_its_deadline(server, path, capsys):
    """The timeout is one deadline for the whole download (the socket's own
    timeout is per read, and every read here gets a byte in time)."""
    from xpnn.data import image_from_url
    assert _call_in_thread(lambda: image_from_url(server + path, timeout=1)) is None
    out = capsys.readouterr().out
    assert out.startswith("URL Error:  no whole image within timeout=1 s ") and path in out
    assert image_from_url(server + "/missing", timeout=5) is None
    assert capsys.readouterr().out.startswith("URL Error:  Not Found ")


def test_image_from_url_reads_an_image_sent_in_pieces(server, tmp_path, monkeypatch):
    """The body arrives in many reads; they are joined whole. A grey image
    comes back RGB, as the course's notebooks show it. A body without a
    Content-Length is still held to the size limit."""
    from PIL import Image

    from xpnn import data as D
    np.testing.assert_array_equal(D.image_from_url(server + "/photo", timeout=10), PHOTO[0])
    Image.fromarray(PHOTO[0][..., 0]).save(tmp_path / "grey.png")
    grey = D.image_from_url((tmp_path / "grey.png").as_uri())
    assert grey.shape == (24, 20, 3) and (grey[..., 0] == grey[..., 2]).all()
    monkeypatch.setattr(D, "MAX_IMAGE_BYTES", 200)
    with pytest.raises(ValueError, match=r"/unsized' sends more than 200 bytes"):
        D.image_from_url(server + "/unsized", timeout=10)


@pytest.mark.parametrize("path, pattern", [
    ("/huge", r"declares 1099511627776 bytes \(Content-Length\), more than an image this "
              r"function reads \(67108864\); not downloading it"),
    ("/bomb", r"is an image of more pixels than PIL reads safely .*a decompression bomb"),
    ("/bomb1x", r"is an image of more pixels than PIL reads safely .*a decompression bomb"),
    ("/text", r"is not an image PIL can read"),
])
def test_image_from_url_refuses_what_is_not_a_photo(server, path, pattern):
    from xpnn.data import image_from_url
    with pytest.raises(ValueError, match=rf"^image_from_url: '{server}{path}' " + pattern):
        _call_in_thread(lambda: image_from_url(server + path, timeout=5))


@pytest.mark.parametrize("url, timeout, exc, pattern", [
    (None, 10, TypeError, r"url must be a string \(an http or https address\), got NoneType"),
    (b"http://x", 10, TypeError, r"url must be a string"),
    ("http://127.0.0.1:9/a.jpg", 0, ValueError, r"timeout must be a finite number in \(0\.0"),
    ("http://127.0.0.1:9/a.jpg", float("nan"), ValueError, r"timeout must be a finite number"),
    ("http://127.0.0.1:9/a.jpg", "5", TypeError, r"timeout must be a number, got '5'"),
])
def test_image_from_url_bad_arguments(url, timeout, exc, pattern):
    from xpnn.data import image_from_url
    with pytest.raises(exc, match="^image_from_url: " + pattern):
        image_from_url(url, timeout=timeout)


# ------------------------------------------------------------------ the course's save / load
@pytest.fixture
def saved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path / "cs231n" / "saved"


def _fc(edition="cs231n_2022", hidden=(5,), **kw):
    FC = _mod(edition, "classifiers.fc_net").FullyConnectedNet
    return FC(list(hidden), input_dim=4, num_classes=3, dtype=np.float64, **kw)


def test_a_save_that_fails_part_way_leaves_the_previous_file_whole(saved, monkeypatch):
    m = _fc()
    m.save("net.npy")
    before = (saved / "net.npy").read_bytes()
    real = np.save

    def half_then_full_disk(f, arr, *a, **k):
        real(f, arr, *a, **k)
        f.truncate(f.tell() // 2)
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(np, "save", half_then_full_disk)
    m.params["W1"] = m.params["W1"] + 1
    with pytest.raises(OSError, match="No space left"):
        m.save("net.npy")
    monkeypatch.setattr(np, "save", real)
    assert (saved / "net.npy").read_bytes() == before
    assert [p.name for p in saved.iterdir()] == ["net.npy"]      # no temporary file left
    assert _fc().load("net.npy")


def test_save_names_the_file_as_np_save_does(saved, capsys):
    """np.save adds .npy to a name without it; the course's load then looks
    for the name as given, so load('net') says 'not available' there too."""
    m = _fc()
    m.save("net")
    assert (saved / "net.npy").is_file() and not (saved / "net").exists()
    assert m.load("net") is False and m.load("net.npy") is True
    assert capsys.readouterr().out.splitlines() == ["net saved.", "net not available.",
                                                    "net.npy loaded."]


def test_batch_norm_statistics_are_saved_and_the_course_still_reads_the_file(saved):
    np.random.seed(0)
    m = _fc(hidden=(6, 5), normalization="batchnorm")
    r = np.random.RandomState(1)
    for _ in range(3):
        m.loss(r.randn(8, 4), r.randint(3, size=8))      # training mode moves the statistics
    m.save("bn.npy")
    fresh = _fc(hidden=(6, 5), normalization="batchnorm")
    assert fresh.load("bn.npy")
    for mine, theirs in zip(fresh.bn_params, m.bn_params):
        for k in ("running_mean", "running_var"):
            np.testing.assert_array_equal(host(mine[k]), host(theirs[k]))
    X = r.randn(5, 4)
    np.testing.assert_array_equal(host(fresh.loss(X)), host(m.loss(X)))
    course = np.load(saved / "bn.npy", allow_pickle=True).item()   # the course's own load
    assert set(course) == set(m.params)
    for k in course:
        np.testing.assert_array_equal(course[k], host(m.params[k]))


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _npy(obj):
    import io
    buf = io.BytesIO()
    np.save(buf, obj, allow_pickle=True)
    return buf.getvalue()


def _header_only(shape):
    import io
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue() + b"\0" * 64


SAVED_ROWS = [
    ("another model", lambda m: _npy(np.array({"W": np.zeros((4, 3))}, dtype=object)),
     r"holds the parameters \['W'\] but this FullyConnectedNet has \['W1', 'W2', 'b1', 'b2'\]: "
     r"it was saved from another model"),
    ("other sizes", lambda m: _npy(np.array({**{k: host(v) for k, v in m.params.items()},
                                             "W1": np.zeros((4, 7))}, dtype=object)),
     r"param 'W1' has shape \(4, 7\), this model's is \(4, 5\)"),
    ("a string param", lambda m: _npy(np.array({**{k: host(v) for k, v in m.params.items()},
                                                "b1": "zeros"}, dtype=object)),
     r"param 'b1' is a str, not an array of numbers"),
    ("a plain array", lambda m: _npy(np.zeros(3)),
     r"holds a ndarray, not the dict of parameters save\(\) writes"),
    ("cut", lambda m: _npy(np.array({k: host(v) for k, v in m.params.items()},
                                    dtype=object))[:300],
     r"is not a file save\(\) writes \(.*\); it is cut, damaged or something else"),
    ("random", lambda m: np.random.RandomState(0).bytes(500), r"is not a file save\(\) writes"),
    ("empty", lambda m: b"", r"is not a file save\(\) writes"),
    ("declares 800 TB", lambda m: _header_only((10 ** 14,)),
     r"is not a file save\(\) writes \(ValueError: it declares a \(100000000000000,\) float64 "
     r"array of 800000000000000 bytes but holds 64\)"),
]


@pytest.mark.parametrize("make, pattern", [r[1:] for r in SAVED_ROWS],
                         ids=[r[0] for r in SAVED_ROWS])
def test_load_refuses_a_file_that_is_not_this_models(saved, make, pattern):
    m = _fc()
    before = {k: host(v).copy() for k, v in m.params.items()}
    _write(saved / "x.npy", make(m))
    with pytest.raises(ValueError, match=r"^load: 'cs231n/saved/x\.npy'(: | )" + pattern):
        m.load("x.npy")
    for k in before:                                      # nothing changed
        np.testing.assert_array_equal(host(m.params[k]), before[k])


def test_a_linear_classifier_loads_a_w_only(saved):
    Softmax = _mod("cs231n_2022", "classifiers").Softmax
    _write(saved / "fc.npy", _npy(np.array({k: host(v) for k, v in _fc().params.items()},
                                           dtype=object)))
    with pytest.raises(ValueError, match=r"holds the parameters \['W1', 'W2', 'b1', 'b2'\] but "
                                         r"this Softmax has \['W'\]"):
        Softmax().load("fc.npy")
    clf = Softmax()
    clf.W = np.zeros((4, 3))
    clf.save("w.npy")
    assert Softmax().load("w.npy")            # a new classifier takes any W
    other = Softmax()
    other.W = np.zeros((5, 3))
    with pytest.raises(ValueError, match=r"param 'W' has shape \(4, 3\), this model's is \(5, 3\)"):
        other.load("w.npy")


def test_a_saved_batch_norm_record_sets_only_the_statistics(saved):
    """A crafted record cannot change a layer's settings (eps, momentum),
    and float64 statistics come into a float32 model as float32."""
    FC = _mod("cs231n_2022", "classifiers.fc_net").FullyConnectedNet
    m = FC([5], input_dim=4, num_classes=3, normalization="batchnorm")
    m.loss(np.random.RandomState(0).randn(6, 4).astype(np.float32), np.arange(6) % 3)
    eps = m.bn_params[0].get("eps")
    params = {k: host(v) for k, v in m.params.items()}
    record = {"bn_params": [{"running_mean": np.ones(5), "running_var": np.ones(5),
                             "eps": np.array(-1.0), "momentum": np.array(5.0)}]}
    import io
    buf = io.BytesIO()
    np.save(buf, params)
    np.save(buf, record)
    _write(saved / "c.npy", buf.getvalue())
    assert m.load("c.npy")
    assert m.bn_params[0].get("eps") == eps and m.bn_params[0].get("momentum") != 5.0
    assert host(m.bn_params[0]["running_mean"]).dtype == np.float32


def test_numbers_as_0_d_arrays_are_accepted_as_the_course_accepts_them():
    """The course's code takes reg=np.array(5e-6) (it only multiplies)."""
    assert L.svm_loss_naive(W, X, Y, np.array(0.0))[0] == L.svm_loss_naive(W, X, Y, 0.0)[0]
    assert _knn().predict(X[:3], k=np.array(2)).shape == (3,)


# ------------------------------------------------------------------ the edges the checks keep
def test_what_the_checks_still_accept():
    """The edges of each check, accepted: an RGB row (W, 3) has grey
    levels; an image of exactly one cell has one cell; cells of any shape
    (rows and columns checked each against its own); a uint8 (H, W, 1)
    image is its grey levels as numbers (no uint8 differences); a vocabulary
    of one word besides '<NULL>', input_dim 1."""
    assert F.rgb2gray(np.ones((5, 3))).shape == (5,)
    assert F.hog_feature(IMG[:8, :8]).shape == (9,)
    assert F.hog_feature(IMG[:6], cell=(4, 8)).shape == (1 * 4 * 9,)
    assert F.hog_feature(IMG[:, :6], cell=(8, 4)).shape == (4 * 1 * 9,)
    grey = IMG[..., :1]
    np.testing.assert_array_equal(F.hog_feature(grey), F.hog_feature(grey.astype(float)))
    m = CaptioningRNN({"<NULL>": 0, "<START>": 1}, input_dim=1, wordvec_dim=1, hidden_dim=1)
    assert m.sample(np.ones((2, 1)), max_length=3).shape == (2, 3)


def test_an_lstm_cell_state_given_as_a_number_keeps_the_states_dtype(xb):
    r = np.random.RandomState(2)
    x, h = r.randn(2, 3).astype(np.float32), r.randn(2, 4).astype(np.float32)
    W = [r.randn(*s).astype(np.float32) for s in ((3, 16), (4, 16), (16,))]
    for c in (0, xb.asarray(np.array(0.25, dtype=np.float32))):
        next_h, next_c, _ = R.lstm_step_forward(xb.asarray(x), xb.asarray(h), c,
                                                *[xb.asarray(w) for w in W])
        assert host(next_c).dtype == np.float32 and host(next_c).shape == (2, 4)
        want = R.lstm_step_forward(xb.asarray(x), xb.asarray(h),
                                   xb.asarray(np.full((2, 4), float(host(c)), np.float32)),
                                   *[xb.asarray(w) for w in W])[1]
        np.testing.assert_array_equal(host(next_c), host(want))


def test_course_signatures_and_quiet_defaults(capsys):
    import inspect

    from xpnn.data import image_from_url, load_coco_data
    assert str(inspect.signature(CaptioningSolver.check_accuracy)) == \
        "(self, X, y, num_samples=None, batch_size=100)"
    assert str(inspect.signature(sample_coco_minibatch)) == \
        "(data, batch_size=100, split='train')"
    assert str(inspect.signature(load_coco_data)) == \
        "(base_dir=None, max_train=None, pca_features=True)"
    assert str(inspect.signature(image_from_url)) == "(url, timeout=10)"
    np.random.seed(0)
    L.Softmax().train(X, Y, num_iters=101)
    _ucla("SVM").train(X, Y, num_iters=101)
    assert capsys.readouterr().out == ""      # verbose is off by default


def test_pca_features_false_reads_the_full_features(tmp_path):
    from xpnn.data import load_coco_data, sample_coco_minibatch
    folder = _coco_folder(tmp_path)
    for split, n in (("train", 50), ("val", 10)):
        _rewrite_h5(folder / f"{split}2014_vgg16_fc7.h5", features=np.ones((n, 40), np.float32))
    assert load_coco_data(str(folder), pca_features=False)["train_features"].shape == (50, 40)
    data = load_coco_data(str(folder))
    assert data["train_features"].shape == (50, 24)
    assert sample_coco_minibatch(data)[0].shape == (100, 9)       # batch_size 100 by default


def test_every_damaged_byte_of_a_coco_file_gives_an_error_naming_it(tmp_path):
    """Each of a sweep of one-byte corruptions of the captions file either
    still loads or is refused naming the file (h5py's own errors of a
    damaged file name none)."""
    from xpnn.data import load_coco_data
    folder = _coco_folder(tmp_path)
    path = folder / CAPS
    raw = path.read_bytes()
    refused = 0
    for pos in range(0, len(raw), max(1, len(raw) // 150)):
        damaged = bytearray(raw)
        damaged[pos] ^= 0xFF
        path.write_bytes(bytes(damaged))
        try:
            load_coco_data(str(folder))
        except (ValueError, KeyError) as exc:
            refused += 1
            assert str(path) in str(exc), (pos, exc)
    assert refused > 10


def test_max_train_draws_captions_with_their_images(tmp_path):
    from xpnn.data import load_coco_data
    folder = _coco_folder(tmp_path)
    full = load_coco_data(str(folder))
    _rewrite_h5(folder / CAPS, train_image_idxs=np.arange(50, dtype=np.int32)[::-1].copy())
    np.random.seed(4)
    small = load_coco_data(str(folder), max_train=7)
    np.random.seed(4)
    mask = np.random.randint(50, size=7)
    np.testing.assert_array_equal(small["train_captions"], full["train_captions"][mask])
    np.testing.assert_array_equal(small["train_image_idxs"], 49 - mask)
