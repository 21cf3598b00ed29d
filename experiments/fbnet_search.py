"""FBNet-space supernet search on the embedded Fashion-MNIST subset, any method.

Runbook:
    hwnas profile --space fbnet --config fashion_mnist --out runs/lut.json
    hwnas train experiments/fbnet_search.py --workdir runs/proxyless \
        --set hardware.terms='[{"lut": "runs/lut.json", "weight": 2.0, "target": 0.5}]'
    hwnas derive --workdir runs/proxyless
    hwnas train experiments/fbnet_search.py:smoke --workdir /tmp/smoke      # seconds, no LUT

`--set method.name=fbnet|darts|proxyless|proxyless_rl|uniform` switches the method; each
method's options go in `method.options` (e.g. fbnet's tau0, decay, hard). The hardware term
(`hardware.terms`) takes one entry per table with its weight and target (in the table's
unit); `hardware.form` picks how they enter the loss (`costs/hardware_loss.py`).

Without a LUT the search optimizes accuracy alone.
"""


def get_config(arg=None):
    config = {
        "kind": "supernet",
        "seed": 0,
        "space": {"name": "fbnet", "preset": "fashion_mnist"},
        "data": {"dataset": "fashion_mnist_default", "val_fraction": 0.2, "batch_size": 64,
                 "augment": {"padding": 2, "flip": True}, "limit_train": 0, "limit_test": 0},
        "method": {"name": "proxyless", "options": {}},
        "schedule": {"epochs": 6, "warmup_epochs": 2, "arch_every": 1, "steps_per_epoch": 0},
        "optim": {
            "weights": {"name": "adam", "lr": 2e-3, "cosine": True, "weight_decay": 4e-5},
            "arch": {"name": "adam", "lr": 6e-3, "b1": 0.0, "b2": 0.999},
        },
        "hardware": {"form": "absolute", "terms": []},
        "checkpoint": {"every_steps": 200, "keep": 2},
        "log": {"every_steps": 20},
        "eval": {"derive_samples": 0},
    }
    if arg == "smoke":
        config["space"]["preset"] = "micro"
        config["data"].update(batch_size=16, limit_train=160, limit_test=64)
        config["schedule"].update(epochs=2, warmup_epochs=1, steps_per_epoch=2)
        config["checkpoint"]["every_steps"] = 2
        config["log"]["every_steps"] = 1
    elif arg not in (None, ""):
        raise ValueError(f"unknown variant {arg!r}; use 'smoke' or nothing")
    return config
