"""Architecture-search methods over one supernet, selectable by name (see `base.Method`)."""

from supernet.methods.base import ArchState, Method, accuracy, cross_entropy, derive, entropy, init_arch_state
from supernet.methods.darts import darts
from supernet.methods.fbnet_gumbel import fbnet, gumbel_softmax
from supernet.methods.fixed import fixed
from supernet.methods.proxyless import binary_gates, proxyless, two_paths
from supernet.methods.proxyless_rl import proxyless_rl
from supernet.methods.uniform import uniform

_FACTORIES = {"darts": darts, "fbnet": fbnet, "proxyless": proxyless, "proxyless_rl": proxyless_rl,
              "uniform": uniform, "fixed": fixed}
METHOD_NAMES = tuple(_FACTORIES)


def get_method(name: str, **options) -> Method:
    """The method `name`, with its options (e.g. `fbnet(tau0=5, decay=0.045, hard=True)`)."""
    if name not in _FACTORIES:
        raise ValueError(f"unknown method {name!r}; methods: {', '.join(METHOD_NAMES)}")
    try:
        return _FACTORIES[name](**options)
    except TypeError as e:
        raise ValueError(f"method {name!r}: bad options {sorted(options)} ({e})") from None


__all__ = [
    "ArchState", "METHOD_NAMES", "Method", "accuracy", "binary_gates", "cross_entropy", "darts", "derive",
    "entropy", "fbnet", "fixed", "get_method", "gumbel_softmax", "init_arch_state", "proxyless", "proxyless_rl",
    "two_paths", "uniform",
]
