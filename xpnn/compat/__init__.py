"""The course editions, each presented with its own module names,
signatures, defaults and conventions over xpnn's one implementation.

A notebook of a given edition runs with only its import prefixes changed:

| edition | course import | xpnn import |
|---|---|---|
| CS231n 2016 | ``cs231n.X`` | ``xpnn.compat.cs231n_2016.X`` |
| CS231n 2017 | ``cs231n.X`` | ``xpnn.compat.cs231n_2017.X`` |
| CS231n 2018-19 | ``cs231n.X`` | ``xpnn.compat.cs231n_2019.X`` |
| CS231n 2020+ | ``cs231n.X`` | ``xpnn.compat.cs231n_2022.X`` |
| UCLA ECE C147 2023-26 | ``nndl.X``, ``utils.X``, ``cs231n.X`` | ``xpnn.compat.nndl.X``, ``...nndl.utils.X``, ``...nndl.cs231n.X`` |
| UCLA ECE C147 to 2022 | the same | ``xpnn.compat.nndl_2022.X`` (and ``.utils.X``, ``.cs231n.X``) |
| ECE 662 | ``ece662.X`` | ``xpnn.compat.ece662.X`` |

X is any of the edition's modules (``layers``, ``fast_layers``,
``layer_utils``, ``optim``, ``solver``, ``gradient_check``, ``data_utils``,
``vis_utils``, ``classifiers.fc_net``, ``classifiers.cnn``,
``classifiers.neural_net``, assignment 1's ``classifiers`` (and its
``k_nearest_neighbor``, ``linear_svm``, ``softmax``, ``linear_classifier``)
and ``features``; UCLA's ``conv_layers``, ``conv_layer_utils``, ``fc_net``,
``cnn``, ``neural_net``, ``knn``, ``softmax``, ``svm``). Star imports bring what the course
module would (``classifiers.fc_net`` brings the layers too). Each edition's
module docstring lists its conventions.
"""
EDITIONS = ("cs231n_2016", "cs231n_2017", "cs231n_2019", "cs231n_2022", "nndl", "nndl_2022", "ece662")
