"""Search spaces: named categorical decisions; an architecture is an `int32` vector.

`get_space(name, preset=None)` returns a space by name. Presets choose a macro-architecture
(input size, widths, classes) for spaces that have one.
"""

from supernet.spaces.base import Decision, SearchSpace
from supernet.spaces.fbnet import CANDIDATES, FBNET_PRESETS, FBNetConfig, FBNetSpace
from supernet.spaces.nasbench201 import NASBench201Space
from supernet.spaces.ofa_mbv3 import OFA_PRESETS, OFAConfig, OFAMobileNetV3Space

_FACTORIES = {
    "nasbench201": (NASBench201Space, None),
    "fbnet": (FBNetSpace, FBNET_PRESETS),
    "ofa_mbv3": (OFAMobileNetV3Space, OFA_PRESETS),
}
SPACE_NAMES = tuple(_FACTORIES)


def presets(name: str) -> tuple[str, ...]:
    """Names of the macro-architecture presets of space `name` (empty if it has none)."""
    _, table = _lookup(name)
    return tuple(table or ())


def get_space(name: str, preset: str | None = None) -> SearchSpace:
    """The search space `name`, with the macro-architecture `preset` (default: the paper's)."""
    cls, table = _lookup(name)
    if preset is None:
        return cls()
    if table is None:
        raise ValueError(f"space {name!r} has no presets; got preset {preset!r}")
    if preset not in table:
        raise ValueError(f"space {name!r} has no preset {preset!r}; presets: {', '.join(table)}")
    return cls(table[preset])


def _lookup(name: str):
    if name not in _FACTORIES:
        raise ValueError(f"unknown search space {name!r}; spaces: {', '.join(SPACE_NAMES)}")
    return _FACTORIES[name]


__all__ = [
    "CANDIDATES", "Decision", "FBNET_PRESETS", "FBNetConfig", "FBNetSpace", "NASBench201Space",
    "OFA_PRESETS", "OFAConfig", "OFAMobileNetV3Space", "SPACE_NAMES", "SearchSpace", "get_space", "presets",
]
