"""UCLA ECE C147/C247 (``nndl``) up to 2022: change ``nndl.`` to
``xpnn.compat.nndl_2022.``, ``utils.`` to ``xpnn.compat.nndl_2022.utils.``
and ``cs231n.`` to ``xpnn.compat.nndl_2022.cs231n.`` in a notebook's imports.

As ``xpnn.compat.nndl`` (2023-26), except that dropout's ``p`` and
``dropout=`` are the probability of DROPPING a unit, 0 (no dropout) by
default.
"""
import sys as _sys

from . import _build, _tables, _variants

_build.install(_sys.modules[__name__], _tables.course_tree(
    drop_p=True, fc_net=_variants.FullyConnectedNetDropP, two_layer=_variants.TwoLayerNetNNDL,
    neural_net=_variants.TwoLayerNetUCLA,
    rules={"rmsprop": _variants.rmsprop_nndl, "adam": _variants.adam_nndl}, ucla=True),
    docs={})
