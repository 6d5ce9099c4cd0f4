"""The module tables the course editions are built from (see _build)."""
from __future__ import annotations

from .. import data as _data
from .. import gradient_check as _gc
from .. import layers as _layers
from ..layers import recurrent as _recurrent
from ..layers import sandwich as _sandwich
from ..models import cnn as _cnn
from ..models import fc_net as _fc
from ..vis import visualize_grid
from . import _a1, _a3, _extras, _variants


def _pick(module, names):
    return {n: getattr(module, n) for n in names}


def layers(drop_p):
    """Every layer function; dropout's p the drop probability if drop_p."""
    names = _pick(_layers, [n for n in _layers.__all__ if n not in _recurrent.__all__])
    if drop_p:
        names["dropout_forward"] = _variants.dropout_forward_drop_p
    return names


FAST_LAYERS = {
    **_pick(_layers, ["conv_forward_fast", "conv_backward_fast", "conv_forward_im2col",
                      "conv_backward_im2col", "max_pool_forward_fast", "max_pool_backward_fast"]),
    **_pick(_extras, ["conv_forward_strides", "conv_backward_strides",
                      "max_pool_forward_reshape", "max_pool_backward_reshape",
                      "max_pool_forward_im2col", "max_pool_backward_im2col"]),
}
LAYER_UTILS = _pick(_sandwich, _sandwich.__all__)
CONV_LAYERS = _pick(_layers, [
    "conv_forward_naive", "conv_backward_naive", "max_pool_forward_naive",
    "max_pool_backward_naive", "spatial_batchnorm_forward", "spatial_batchnorm_backward",
    "spatial_groupnorm_forward", "spatial_groupnorm_backward"])
CONV_LAYER_UTILS = _pick(_sandwich, [n for n in _sandwich.__all__ if n.startswith("conv_")])
GRADIENT_CHECK = {
    **_pick(_gc, ["eval_numerical_gradient", "eval_numerical_gradient_array",
                  "eval_numerical_gradient_blobs", "grad_check_sparse", "rel_error"]),
    "eval_numerical_gradient_net": _extras.eval_numerical_gradient_net,
}
VIS_UTILS = {"visualize_grid": visualize_grid, "vis_grid": _extras.vis_grid,
             "vis_nn": _extras.vis_nn}


def get_CIFAR10_data(num_training=49000, num_validation=1000, num_test=1000,
                     subtract_mean=True):
    """CIFAR-10 with the course's split and arguments, from the folder
    ``cifar-10-batches-py`` found by xpnn.data.find_dataset ($XPNN_DATA,
    then datasets/, cs231n/datasets/, ... under the working directory)."""
    return _data.get_CIFAR10_data(None, num_training=num_training,
                                  num_validation=num_validation, num_test=num_test,
                                  subtract_mean=subtract_mean)


DATA_UTILS = {
    **_pick(_data, ["load_CIFAR_batch", "load_CIFAR10", "load_pickle", "get_CINIC10_data"]),
    **_pick(_extras, ["load_tiny_imagenet", "load_imagenet_val", "load_models"]),
    "get_CIFAR10_data": get_CIFAR10_data,
}


def course_tree(*, drop_p, fc_net, two_layer, neural_net, rules, ucla=False,
                linear_reg_scale=1.0, features_2016=False, a3_2016=False):
    """The module table of one edition. CS231n layout: layers, fast_layers,
    layer_utils, optim, solver, gradient_check, data_utils, vis_utils,
    classifiers.{fc_net, cnn, neural_net}. UCLA (ucla=True): the same at the
    top (as nndl.*), plus conv_layers, conv_layer_utils, fc_net, cnn,
    neural_net, and the cs231n.* and utils.* modules its notebooks import.
    Assignment 1 (_a1): CS231n's classifiers.{k_nearest_neighbor,
    linear_svm, softmax, linear_classifier} and features, with
    ``linear_reg_scale`` * reg * sum(W**2); UCLA's knn, softmax, svm.
    Assignment 3 (_a3, CS231n): rnn_layers, classifiers.rnn,
    captioning_solver (assignment 3's own optim.py: 2016-19's with
    ``a3_2016``, else 2021's), coco_utils, image_utils."""
    lay = layers(drop_p)
    fc_net, two_layer = _variants.course_model(fc_net), _variants.course_model(two_layer)
    three_layer = _variants.course_model(_cnn.ThreeLayerConvNet)
    opt_rules = _variants.update_rules(**rules)
    solver = {"Solver": _variants.solver_class(opt_rules)}
    models_fc = {**lay, **LAYER_UTILS, "TwoLayerNet": two_layer, "FullyConnectedNet": fc_net}
    models_cnn = {**lay, **FAST_LAYERS, **LAYER_UTILS, **CONV_LAYER_UTILS,
                  "ThreeLayerConvNet": three_layer}
    shared = {"fast_layers": FAST_LAYERS, "gradient_check": GRADIENT_CHECK,
              "data_utils": DATA_UTILS, "vis_utils": VIS_UTILS, "solver": solver,
              "optim": dict(opt_rules), "layer_utils": {**lay, **LAYER_UTILS}}
    tree = {"layers": lay, **shared,
            "classifiers": {}, "classifiers.fc_net": models_fc, "classifiers.cnn": models_cnn,
            "classifiers.neural_net": {"TwoLayerNet": neural_net}}
    tree.update(_a1.UCLA_MODULES if ucla else _a1.cs231n_modules(linear_reg_scale,
                                                                 features_2016))
    if not ucla:
        tree.update(_a3.cs231n_modules(lay, a3_2016))
    if ucla:
        tree.update({"conv_layers": {**lay, **CONV_LAYERS},
                     "conv_layer_utils": {**lay, **FAST_LAYERS, **CONV_LAYER_UTILS},
                     "fc_net": models_fc, "cnn": {**models_cnn, **CONV_LAYERS},
                     "neural_net": {"TwoLayerNet": neural_net},
                     "cs231n": {}, "utils": {}})
        for prefix in ("cs231n", "utils"):
            for name, names in shared.items():
                tree[f"{prefix}.{name}"] = names
            tree[f"{prefix}.features"] = tree["features"] = _a1.FEATURES
        # nndl/__init__.py star-imports its modules (the notebooks do `from
        # nndl import KNN`); later ones win a name, as in the course's order
        tree[""] = {k: v for part in ("knn", "softmax", "svm", "fc_net", "layer_utils",
                                      "neural_net", "optim") for k, v in tree[part].items()}
    return tree


NATIVE_FC = {"fc_net": _fc.FullyConnectedNet, "two_layer": _fc.TwoLayerNet}
