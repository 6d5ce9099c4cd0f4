"""Assignment 3 as the CS231n editions with NumPy recurrent nets (2016-24)
present it, over xpnn.layers.recurrent, xpnn.models.rnn, xpnn.captioning
and xpnn.data: ``rnn_layers`` (with the course's ``sigmoid`` helper),
``classifiers.rnn``, ``captioning_solver``, ``coco_utils`` and
``image_utils``.

The captioning solver imports assignment 3's own ``optim.py``, not
assignment 2's: sgd and adam in 2016-19 (sgd_momentum and rmsprop too from
2021), its adam counting t from 0 with the bias correction folded into
the step size (:data:`._variants.adam_assignment3`), in every edition."""
from __future__ import annotations

from .. import captioning as _captioning
from .. import data as _data
from .. import layers as _layers
from ..layers import recurrent as _recurrent
from ..models import rnn as _rnn
from . import _variants
from ._variants import _named


def _pick(module, names):
    return {n: getattr(module, n) for n in names}


def sigmoid(x):
    """A numerically stable logistic sigmoid (the course's rnn_layers helper)."""
    return _layers.sigmoid_forward(x)[0]


def load_coco_data_2021(base_dir=None, max_train=None, pca_features=True):
    """:func:`xpnn.data.load_coco_data` as 2021's coco_utils, which first
    prints ``base dir  <base_dir>``."""
    if base_dir is None:
        base_dir = _data.find_dataset("coco_captioning", _data.COCO_FILES["captions"])
    print("base dir ", base_dir)
    return _data.load_coco_data(base_dir, max_train=max_train, pca_features=pca_features)


def cs231n_modules(lay, edition_2016=False):
    """CS231n assignment 3 (NumPy editions): rnn_layers, classifiers.rnn,
    captioning_solver (over assignment 3's own optim.py: 2016-19's sgd and
    adam with ``edition_2016``, else 2021's four rules), coco_utils,
    image_utils."""
    rules = _variants.ASSIGNMENT3_RULES_2016 if edition_2016 else _variants.ASSIGNMENT3_RULES
    rnn_layers = {**_pick(_recurrent, _recurrent.__all__), "sigmoid": sigmoid}
    solver = _named(type("CaptioningSolver", (_captioning.CaptioningSolver,), {
        "update_rules": rules, "__doc__": _captioning.CaptioningSolver.__doc__}),
        "CaptioningSolver")
    coco = _pick(_data, ["load_coco_data", "decode_captions", "sample_coco_minibatch"])
    if not edition_2016:
        coco["load_coco_data"] = load_coco_data_2021
    return {"rnn_layers": rnn_layers,
            "classifiers.rnn": {**lay, **rnn_layers, "CaptioningRNN": _rnn.CaptioningRNN},
            "captioning_solver": {"CaptioningSolver": solver, **coco},
            "coco_utils": coco,
            "image_utils": {"image_from_url": _data.image_from_url}}
