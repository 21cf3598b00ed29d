"""Search strategies over a search space (random, evolution, NSGA-II, REINFORCE, BO, local).

Searchers see a `supernet.spaces` space and an evaluate function, never a Flax module.
"""
