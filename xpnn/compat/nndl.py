"""UCLA ECE C147/C247 (``nndl``), 2023 to 2026: change ``nndl.`` to
``xpnn.compat.nndl.``, ``utils.`` to ``xpnn.compat.nndl.utils.`` and
``cs231n.`` to ``xpnn.compat.nndl.cs231n.`` in a notebook's imports.

This edition's conventions: dropout's ``p`` and ``dropout=`` are the
probability of KEEPING a unit, and ``FullyConnectedNet(dropout=1)`` (no
dropout) is the default, as these years' notebooks and regularization
homework use them (``dropout=0``, the first homework's never-used default,
means no dropout too);
``FullyConnectedNet(use_batchnorm=True)``; ``TwoLayerNet(hidden_dims=,
dropout=)``; RMSProp keeps its average in ``config['a']``, Adam its first
moment in ``config['v']`` and its second in ``config['a']``; the monolithic
``neural_net.TwoLayerNet`` stores W1 as (H, D) and draws batch_size rows
with replacement even from a smaller set, and counts an epoch as
num_train / batch_size iterations (true division). Earlier years, whose dropout
number is the probability of dropping: ``xpnn.compat.nndl_2022``. One
difference is not followed: 2023's HW4-5 ``softmax_loss`` took the log of
``max(p, 1e-8)`` (2024-26's, like this one, does not); the two differ only
for a sample whose correct class gets a probability under 1e-8.
"""
import sys as _sys

from . import _build, _tables, _variants

_build.install(_sys.modules[__name__], _tables.course_tree(
    drop_p=False, fc_net=_variants.FullyConnectedNetKeep,
    two_layer=_variants.TwoLayerNetNNDLKeep, neural_net=_variants.TwoLayerNetUCLA,
    rules={"rmsprop": _variants.rmsprop_nndl, "adam": _variants.adam_nndl}, ucla=True),
    docs={})
