"""Counting XLA compilations: the check behind "one compile serves every subnet"."""

from __future__ import annotations

import contextlib
from typing import Iterator

import jax
from jax import monitoring

_BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


class CompileCount:
    count: int = 0


@contextlib.contextmanager
def count_compilations() -> Iterator[CompileCount]:
    """Count backend compilations inside the block (the persistent cache is bypassed)."""
    counter = CompileCount()

    def listener(event: str, duration: float, **kwargs) -> None:
        if event == _BACKEND_COMPILE:
            counter.count += 1

    previous = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counter
    finally:
        monitoring.unregister_event_duration_listener(listener)
        jax.config.update("jax_enable_compilation_cache", previous)
