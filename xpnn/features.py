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

__all__ = ["extract_features", "hog_feature", "color_histogram_hsv", "rgb2gray"]

#: the course's grey-level weights (its blue weight is 0.144, not ITU-R
#: 601's 0.114: kept, so the features match)
GRAY_WEIGHTS = (0.299, 0.587, 0.144)


def extract_features(imgs, feature_fns, verbose=False):
    """Features (N, F) of the images ``imgs`` (N, ...): each function of
    ``feature_fns`` maps one image (squeezed) to a 1-d vector; the vectors
    of one image are concatenated in that order. Prints progress every
    1000 images when verbose."""
    imgs = np.asarray(to_numpy(imgs))
    feature_fns = list(feature_fns)
    N = imgs.shape[0] if imgs.ndim else 0
    if N == 0:
        return np.array([])
    if not feature_fns:
        raise ValueError("extract_features: give at least one feature function")
    first = []
    for fn in feature_fns:
        f = np.asarray(fn(imgs[0].squeeze()))
        if f.ndim != 1:
            raise ValueError(f"extract_features: feature functions must return one-dimensional "
                             f"vectors; {getattr(fn, '__name__', fn)} returned shape {f.shape}")
        first.append(f)
    sizes = [f.size for f in first]
    ends = np.cumsum(sizes)
    out = np.zeros((N, int(ends[-1])))
    out[0] = np.concatenate(first)
    for i in range(1, N):
        start = 0
        for fn, end in zip(feature_fns, ends):
            out[i, start:end] = fn(imgs[i].squeeze())
            start = end
        if verbose and i % 1000 == 999:
            print("Done extracting features for %d / %d images" % (i + 1, N))
    return out


def rgb2gray(rgb):
    """Grey levels of an (..., 3+) RGB image with the course's weights."""
    rgb = np.asarray(to_numpy(rgb))
    return np.dot(rgb[..., :3], list(GRAY_WEIGHTS))


def hog_feature(im, orientations=9, cell=(8, 8)):
    """Histogram of oriented gradients of one image (H, W, 3) or (H, W): the
    image in grey levels, forward-difference gradients, their orientation
    in [0, 180) degrees split into ``orientations`` bins, and per cell of
    ``cell`` pixels the mean gradient magnitude that falls in each bin
    (a uniform filter sampled at the cells' centres). Returns
    (H // ch) * (W // cw) * orientations values, cell by cell."""
    from scipy.ndimage import uniform_filter
    im = np.asarray(to_numpy(im))
    if im.ndim == 3:
        image = rgb2gray(im)
    elif im.ndim == 2:
        image = np.asarray(im, dtype=np.float64)
    else:
        raise ValueError(f"hog_feature: expected an image (H, W, 3) or (H, W), got shape "
                         f"{im.shape}")
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
    im = np.asarray(to_numpy(im))
    if im.ndim != 3 or im.shape[-1] != 3:
        raise ValueError(f"color_histogram_hsv: expected an RGB image (H, W, 3), got shape "
                         f"{im.shape}")
    bins = np.linspace(xmin, xmax, nbin + 1)
    hsv = matplotlib.colors.rgb_to_hsv(im / xmax) * xmax
    counts, edges = np.histogram(hsv[:, :, 0], bins=bins, density=normalized)
    return counts * np.diff(edges)
