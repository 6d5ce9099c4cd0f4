"""Every layer as a forward/backward pair with the course signatures.

``from xpnn.layers import *`` gives them all: naive and fast, and the
sandwich layers. Each works on NumPy, CuPy and array-api-strict arrays, and
returns arrays of its input's backend and dtype.
"""
from .conv import *  # noqa: F401,F403
from .conv import __all__ as _conv
from .core import *  # noqa: F401,F403
from .core import __all__ as _core
from .losses import *  # noqa: F401,F403
from .losses import __all__ as _losses
from .normalization import *  # noqa: F401,F403
from .normalization import __all__ as _norm
from .pooling import *  # noqa: F401,F403
from .pooling import __all__ as _pool
from .recurrent import *  # noqa: F401,F403
from .recurrent import __all__ as _recurrent
from .sandwich import *  # noqa: F401,F403
from .sandwich import __all__ as _sandwich

__all__ = [*_core, *_losses, *_norm, *_conv, *_pool, *_sandwich, *_recurrent]
