"""The pruning sweep of ``xpnn prune``: copies of a trained model pruned by
several amounts, each with its sparsity, size, FLOPs, validation accuracy and
(structured) inference time before and after shrinking."""
from __future__ import annotations

import copy
import time

import numpy as np

from .. import backend
from ..solver import Solver

__all__ = ["sweep"]


def _infer_ms(model, X, repeat):
    model.loss(X)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        model.loss(X)
        backend.synchronize()
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def _input_shape(model):
    """The shape of one input the model takes: a Sequential's input_shape,
    a course model's input_dim (a tuple for the conv nets, a number for the
    fully connected ones: flat vectors); None if it records neither."""
    shape = getattr(model, "input_shape", None)
    if shape is None:
        shape = getattr(model, "init_kwargs", {}).get("input_dim")
    if shape is None:
        return None
    return tuple(int(d) for d in shape) if isinstance(shape, (list, tuple)) else (int(shape),)


def sweep(model, data, amounts=None, structured=False, finetune=0, repeat=7, source="",
          dataset="digits", out=print, save=None):
    """Prune copies of ``model`` by each of ``amounts`` and ``out`` one
    table row each (sparsity, parameters, FLOPs, validation accuracy; structured:
    inference time masked and shrunk); returns the (amount, sparsity,
    accuracy) rows and the unpruned model's validation accuracy (the amount
    is chosen on it; the test set is left for the one model kept). Unstructured:
    global L1 over every conv and affine weight, the zeros then made
    permanent; structured: L1 filter pruning of every conv layer, then
    shrink. ``finetune`` epochs of Adam after pruning (pruned weights stay
    zero). ``save``: a path prefix; each pruned model (structured: the
    shrunk one) is written to ``<save>_<percent>.npz`` (``load_model``
    reads it)."""
    from .. import prune
    X, y = data["X_val"], data["y_val"]

    def accuracy(m):
        return Solver(m, data, verbose=False).check_accuracy(X, y, batch_size=500)

    want = _input_shape(model)
    if want is None or int(np.prod(X.shape[1:])) != int(np.prod(want)):
        raise ValueError(f"the model expects inputs of shape {want} but {dataset} images "
                         f"are {tuple(X.shape[1:])}; pass the data set it was trained on")
    X = X.reshape((len(X),) + want)
    if finetune < 0:
        raise ValueError(f"--finetune must be >= 0 epochs, got {finetune}")
    epochs = finetune

    def fine_tune(m):
        if epochs:
            Solver(m, data, update_rule="adam", optim_config={"learning_rate": 1e-3},
                   batch_size=50, num_epochs=epochs, verbose=False).train()

    amounts = amounts or ([0.1, 0.2, 0.3, 0.5] if structured else
                               [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    base = prune.model_stats(model)
    base_acc = accuracy(model)
    Xt = np.concatenate([X] * max(1, -(-2048 // len(X))))[:2048]  # a batch long enough to time
    base_ms = _infer_ms(model, Xt, repeat)
    if epochs:
        source += f" (each pruned copy fine-tuned {epochs} epoch{'s' * (epochs != 1)})"
    out(f"{type(model).__name__} from {source}: {base['params']} params, "
          f"{base['flops']} FLOPs/image, val accuracy {base_acc:.4f}, "
          f"inference {base_ms:.2f} ms per {len(Xt)} images")
    if getattr(model, "loaded_params", None):
        out(f"  (pruned from {model.loaded_params})")
    if structured:
        out(f"{'amount':>6s} {'sparsity':>8s} {'params':>8s} {'FLOPs':>9s} {'val acc':>8s} "
              f"{'masked ms':>9s} {'shrunk ms':>9s} {'speedup':>7s}")
    else:
        out(f"{'amount':>6s} {'sparsity':>8s} {'nonzero':>8s} {'FLOPs':>9s} {'val acc':>8s}")
    rows = []
    for a in amounts:
        m = copy.deepcopy(model)
        if structured:
            convs = [w for w in prune.prunable_names(m) if m.params[w].ndim == 4]
            if not convs:
                raise ValueError(f"{type(model).__name__} has no conv layers to prune "
                                 "structurally; drop --structured")
            for w in convs:
                prune.ln_structured(m, w, a, n=1, dim=0)
            fine_tune(m)
            sp = prune.sparsity(m)["global"]
            acc = accuracy(m)
            try:
                small = prune.shrink(m)
            except ValueError as exc:
                raise ValueError(f"--structured cannot remove filters of this "
                                 f"{type(model).__name__}: {exc}. Prune it without "
                                 f"--structured (the zeros then stay in place)") from None
            r = small.shrink_report
            t_masked, t_small = _infer_ms(m, Xt, repeat), _infer_ms(small, Xt, repeat)
            out(f"{a:6.2f} {sp:8.3f} {r['params_after']:8d} {r['flops_after']:9d} {acc:8.4f} "
                  f"{t_masked:9.2f} {t_small:9.2f} {t_masked / t_small:6.2f}x")
        else:
            prune.global_unstructured(m, a)
            fine_tune(m)
            prune.remove(m)
            sp = prune.sparsity(m)["global"]
            acc = accuracy(m)
            nonzero = sum(int(np.count_nonzero(backend.to_numpy(v))) for v in m.params.values())
            out(f"{a:6.2f} {sp:8.3f} {nonzero:8d} {base['flops']:9d} {acc:8.4f}")
        rows.append((a, sp, acc))
        if save:
            from ..checkpoint import save_model
            path = save_model(small if structured else m, f"{save}_{round(100 * a):d}.npz")
            out(f"       wrote {path}")
    if not structured:
        out("(unstructured zeros still cost dense FLOPs; --structured removes work)")
    return rows, base_acc
