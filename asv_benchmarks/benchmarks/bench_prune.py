"""Inference time of a ConvNet before and after shrinking 50% of its filters."""
import numpy as np

from xpnn import prune
from xpnn.models import ConvNet

from .common import BACKENDS, sync, use


class ShrinkInference:
    params = (BACKENDS, ["dense", "masked_50pct", "shrunk_50pct"])
    param_names = ["backend", "model"]

    def setup(self, name, which):
        xp = use(name)
        np.random.seed(0)
        model = ConvNet(input_dim=(3, 32, 32), conv_blocks=((32, 32), (64, 64)),
                        hidden_dims=(128,))
        for bp in model.bn_params:  # inference with trained-like running statistics
            C = bp["running_mean"].shape[0]
            bp.update(running_mean=xp.zeros(C, dtype=xp.float32),
                      running_var=xp.ones(C, dtype=xp.float32))
        if which != "dense":
            for w in prune.prunable_names(model):
                if model.params[w].ndim == 4:  # the conv filters
                    prune.ln_structured(model, w, 0.5, dim=0)
            if which == "shrunk_50pct":
                model = prune.shrink(model)
        self.model = model
        self.X = np.random.randn(256, 3, 32, 32).astype(np.float32)
        self.model.loss(self.X)
        sync()

    def time_inference_batch256(self, name, which):
        self.model.loss(self.X)
        sync()
