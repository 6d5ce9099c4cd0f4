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
        for spec in model.layers:  # inference with trained-like running statistics
            if "bn_index" in spec:
                C = model.params[spec["gamma"]].shape[0]
                model.bn_params[spec["bn_index"]].update(
                    running_mean=xp.zeros(C, dtype=xp.float32),
                    running_var=xp.ones(C, dtype=xp.float32))
        if which != "dense":
            for spec in model.layers:
                if spec["kind"] == "conv":
                    prune.ln_structured(model, spec["W"], 0.5, dim=0)
            if which == "shrunk_50pct":
                model = prune.shrink(model)
        self.model = model
        self.X = np.random.randn(256, 3, 32, 32).astype(np.float32)
        self.model.loss(self.X)
        sync()

    def time_inference_batch256(self, name, which):
        self.model.loss(self.X)
        sync()
