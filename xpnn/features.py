"""Assignment 1's image features: a histogram of oriented gradients and a
hue histogram per image, and ``extract_features`` to stack them for a set
of images. They run on the host in NumPy (image preprocessing; arrays of
another backend are copied there first) and compute what the course's
helpers compute, so the features, and a classifier trained on them, come
out the same.

Images are (H, W, 3) RGB with values in [0, 255], as the notebooks pass
them (CIFAR-10 before it is transposed to channels first).
"""
from __future__ import annotations

import numpy as np

from .backend import to_numpy
from .layers._util import check_int, check_number

__all__ = ["extract_features", "hog_feature", "color_histogram_hsv", "rgb2gray"]

_CHANNELS = (3, 4)   # RGB, or RGBA whose alpha is ignored

#: the course's grey-level weights (its blue weight is 0.144, not ITU-R
#: 601's 0.114: kept, so the features match)
GRAY_WEIGHTS = (0.299, 0.587, 0.144)


def extract_features(imgs, feature_fns, verbose=False):
    """Features (N, F) of the images ``imgs`` (N, ...): each function of
    ``feature_fns`` (a list) maps one image (squeezed) to a 1-d vector, of
    the same length for every image; the vectors of one image are
    concatenated in that order. Prints progress every 1000 images when
    verbose. No images: an empty array, as the course's."""
    return _extract(imgs, feature_fns, verbose, report=lambda i: i % 1000 == 999,
                    shown=lambda i: i + 1)


def extract_features_2016(imgs, feature_fns, verbose=False):
    """:func:`extract_features` as CS231n 2016 reports progress: at images
    1000, 2000, ... (counting from 0)."""
    return _extract(imgs, feature_fns, verbose, report=lambda i: i % 1000 == 0,
                    shown=lambda i: i)


def _fn_name(fn):
    return getattr(fn, "__name__", None) or repr(fn)


def _feature_vector(fn, img, i, size=None):
    f = np.asarray(to_numpy(fn(img)))
    if f.ndim != 1:
        raise ValueError(f"extract_features: feature functions must return one-dimensional "
                         f"vectors; {_fn_name(fn)} returned shape {f.shape} for image {i}")
    if size is not None and f.size != size:
        raise ValueError(f"extract_features: {_fn_name(fn)} returned {f.size} values for "
                         f"image {i} but {size} for image 0; every image needs features of "
                         f"one length (are the images of different sizes?)")
    return f


def _extract(imgs, feature_fns, verbose, report, shown):
    if callable(feature_fns):
        raise TypeError(f"extract_features: feature_fns must be a list of functions, got the "
                        f"function {_fn_name(feature_fns)}; pass [{_fn_name(feature_fns)}]")
    try:
        feature_fns = list(feature_fns)
    except TypeError:
        raise TypeError(f"extract_features: feature_fns must be a list of functions, got "
                        f"{type(feature_fns).__name__}") from None
    for fn in feature_fns:
        if not callable(fn):
            raise TypeError(f"extract_features: every entry of feature_fns must be a "
                            f"function, got {fn!r}")
    imgs = _image_array("extract_features", "imgs", imgs)
    N = imgs.shape[0] if imgs.ndim else 0
    if N == 0:
        return np.array([])
    if not feature_fns:
        raise ValueError("extract_features: give at least one feature function")
    first = [_feature_vector(fn, imgs[0].squeeze(), 0) for fn in feature_fns]
    sizes = [f.size for f in first]
    ends = np.cumsum(sizes)
    out = np.zeros((N, int(ends[-1])))
    out[0] = np.concatenate(first)
    for i in range(1, N):
        start = 0
        for fn, end, size in zip(feature_fns, ends, sizes):
            out[i, start:end] = _feature_vector(fn, imgs[i].squeeze(), i, size)
            start = end
        if verbose and report(i):
            print("Done extracting features for %d / %d images" % (shown(i), N))
    return out


def _image_array(fn, name, im):
    """``im`` as a NumPy array of numbers (from any backend or a list)."""
    try:
        arr = np.asarray(im if isinstance(im, (list, tuple)) else to_numpy(im))
    except ValueError:             # a ragged list
        arr = np.asarray(None)
    if arr.dtype == object:
        raise TypeError(f"{fn}: {name} must be an array, got {type(im).__name__}")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: {name} must hold numbers (pixel values), got dtype "
                        f"{arr.dtype}")
    return arr


def rgb2gray(rgb):
    """Grey levels of an (..., 3+) RGB image with the course's weights."""
    rgb = _image_array("rgb2gray", "rgb", rgb)
    if rgb.ndim < 2 or rgb.shape[-1] not in _CHANNELS:
        raise ValueError(f"rgb2gray: expected an RGB image (..., 3) (or RGBA), got shape "
                         f"{rgb.shape}")
    return np.dot(rgb[..., :3], list(GRAY_WEIGHTS))


def _grey(fn, im):
    """One image (H, W, 3), (H, W, 4), (H, W, 1) or (H, W) in grey levels."""
    im = _image_array(fn, "im", im)
    if im.ndim == 3 and im.shape[-1] in _CHANNELS:
        return rgb2gray(im)
    if im.ndim == 3 and im.shape[-1] == 1:
        return np.asarray(im[..., 0], dtype=np.float64)
    if im.ndim == 2:
        return np.asarray(im, dtype=np.float64)
    hint = ""
    if im.ndim == 3 and im.shape[0] in _CHANNELS:
        hint = (f"; this looks channels-first: pass im.transpose(1, 2, 0), shape "
                f"{im.shape[1:] + im.shape[:1]}")
    raise ValueError(f"{fn}: expected one image (H, W, 3), (H, W, 1) or (H, W), got shape "
                     f"{im.shape}{hint}")


def hog_feature(im, orientations=9, cell=(8, 8)):
    """Histogram of oriented gradients of one image (H, W, 3) or (H, W): the
    image in grey levels, forward-difference gradients, their orientation
    in [0, 180) degrees split into ``orientations`` bins, and per cell of
    ``cell`` pixels the mean gradient magnitude that falls in each bin
    (a uniform filter sampled at the cells' centres). Returns
    (H // ch) * (W // cw) * orientations values, cell by cell."""
    from scipy.ndimage import uniform_filter
    orientations = check_int("hog_feature: orientations", orientations, 1)
    try:
        cell = tuple(check_int("hog_feature: cell", c, 1) for c in cell)
    except TypeError:
        raise TypeError(f"hog_feature: cell must be two integers (rows, columns), got "
                        f"{cell!r}") from None
    if len(cell) != 2:
        raise ValueError(f"hog_feature: cell must be two integers (rows, columns), got {cell!r}")
    image = _grey("hog_feature", im)
    if image.shape[0] < cell[0] or image.shape[1] < cell[1]:
        raise ValueError(f"hog_feature: the image {image.shape} is smaller than one cell "
                         f"{cell}: it has no cell to describe")
    cx, cy = cell
    sx, sy = image.shape
    gx = np.zeros(image.shape)
    gy = np.zeros(image.shape)
    gx[:, :-1] = np.diff(image, axis=1)
    gy[:-1, :] = np.diff(image, axis=0)
    magnitude = np.sqrt(gx ** 2 + gy ** 2)
    angle = np.arctan2(gy, gx + 1e-15) * (180 / np.pi) + 90
    width = 180 / orientations
    hist = np.zeros((sy // cy, sx // cx, orientations))   # cell rows follow the columns
    for b in range(orientations):
        lo, hi = width * b, width * (b + 1)
        # a pixel counts when its angle lies in [lo, hi) and is above 0
        # (an angle of exactly 0 counts in no bin, as in the course's code)
        inside = (angle >= lo) & (angle < hi) & (angle > 0)
        smoothed = uniform_filter(np.where(inside, magnitude, 0.0), size=(cx, cy))
        hist[:, :, b] = smoothed[round(cx / 2)::cx, round(cy / 2)::cy][:sx // cx,
                                                                      :sy // cy].T
    return hist.ravel()


def color_histogram_hsv(im, nbin=10, xmin=0, xmax=255, normalized=True):
    """Histogram of the hue of one RGB image (H, W, 3) with values in
    [xmin, xmax]: ``nbin`` equal bins over [xmin, xmax] of hue scaled to
    that range; with ``normalized`` the fractions of pixels per bin,
    without it (as the course's code) the counts times the bin width."""
    import matplotlib.colors
    im = _image_array("color_histogram_hsv", "im", im)
    nbin = check_int("color_histogram_hsv: nbin", nbin, 1)
    xmin = check_number("color_histogram_hsv: xmin", xmin)
    xmax = check_number("color_histogram_hsv: xmax", xmax, low=xmin, low_inclusive=False)
    if im.ndim != 3 or im.shape[-1] != 3:
        hint = (f"; this looks channels-first: pass im.transpose(1, 2, 0)"
                if im.ndim == 3 and im.shape[0] == 3 else "")
        raise ValueError(f"color_histogram_hsv: expected an RGB image (H, W, 3), got shape "
                         f"{im.shape}{hint}")
    if im.size and not (0 <= np.nanmin(im) and np.nanmax(im) <= xmax):
        raise ValueError(f"color_histogram_hsv: pixel values must lie in [0, xmax={xmax:g}], "
                         f"got values in [{np.nanmin(im):g}, {np.nanmax(im):g}]")
    bins = np.linspace(xmin, xmax, nbin + 1)
    hsv = matplotlib.colors.rgb_to_hsv(im / xmax) * xmax
    counts, edges = np.histogram(hsv[:, :, 0], bins=bins, density=normalized)
    return counts * np.diff(edges)
