"""Once-for-All progressive shrinking of the OFA MobileNetV3 supernet on Fashion-MNIST.

Runbook:
    hwnas train experiments/ofa_ps.py --workdir runs/ofa                  # all six phases, resumable
    hwnas train experiments/ofa_ps.py --workdir runs/ofa --set ofa.run=kernel   # one phase
    hwnas train experiments/ofa_ps.py:smoke --workdir /tmp/ofa            # `micro` space, about a minute on 2 CPU cores
    hwnas train experiments/ofa_ps.py:smoke5 --workdir /tmp/ofa5          # five stages, fashion_mnist preset, shortened
    hwnas train experiments/ofa_ps.py:test --workdir /tmp/ofa-test        # `micro` space: CI's end-to-end check

The schedule (`ofa.phases`, see `supernet/ofa/phases.py`) is OFA's: the largest network,
then elastic kernel {3,5,7}, depth {3,4} then {2,3,4}, expand {4,6} then {3,4,6}, with
1, 1, 2, 2, 4, 4 subnets per step (gradients summed) and distillation from the largest
network (`kd_ratio`) after the first phase. Resolution is elastic throughout: each step
draws one from the preset's set. Each phase writes `WORKDIR/<phase>/result.json` with the
test accuracy of the largest, the smallest and random subnets after BN recalibration.

OFA trains on ImageNet for 180 + 120 + 25 + 120 + 25 + 120 epochs; the epochs here are
scaled for the embedded Fashion-MNIST subset and a CPU. `ofa.run` selects one phase (the
previous one must have finished) or `all`. The phases list the values each dimension may take,
so changing `space.preset` to one with other kernel/expand/depth sets needs a new
`ofa_schedule(space, ...)`: the trainer refuses values the space lacks.
"""

from supernet.ofa.phases import ofa_schedule
from supernet.spaces import get_space


def get_config(arg=None):
    config = {
        "kind": "ofa",
        "seed": 0,
        "space": {"name": "ofa_mbv3", "preset": "fashion_mnist"},
        "data": {"dataset": "fashion_mnist_default", "val_fraction": 0.1, "batch_size": 64,
                 "augment": {"padding": 2, "flip": True}, "limit_train": 0, "limit_test": 0},
        "schedule": {"steps_per_epoch": 0},
        "optim": {"name": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 3e-5},
        "ofa": {"phases": ofa_schedule(get_space("ofa_mbv3", "fashion_mnist"), epochs=[8, 4, 1, 4, 1, 4],
                                       lrs=[0.1, 0.03, 0.0025, 0.0075, 0.0025, 0.0075]),
                "run": "all"},
        "checkpoint": {"every_steps": 200, "keep": 2},
        "log": {"every_steps": 20},
        "eval": {"random_subnets": 8, "recalibration_images": 2000},
    }
    if arg == "smoke":
        # The micro space (one elastic stage): its step compiles in seconds. The five-stage
        # fashion_mnist preset's step takes ~2 minutes per resolution to trace and compile on
        # 2 free CPU cores (95 s compile + 30 s tracing, 2026-11-29), over 10 under load.
        config["space"]["preset"] = "micro"
        config["data"].update(batch_size=64, limit_train=4000, limit_test=1000)
        config["ofa"]["phases"] = ofa_schedule(get_space("ofa_mbv3", "micro"), epochs=[6, 2, 1, 1, 1, 1],
                                               lrs=[0.1, 0.03, 0.01, 0.01, 0.01, 0.01])
        config["checkpoint"]["every_steps"] = 50
        config["eval"].update(random_subnets=8, recalibration_images=500)
    elif arg == "smoke5":
        # The five-stage fashion_mnist preset (kernels {3,5,7}, expands {3,4,6}, depths {2,3,4},
        # 20/24/28 px) on the smoke's 4,000 images: OFA's whole schedule, epochs cut to fit a
        # CPU session (three compiles of the training step, one per resolution).
        config["data"].update(batch_size=64, limit_train=4000, limit_test=1000)
        config["ofa"]["phases"] = ofa_schedule(get_space("ofa_mbv3", "fashion_mnist"), epochs=[3, 1, 1, 1, 1, 1],
                                               lrs=[0.1, 0.03, 0.01, 0.01, 0.01, 0.01])
        config["checkpoint"]["every_steps"] = 50
        config["eval"].update(random_subnets=8, recalibration_images=500)
    elif arg == "test":
        config["space"]["preset"] = "micro"
        config["data"].update(batch_size=16, limit_train=160, limit_test=32, augment={})
        config["schedule"]["steps_per_epoch"] = 1
        # Two steps in the second phase: the tests interrupt a distillation phase half way.
        config["ofa"]["phases"] = ofa_schedule(get_space("ofa_mbv3", "micro"), epochs=[1, 2, 1, 1, 1, 1],
                                               lrs=[0.05] * 6)
        config["checkpoint"]["every_steps"] = 1
        config["log"]["every_steps"] = 1
        config["eval"].update(random_subnets=2, recalibration_images=32)
    elif arg not in (None, ""):
        raise ValueError(f"unknown variant {arg!r}; use 'smoke', 'test' or nothing")
    return config
