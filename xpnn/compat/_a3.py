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
from ._variants import _named


def _pick(module, names):
    return {n: getattr(module, n) for n in names}


def sigmoid(x):
    """A numerically stable logistic sigmoid (the course's rnn_layers helper)."""
    return _layers.sigmoid_forward(x)[0]


def cs231n_modules(rules, lay):
    """CS231n assignment 3 (NumPy editions): rnn_layers, classifiers.rnn,
    captioning_solver (over ``rules``, assignment 3's own optim.py),
    coco_utils, image_utils."""
    rnn_layers = {**_pick(_recurrent, _recurrent.__all__), "sigmoid": sigmoid}
    solver = _named(type("CaptioningSolver", (_captioning.CaptioningSolver,), {
        "update_rules": rules, "__doc__": _captioning.CaptioningSolver.__doc__}),
        "CaptioningSolver")
    coco = _pick(_data, ["load_coco_data", "decode_captions", "sample_coco_minibatch"])
    return {"rnn_layers": rnn_layers,
            "classifiers.rnn": {**lay, **rnn_layers, "CaptioningRNN": _rnn.CaptioningRNN},
            "captioning_solver": {"CaptioningSolver": solver, **coco},
            "coco_utils": coco,
            "image_utils": {"image_from_url": _data.image_from_url}}
