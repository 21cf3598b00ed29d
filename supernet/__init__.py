"""Search spaces, the weight-sharing supernet, its training methods, data and the CLI."""

from supernet.spaces import SPACE_NAMES, SearchSpace, get_space

__all__ = ["SPACE_NAMES", "SearchSpace", "get_space"]
