"""Assignment 1: k-nearest neighbours, the linear classifiers' losses and
training, and the image features, in xpnn's own modules and through each
edition's course names. Snippets are written for these tests in the
notebooks' style."""
from __future__ import annotations

import importlib

import numpy as np
import pytest

from xpnn import backend
from xpnn.compat import EDITIONS
from xpnn.features import color_histogram_hsv, extract_features, hog_feature
from xpnn.gradient_check import eval_numerical_gradient, rel_error
from xpnn.models import knn as knn_mod
from xpnn.models import linear

from conftest import host

CS231N = [e for e in EDITIONS if not e.startswith("nndl")]


def _mod(edition, path):
    return importlib.import_module(f"xpnn.compat.{edition}.{path}")


def _dev_set(seed=0, N=40, D=12, C=5):
    r = np.random.RandomState(seed)
    return r.randn(N, D), r.randint(C, size=N), 1e-2 * r.randn(D, C)


# ------------------------------------------------------------------ losses
@pytest.mark.parametrize("kind", ["svm", "softmax"])
def test_naive_and_vectorized_losses_agree_and_pass_a_gradient_check(xb, kind):
    """The notebook's checks: naive vs vectorized loss and gradient (their
    difference ~0), and each gradient against a float64 numerical one, with
    and without regularisation."""
    X, y, W = _dev_set()
    naive = getattr(linear, f"{kind}_loss_naive")
    fast = getattr(linear, f"{kind}_loss_vectorized")
    for reg in (0.0, 0.3):
        ln, gn = naive(W, X, y, reg)
        lf, gf = fast(W, X, y, reg)
        assert isinstance(ln, float) and isinstance(lf, float)
        assert ln == pytest.approx(lf, rel=1e-12)
        np.testing.assert_allclose(host(gn), host(gf), rtol=1e-10, atol=1e-13)
        for fn, g in ((naive, gn), (fast, gf)):
            num = eval_numerical_gradient(lambda w: fn(w, X, y, reg)[0], W.copy(),
                                          verbose=False)
            assert rel_error(num, host(g)) < 1e-7
    assert host(gf).shape == W.shape


def test_the_notebooks_sanity_values():
    """Small random weights: the SVM loss is about C - 1 (every margin about
    1), the softmax loss about -log(1/C), as the notebooks say."""
    r = np.random.RandomState(1)
    X, y = r.randn(500, 30), r.randint(10, size=500)
    W = 1e-4 * r.randn(30, 10)
    assert linear.svm_loss_vectorized(W, X, y, 0.0)[0] == pytest.approx(9.0, abs=0.01)
    assert linear.softmax_loss_vectorized(W, X, y, 0.0)[0] == pytest.approx(-np.log(0.1),
                                                                             abs=1e-3)


@pytest.mark.parametrize("edition", CS231N)
def test_each_edition_regularises_as_its_course(edition):
    """2016: loss + 0.5 * reg * sum(W**2), gradient + reg * W; 2017 on:
    reg * sum(W**2) and 2 * reg * W."""
    X, y, W = _dev_set()
    scale = 0.5 if edition == "cs231n_2016" else 1.0
    for path, name in (("classifiers.linear_svm", "svm_loss_vectorized"),
                       ("classifiers.softmax", "softmax_loss_naive")):
        fn = getattr(_mod(edition, path), name)
        l0, g0 = fn(W, X, y, 0.0)
        l1, g1 = fn(W, X, y, 0.25)
        assert l1 - l0 == pytest.approx(scale * 0.25 * np.sum(W * W), rel=1e-10)
        np.testing.assert_allclose(host(g1) - host(g0), 2 * scale * 0.25 * W, rtol=1e-9)


def test_bad_inputs_say_what_was_expected():
    X, y, W = _dev_set()
    with pytest.raises(ValueError, match=r"X \(40, 12\) needs W with 12 rows"):
        linear.svm_loss_vectorized(W[:5], X, y, 0.0)
    with pytest.raises(TypeError, match="integer class labels"):
        linear.softmax_loss_naive(W, X, y.astype(float), 0.0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\]"):
        linear.svm_loss_naive(W, X, y + 3, 0.0)
    with pytest.raises(RuntimeError, match="call train"):
        linear.LinearSVM().predict(X)


# ------------------------------------------------------------------ linear classifiers
def _blobs(seed=0, N=300, D=6, C=3):
    r = np.random.RandomState(seed)
    y = r.randint(C, size=N)
    centres = 4 * r.randn(C, D)
    return centres[y] + r.randn(N, D), y


@pytest.mark.parametrize("cls", ["LinearSVM", "Softmax"])
def test_linear_classifier_trains_and_repeats_on_every_backend(cls, capsys):
    """Seeded training draws W and the batches from NumPy's RandomState: the
    same losses on NumPy and on the simulated device; the loss falls and the
    separable blobs are learnt; verbose prints the course's lines."""
    X, y = _blobs()
    runs = []
    for name in ("numpy", "array_api_strict"):
        with backend.use_backend(name):
            np.random.seed(0)
            clf = getattr(linear, cls)()
            hist = clf.train(X, y, learning_rate=1e-2, reg=1e-3, num_iters=201,
                             batch_size=50, verbose=True)
            runs.append((hist, clf.predict(X)))
    (h0, p0), (h1, p1) = runs
    assert h0 == h1 and all(isinstance(v, float) for v in h0) and len(h0) == 201
    np.testing.assert_array_equal(p0, p1)
    assert isinstance(p0, np.ndarray) and np.mean(p0 == y) > 0.9
    assert np.mean(h0[-20:]) < 0.5 * h0[0]
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [f"iteration {i} / 201: loss {h0[i]:f}" for i in (0, 100, 200)]


def test_train_continues_from_the_weights_it_has():
    X, y = _blobs()
    np.random.seed(0)
    clf = linear.Softmax()
    clf.train(X, y, num_iters=5)
    W = host(clf.W).copy()
    clf.train(X, y, num_iters=0)
    np.testing.assert_array_equal(host(clf.W), W)


# ------------------------------------------------------------------ k-NN
def test_knn_distances_agree_and_match_a_hand_computation(xb):
    r = np.random.RandomState(0)
    Xtr, ytr = r.randn(30, 7), r.randint(4, size=30)
    Xte = np.vstack([r.randn(9, 7), Xtr[:1]])   # the last test point is a training point
    clf = knn_mod.KNearestNeighbor()
    clf.train(Xtr, ytr)
    two = clf.compute_distances_two_loops(Xte)
    one = clf.compute_distances_one_loop(Xte)
    none = clf.compute_distances_no_loops(Xte)
    want = np.sqrt(((Xte[:, None, :] - Xtr[None, :, :]) ** 2).sum(-1))
    for d in (two, one, none):
        assert isinstance(d, np.ndarray) and d.shape == (10, 30)
        np.testing.assert_allclose(d, want, rtol=1e-10, atol=1e-7)
    assert none[-1, 0] < 1e-6 and not np.isnan(none).any()   # its own distance: ~0, not NaN
    assert np.linalg.norm(two - none, ord="fro") < 1e-6     # the notebook's check
    for k in (1, 3, 5):
        got = clf.predict(Xte, k=k)
        idx = np.argsort(want, axis=1, kind="stable")[:, :k]
        expect = [np.argmax(np.bincount(ytr[row], minlength=4)) for row in idx]
        np.testing.assert_array_equal(got, expect)


def test_knn_votes_tie_to_the_smaller_label():
    """Two nearest neighbours of labels 3 and 1 at equal distance: label 1;
    among equally distant points the earlier training point comes first."""
    Xtr = np.array([[1.0, 0], [-1.0, 0], [0, 5.0]])
    ytr = np.array([3, 1, 0])
    clf = knn_mod.KNearestNeighbor()
    clf.train(Xtr, ytr)
    assert clf.predict(np.zeros((1, 2)), k=2).tolist() == [1]
    assert clf.predict(np.zeros((1, 2)), k=1).tolist() == [3]     # the earlier of the two
    with pytest.raises(ValueError, match="Invalid value 3 for num_loops"):
        clf.predict(np.zeros((1, 2)), num_loops=3)
    with pytest.raises(ValueError, match=r"k must be in \[1, 3\]"):
        clf.predict(np.zeros((1, 2)), k=4)
    with pytest.raises(ValueError, match=r"X must be \(M, 2\)"):
        clf.predict(np.zeros((1, 3)))


# ------------------------------------------------------------------ features
def test_hog_of_ramps_by_hand():
    """A horizontal ramp: every gradient points at 90 degrees (bin 4 of 9)
    with magnitude 3 except the last column's (0); a cell's value is the mean
    magnitude of its 8x8 pixels: 3, and 3 * 7/8 in the last column of
    cells. A vertical ramp's gradients point at 180 degrees, which no bin
    holds (the course's bins are [20b, 20(b+1)), angle > 0): all zero."""
    ramp = np.tile(3.0 * np.arange(32), (32, 1))
    h = hog_feature(ramp).reshape(4, 4, 9)
    expect = np.zeros((4, 4, 9))
    expect[:, :, 4] = 3.0
    expect[3, :, 4] = 3.0 * 7 / 8          # (cell rows are the image's columns: .T)
    np.testing.assert_allclose(h, expect, rtol=1e-12, atol=1e-12)
    assert not hog_feature(ramp.T).any()
    assert not hog_feature(np.full((32, 32, 3), 7.0)).any()
    rgb = np.stack([ramp, ramp, ramp], axis=-1)    # grey = ramp * (0.299 + 0.587 + 0.144)
    np.testing.assert_allclose(hog_feature(rgb), 1.03 * hog_feature(ramp), rtol=1e-12)


def test_hue_histogram_by_hand():
    red = np.zeros((4, 4, 3))
    red[..., 0] = 255
    green = np.zeros((4, 4, 3))
    green[..., 1] = 255
    h = color_histogram_hsv(np.concatenate([red, green]), nbin=10)
    expect = np.zeros(10)
    expect[0], expect[3] = 0.5, 0.5        # hue 0 and 255/3 = 85 (bin [76.5, 102))
    np.testing.assert_allclose(h, expect, rtol=1e-12)
    # unnormalised: the counts times the bin width (51), as the course's code returns
    assert color_histogram_hsv(red, nbin=5, normalized=False).tolist() == [816, 0, 0, 0, 0]


def test_extract_features_stacks_each_function_and_reports(capsys):
    imgs = np.random.RandomState(0).rand(1001, 2, 2, 3)
    fns = [lambda im: im[..., 0].ravel(), lambda im: np.array([im.mean()])]
    F = extract_features(imgs, fns, verbose=True)
    assert F.shape == (1001, 5)
    np.testing.assert_allclose(F[7], np.r_[imgs[7, ..., 0].ravel(), imgs[7].mean()])
    assert capsys.readouterr().out == "Done extracting features for 1000 / 1001 images\n"
    assert extract_features(imgs[:0], fns).size == 0
    with pytest.raises(ValueError, match="one-dimensional"):
        extract_features(imgs, [lambda im: im])


# ------------------------------------------------------------------ the editions
@pytest.mark.parametrize("edition", CS231N)
def test_cs231n_assignment1_names(edition):
    ns: dict = {}
    exec(f"from xpnn.compat.{edition}.classifiers import *", ns)
    for name in ("KNearestNeighbor", "LinearSVM", "Softmax", "LinearClassifier",
                 "svm_loss_vectorized", "softmax_loss_vectorized", "np"):
        assert name in ns, name
    feats: dict = {}
    exec(f"from xpnn.compat.{edition}.features import *", feats)
    assert {"hog_feature", "color_histogram_hsv", "extract_features"} <= set(feats)
    clf = ns["KNearestNeighbor"]()
    clf.train(np.eye(3), np.array([2, 0, 1]))
    pred = clf.predict(np.eye(3))
    assert pred.dtype == np.float64 and pred.tolist() == [2.0, 0.0, 1.0]   # np.zeros filled


def test_cs231n_2016_two_layer_net_regularises_by_half():
    """2016's notebook checks the toy net's loss at reg=0.1 against the value
    2017 on checks at reg=0.05."""
    TwoLayerNet = _mod("cs231n_2016", "classifiers.neural_net").TwoLayerNet
    np.random.seed(0)
    net = TwoLayerNet(4, 10, 3, std=1e-1)
    np.random.seed(1)
    X = 10 * np.random.randn(5, 4)
    loss, _ = net.loss(X, np.array([0, 1, 2, 2, 1]), reg=0.1)
    assert abs(float(host(loss)) - 1.30378789133) < 1e-10


@pytest.mark.parametrize("edition", ["nndl", "nndl_2022"])
def test_ucla_knn(edition):
    KNN = _mod(edition, "knn").KNN
    r = np.random.RandomState(0)
    Xtr, ytr, Xte = r.randn(20, 4), r.randint(3, size=20), r.randn(6, 4)
    knn = KNN()
    knn.train(X=Xtr, y=ytr)
    d = knn.compute_distances(Xte)
    np.testing.assert_allclose(knn.compute_L2_distances_vectorized(Xte), d, rtol=1e-10)
    l1 = knn.compute_distances(Xte, norm=lambda x: np.sum(np.abs(x)))
    np.testing.assert_allclose(l1, np.abs(Xte[:, None] - Xtr[None]).sum(-1), rtol=1e-12)
    pred = knn.predict_labels(d, k=3)
    assert pred.dtype == np.float64 and pred.shape == (6,)


@pytest.mark.parametrize("name", ["Softmax", "SVM"])
def test_ucla_linear_classifiers(name, capsys):
    """UCLA's classes hold W (C, D): loss, loss_and_grad and
    fast_loss_and_grad agree and pass a gradient check; grad_check_sparse
    prints num_checks lines of small error; train draws new weights each
    call (seeded runs repeat) and learns the blobs."""
    cls = getattr(_mod("nndl", name.lower()), name)
    X, y = _blobs(N=60, D=5, C=3)
    np.random.seed(0)
    model = cls(dims=[3, 5])
    assert model.W.shape == (3, 5)
    loss, grad = model.loss_and_grad(X, y)
    fast_loss, fast_grad = model.fast_loss_and_grad(X, y)
    assert model.loss(X, y) == pytest.approx(loss, rel=1e-12) == fast_loss
    np.testing.assert_allclose(grad, fast_grad, rtol=1e-10, atol=1e-13)
    assert grad.shape == (3, 5)

    def f(w):
        model.W = w
        return model.loss(X, y)
    W = model.W.copy()
    num = eval_numerical_gradient(f, W.copy(), verbose=False)
    model.W = W
    assert rel_error(num, grad) < 1e-7
    capsys.readouterr()
    model.grad_check_sparse(X, y, grad, num_checks=4)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all(float(l.rsplit(" ", 1)[1]) < 1e-6 for l in lines)
    hists = []
    for _ in range(2):
        np.random.seed(1)
        hists.append(model.train(X, y, learning_rate=1e-2, num_iters=150, batch_size=20))
    assert hists[0] == hists[1] and len(hists[0]) == 150
    assert np.mean(model.predict(X) == y) > 0.9


def test_hog_of_a_wide_image_has_a_cell_per_8x8_block():
    """The course's code needs square images; cells of any image come out
    (H // 8) * (W // 8) * 9, a square image's exactly as before."""
    r = np.random.RandomState(0)
    assert hog_feature(r.rand(32, 48, 3)).shape == (4 * 6 * 9,)
    assert hog_feature(r.rand(30, 30)).shape == (3 * 3 * 9,)
    ramp = np.tile(np.arange(48.0), (32, 1))          # 32 rows, 48 columns
    h = hog_feature(ramp).reshape(6, 4, 9)            # cell rows follow the image's columns
    assert np.all(h[:5, :, 4] == 1.0) and np.all(h[5, :, 4] == 7 / 8)


# ------------------------------------------------------------------ what mutation testing asked for
LOSSES = ["svm_loss_naive", "svm_loss_vectorized", "softmax_loss_naive",
          "softmax_loss_vectorized"]


@pytest.mark.parametrize("name", LOSSES)
def test_every_loss_names_itself_and_what_was_wrong(name):
    """Each check of each loss: the function's name first, then what was
    expected; labels from 0 to C - 1 are classes, C and -1 are not."""
    fn = getattr(linear, name)
    X, y, W = _dev_set()
    for bad in (dict(W=W[0]), dict(X=X[None]), dict(y=y[:, None])):
        a = {**dict(W=W, X=X, y=y), **bad}
        with pytest.raises(ValueError, match=rf"^{name}: W must be \(D, C\), X \(N, D\) and "
                                             r"y \(N,\); got"):
            fn(a["W"], a["X"], a["y"], 0.0)
    with pytest.raises(ValueError, match=rf"^{name}: X \(40, 12\) needs W with 12 rows and "
                                         r"40 labels"):
        fn(W, X, y[:-1], 0.0)
    with pytest.raises(ValueError, match=rf"^{name}: X is an empty batch"):
        fn(W, X[:0], y[:0], 0.0)
    fn(W, X[:1], y[:1], 0.0)                       # one sample is a batch
    y4 = y.copy()
    y4[3] = 4
    fn(W, X, y4, 0.0)                              # the last class is a class
    for bad, got in ((5, r"\[0, 5\]"), (-1, r"\[-1, 4\]")):
        yb = y4.copy()
        yb[7] = bad
        with pytest.raises(ValueError, match=rf"^{name}: labels must lie in \[0, 4\] for W's "
                                             rf"5 classes, got values in {got}"):
            fn(W, X, yb, 0.0)


def test_a_margin_of_exactly_zero_adds_no_gradient():
    """The SVM's hinge counts a class only when its margin is above 0: at
    exactly 0 (scores 1 and 0, margin 1) neither the loss nor the gradient
    moves, in the loops as in the vectorized version."""
    W, X, y = np.array([[1.0, 0.0]]), np.array([[1.0]]), np.array([0])
    for fn in (linear.svm_loss_naive, linear.svm_loss_vectorized):
        loss, dW = fn(W, X, y, 0.0)
        assert loss == 0 and not host(dW).any()


def test_softmax_losses_are_stable_for_large_scores():
    X, y = np.array([[1.0], [2.0]]), np.array([0, 1])
    W = np.array([[900.0, 899.0]])
    for fn in (linear.softmax_loss_naive, linear.softmax_loss_vectorized):
        loss, dW = fn(W, X, y, 0.0)
        p1 = 1 / (1 + np.exp(-1.0))                  # sample 0: scores 900, 899
        p2 = 1 / (1 + np.exp(2.0))                   # sample 1: scores 1800, 1798
        assert float(loss) == pytest.approx(-(np.log(p1) + np.log(p2)) / 2, rel=1e-12)
        assert np.isfinite(host(dW)).all()


def test_linear_classifier_has_the_course_signature_and_initialisation():
    """train(X, y, learning_rate=1e-3, reg=1e-5, num_iters=100,
    batch_size=200, verbose=False); W is 0.001 * randn(D, C) from NumPy's
    global RNG with C the largest label + 1; batches of 1 and 0 iterations
    are allowed, less is refused."""
    import inspect
    sig = inspect.signature(linear.LinearClassifier.train)
    assert {k: v.default for k, v in list(sig.parameters.items())[3:]} == dict(
        learning_rate=1e-3, reg=1e-5, num_iters=100, batch_size=200, verbose=False)
    X, y = _blobs(N=30, D=4, C=3)
    np.random.seed(3)
    clf = linear.LinearSVM()
    assert clf.train(X, y, num_iters=0) == []
    np.testing.assert_array_equal(host(clf.W), 0.001 * np.random.RandomState(3).randn(4, 3))
    assert len(linear.Softmax().train(X, y, num_iters=2, batch_size=1)) == 2
    for kw, msg in ((dict(batch_size=0), "batch_size"), (dict(num_iters=-1), "num_iters")):
        with pytest.raises(ValueError, match=msg):
            linear.Softmax().train(X, y, **kw)
    for bad in ((X[0], y), (X, y[:, None]), (X, y[:-1]), (X[:0], y[:0])):
        with pytest.raises(ValueError, match="^train: "):
            linear.Softmax().train(*bad, num_iters=1)


def test_the_2016_classes_regularise_by_half():
    """LinearSVM.loss and Softmax.loss of cs231n_2016 regularise as that
    edition's loss functions do (0.5 * reg * sum(W**2))."""
    lc = _mod("cs231n_2016", "classifiers.linear_classifier")
    X, y, W = _dev_set()
    for cls in (lc.LinearSVM, lc.Softmax):
        clf = cls()
        clf.W = W
        l0, _ = clf.loss(X, y, 0.0)
        l1, _ = clf.loss(X, y, 0.5)
        assert l1 - l0 == pytest.approx(0.5 * 0.5 * np.sum(W * W), rel=1e-10)


def test_knn_course_defaults_and_edges():
    """predict(X, k=1, num_loops=0) and predict_labels(dists, k=1) as the
    course's; k may be every training point; every num_loops runs; the
    distances come back float64 whatever the images' dtype; labels keep
    the training labels' dtype; the first of equally near points wins."""
    import inspect
    assert str(inspect.signature(knn_mod.KNearestNeighbor.predict)) == "(self, X, k=1, num_loops=0)"
    assert str(inspect.signature(knn_mod.KNearestNeighbor.predict_labels)) == "(self, dists, k=1)"
    r = np.random.RandomState(2)
    Xtr, ytr = (r.rand(12, 5) * 255).astype(np.float32), r.randint(3, size=12)
    Xte = (r.rand(4, 5) * 255).astype(np.float32)
    clf = knn_mod.KNearestNeighbor()
    with pytest.raises(RuntimeError, match="train"):
        clf.predict(Xte)
    with pytest.raises(RuntimeError, match="^predict_labels: call train"):
        clf.predict_labels(np.zeros((4, 12)))
    clf.train(Xtr, ytr.astype(np.int32))
    want = np.sqrt(((Xte[:, None, :].astype(np.float64) - Xtr[None]) ** 2).sum(-1))
    for loops in (0, 1, 2):
        d = getattr(clf, ("compute_distances_no_loops", "compute_distances_one_loop",
                          "compute_distances_two_loops")[loops])(Xte)
        assert d.dtype == np.float64
        np.testing.assert_allclose(d, want, rtol=1e-5)   # float32 images, float32 sums
        np.testing.assert_array_equal(clf.predict(Xte, num_loops=loops), clf.predict_labels(d))
    pred = clf.predict_labels(want)
    assert pred.dtype == np.int32
    np.testing.assert_array_equal(pred, ytr[np.argmin(want, axis=1)])
    full = clf.predict_labels(want, k=12)                   # every point votes
    counts = np.bincount(ytr, minlength=3)
    assert (full == np.argmax(counts)).all()
    with pytest.raises(ValueError, match=r"^predict_labels: k must be in \[1, 12\]"):
        clf.predict_labels(want, k=13)
    for bad in (want[0], want[:, :5]):
        with pytest.raises(ValueError, match=r"^predict_labels: dists must be \(M, 12\)"):
            clf.predict_labels(bad)
    same = knn_mod.KNearestNeighbor()
    same.train(np.zeros((300, 2)), np.r_[[2], np.zeros(299, int)])
    assert same.predict_labels(np.zeros((1, 300)))[0] == 2     # training point 0 is first
    with pytest.raises(ValueError, match=r"^train: class labels must be >= 0 \(the classes "
                                         r"are 0 \.\. max\(y\)\), got values in \[-1, 2\]"):
        knn_mod.KNearestNeighbor().train(Xtr, np.r_[[-1], ytr[1:]])


def test_hog_against_its_definition_cell_by_cell():
    """hog_feature against the definition written out with loops: grey
    levels (0.299, 0.587, 0.144), forward differences (0 in the last row and
    column), orientation atan2(gy, gx + 1e-15) in degrees + 90, and per
    8x8 cell and bin of 20 degrees the mean magnitude of the pixels whose
    orientation lies in [lo, hi) and above 0; cells ordered column-block
    first, as the course's transposed histogram is."""
    r = np.random.RandomState(6)
    for shape in ((16, 24, 3), (24, 16), (17, 9, 3)):
        im = r.rand(*shape) * 255
        g = im[..., :3] @ np.array([0.299, 0.587, 0.144]) if im.ndim == 3 else im
        gx, gy = np.zeros_like(g), np.zeros_like(g)
        gx[:, :-1] = g[:, 1:] - g[:, :-1]
        gy[:-1, :] = g[1:, :] - g[:-1, :]
        mag = np.hypot(gx, gy)
        ang = np.degrees(np.arctan2(gy, gx + 1e-15)) + 90
        H, W = g.shape
        want = []
        for j in range(W // 8):
            for i in range(H // 8):
                m = mag[8 * i:8 * i + 8, 8 * j:8 * j + 8]
                a = ang[8 * i:8 * i + 8, 8 * j:8 * j + 8]
                want += [np.sum(m * ((a >= 20 * b) & (a < 20 * b + 20) & (a > 0))) / 64
                         for b in range(9)]
        np.testing.assert_allclose(hog_feature(im), want, rtol=1e-10, atol=1e-12)


def test_features_of_rgba_and_of_what_is_not_an_rgb_image():
    from xpnn.features import rgb2gray
    r = np.random.RandomState(7)
    rgba = r.rand(8, 8, 4) * 255
    np.testing.assert_allclose(rgb2gray(rgba), rgb2gray(rgba[..., :3]), rtol=1e-15)
    import inspect
    assert inspect.signature(color_histogram_hsv).parameters["nbin"].default == 10
    assert color_histogram_hsv(r.rand(4, 4, 3) * 255).shape == (10,)
    for bad in (r.rand(4, 4), r.rand(4, 4, 4)):
        with pytest.raises(ValueError, match=r"^color_histogram_hsv: expected an RGB image"):
            color_histogram_hsv(bad)


def test_extract_features_calls_each_function_once_per_image(capsys):
    """Three functions of different lengths; every row is its image's own
    features in order; each function runs once per image; quiet unless
    asked."""
    imgs = np.random.RandomState(8).rand(4, 3, 2, 1)
    calls = []

    def fn(k):
        def f(im):
            calls.append(k)
            return np.arange(k) + im.sum()
        return f
    F = extract_features(imgs, [fn(1), fn(3), fn(2)])
    assert calls.count(1) == calls.count(2) == calls.count(3) == 4
    for n in range(4):
        s = imgs[n].sum()
        np.testing.assert_allclose(F[n], np.r_[s, s, s + 1, s + 2, s, s + 1])
    assert capsys.readouterr().out == ""


def test_linear_classifier_defaults_train_as_the_course_does():
    """train(X, y) with every default: 100 iterations of minibatch SGD on
    200 rows drawn with replacement, learning rate 1e-3, reg 1e-5, quiet;
    the same weights as the course's loop written out."""
    X, y = _blobs(N=250, D=5, C=3)
    np.random.seed(5)
    clf = linear.LinearSVM()
    hist = clf.train(X, y)
    np.random.seed(5)
    W = 0.001 * np.random.randn(5, 3)
    for _ in range(100):
        idx = np.random.choice(250, 200)
        _, grad = linear.svm_loss_vectorized(W, X[idx], y[idx], 1e-5)
        W = W - 1e-3 * host(grad)
    assert len(hist) == 100
    np.testing.assert_allclose(host(clf.W), W, rtol=1e-12)


def test_knn_predict_uses_the_no_loop_distances_and_names_each_version(monkeypatch):
    from conftest import record_calls
    r = np.random.RandomState(1)
    clf = knn_mod.KNearestNeighbor()
    clf.train(r.rand(6, 3), r.randint(2, size=6))
    log = []
    record_calls(monkeypatch, clf, "compute_distances_no_loops", log)
    clf.predict(r.rand(2, 3))
    assert log == ["compute_distances_no_loops"]
    for name in ("compute_distances_two_loops", "compute_distances_one_loop",
                 "compute_distances_no_loops"):
        with pytest.raises(ValueError, match=rf"^{name}: X must be \(M, 3\) like the training "
                                             r"data, got \(2, 4\)"):
            getattr(clf, name)(r.rand(2, 4))
        with pytest.raises(RuntimeError, match=rf"^{name}: call train"):
            getattr(knn_mod.KNearestNeighbor(), name)(r.rand(2, 3))
    for X, y in ((r.rand(6), r.randint(2, size=6)), (r.rand(6, 3), r.randint(2, size=(6, 1))),
                 (r.rand(6, 3), r.randint(2, size=5))):
        with pytest.raises(ValueError, match="^train: "):
            knn_mod.KNearestNeighbor().train(X, y)


def test_hog_of_an_integer_image_is_the_hog_of_its_values():
    """A uint8 grey image: differences in integers would wrap around (0 - 1
    = 255); the gradients are taken on its values."""
    im = np.random.RandomState(2).randint(0, 256, size=(16, 16)).astype(np.uint8)
    np.testing.assert_allclose(hog_feature(im), hog_feature(im.astype(np.float64)),
                               rtol=1e-12, atol=1e-12)


def test_extract_features_reports_every_thousand_images_only_when_asked(capsys):
    imgs = np.zeros((2001, 1, 1, 1))
    fns = [lambda im: np.zeros(1)]
    extract_features(imgs, fns)
    assert capsys.readouterr().out == ""
    extract_features(imgs, fns, verbose=True)
    assert capsys.readouterr().out == ("Done extracting features for 1000 / 2001 images\n"
                                       "Done extracting features for 2000 / 2001 images\n")


@pytest.mark.parametrize("edition", ["nndl", "nndl_2022"])
def test_the_ucla_notebooks_cells_with_their_own_imports(edition):
    """The knn and softmax notebooks' imports (`from nndl import KNN`,
    `from nndl import Softmax`: the course's nndl/__init__.py star-imports
    its modules; `from nndl.svm import SVM`; utils.data_utils) and their
    cells on CIFAR-10-shaped data: the two distance versions agree (the
    notebook prints their Frobenius difference), k=1 predicts the training
    labels of the training points, the untrained softmax loss is ~2.3."""
    ns: dict = {}
    exec(f"from xpnn.compat.{edition} import KNN\n"
         f"from xpnn.compat.{edition} import Softmax\n"
         f"from xpnn.compat.{edition}.svm import SVM\n"
         f"from xpnn.compat.{edition}.utils.data_utils import load_CIFAR10\n"
         f"from xpnn.compat.{edition}.utils.features import hog_feature\n", ns)
    r = np.random.RandomState(0)
    X_train = r.randint(0, 256, (50, 32, 32, 3)).astype(np.float64).reshape(50, -1)
    y_train = r.randint(10, size=50)
    knn = ns["KNN"]()
    knn.train(X=X_train, y=y_train)
    dists = knn.compute_distances(X=X_train[:10])
    fast = knn.compute_L2_distances_vectorized(X=X_train[:10])
    assert np.linalg.norm(dists - fast, "fro") < 1e-6
    y_pred = knn.predict_labels(dists, k=1)
    np.testing.assert_array_equal(y_pred, y_train[:10])
    X_dev = np.hstack([X_train / 255.0 - 0.5, np.ones((50, 1))])
    np.random.seed(1)
    softmax = ns["Softmax"](dims=[10, X_dev.shape[1]])
    assert softmax.loss(X_dev, y_train) == pytest.approx(-np.log(0.1), abs=0.05)
    svm = ns["SVM"](dims=[10, X_dev.shape[1]])
    assert svm.W.shape == (10, 3073)
    assert ns["hog_feature"](X_train[0].reshape(32, 32, 3)).shape == (144,)
