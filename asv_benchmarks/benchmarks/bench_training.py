"""Training benchmarks: a full train step, peak memory of a step, a Solver
epoch on the embedded digits set, and shrink inference later on."""
import numpy as np

from xpnn.data import get_digits_data
from xpnn.models import ConvNet, ThreeLayerConvNet
from xpnn.solver import Solver

from .common import BACKENDS, sync, use


class TrainStep:
    params = (BACKENDS, [50, 200])
    param_names = ["backend", "batch"]

    def setup(self, name, batch):
        use(name)
        np.random.seed(0)
        self.model = ThreeLayerConvNet(dtype=np.float32, weight_scale=1e-2)
        self.X = np.random.randn(batch, 3, 32, 32).astype(np.float32)
        self.y = np.random.randint(10, size=batch)
        self.model.loss(self.X, self.y)
        sync()

    def time_three_layer_convnet_step(self, name, batch):
        self.model.loss(self.X, self.y)
        sync()

    def peakmem_three_layer_convnet_step(self, name, batch):
        self.model.loss(self.X, self.y)


class SolverEpoch:
    params = (BACKENDS,)
    param_names = ["backend"]
    timeout = 300

    def setup(self, name):
        use(name)
        self.data = get_digits_data()

    def time_digits_convnet_epoch(self, name):
        np.random.seed(0)
        model = ConvNet(input_dim=(1, 8, 8), conv_blocks=((16,), (32,)), hidden_dims=(64,))
        Solver(model, self.data, update_rule="adam", optim_config={"learning_rate": 2e-3},
               batch_size=50, num_epochs=1, verbose=False).train()
        sync()
