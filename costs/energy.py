"""Analytic inference energy: MACs and memory traffic priced with per-device constants.

For one forward pass of a batch of `batch_size` examples

    E = MACs * batch_size * e_mac  +  traffic_bytes * e_byte  [+ P_static * latency]

with `MACs` per example and `traffic_bytes` the compulsory memory traffic of the batch, both
from `costs.analytic` (see its module docstring: every op reads its input and weights once and
writes its output once; activations scale with the batch, weights do not). `e_mac` is the
energy of one multiply-accumulate, `e_byte` of one byte moved to or from off-chip memory
(DRAM), `P_static` an optional static (leakage + idle) power drawn while the batch runs.
Energies are in pJ per event, power in mW, latency in ms, results in mJ:
`1 mJ = 1e9 pJ` and `1 mW * 1 ms = 1e-3 mJ`. Two terms suffice for a first-order estimate
because off-chip traffic is where the energy goes: in the tables below one 32-bit DRAM access
costs as much as about 140 fp32 MACs (640 / 4.6) or 2,100 int8 MACs (640 / 0.3).

Both MACs and traffic are sums over the network's layers, and so is E: for the additive
spaces (fbnet: per-layer candidates; nasbench201: per-edge ops) and for ofa_mbv3 (per-block
costs at each resolution, inactive blocks free), `energy_table` is a `costs.lut.LatencyTable`
of metric `energy_mj` whose `cost(arch)` equals `energy_mj(arch)`, so an energy budget enters
the search loss exactly like a latency lookup table.

Example:
    >>> import jax
    >>> from supernet.spaces import get_space
    >>> space = get_space("fbnet", "tiny")
    >>> archs = np.asarray(space.sample(jax.random.key(0), 4))
    >>> energy_mj(space, archs, "horowitz45_int8")             # float64 [4], mJ per image
    >>> table = energy_table(space, "horowitz45_int8")         # LatencyTable, unit mJ
    >>> table.cost(archs)                                      # the same numbers (float32)

Constants (`ENERGY_PRESETS`; `EnergyModel(...)` builds your own)
------------------------------------------------------------------
Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014, gives rough
energies of a 45 nm process at 0.9 V (his table of operations):

    integer add   8 bit 0.03 pJ,  32 bit 0.1 pJ      integer mult  8 bit 0.2 pJ,  32 bit 3.1 pJ
    float add    16 bit 0.4 pJ,   32 bit 0.9 pJ      float mult   16 bit 1.1 pJ,  32 bit 3.7 pJ
    64-bit memory access: 8 KB cache 10 pJ, DRAM 1.3-2.6 nJ

Han, Pool, Tran & Dally ("Learning both weights and connections for efficient neural
networks", NeurIPS 2015) tabulate Horowitz's numbers per 32-bit access: SRAM cache 5 pJ,
DRAM 640 pJ (about half the low end of the 64-bit DRAM range above).

Derived (a MAC is one multiply and one add; a byte is a quarter of a 32-bit access):

    horowitz45_fp32  e_mac = 3.7 + 0.9 = 4.6 pJ (fp32 mult + fp32 add); e_byte = 640 / 4 =
                     160 pJ/B (DRAM); 4-byte elements.
    horowitz45_fp16  e_mac = 1.1 + 0.4 = 1.5 pJ (fp16 mult + fp16 add); e_byte 160 pJ/B
                     (DRAM energy per bit does not depend on the data type); 2-byte elements.
    horowitz45_int8  e_mac = 0.2 + 0.1 = 0.3 pJ: an 8-bit multiply, accumulated in 32 bits
                     (int8 products are summed in a 32-bit accumulator so that long dot
                     products do not overflow; an 8-bit add, 0.03 pJ, would understate it);
                     e_byte 160 pJ/B; 1-byte elements.

Chen, Emer & Sze, "Eyeriss: a spatial architecture for energy-efficient dataflow for
convolutional neural networks", ISCA 2016, give the energy of one 16-bit data access at each
level of an accelerator's memory hierarchy *relative to one MAC*: register file 1x, another
PE of the array 2x, global buffer 6x, DRAM 200x. Only the ratios are published, so the
`eyeriss` preset is normalized: e_mac = 1 pJ by convention and e_byte = 200 / 2 = 100 pJ/B
(derived: 200 MACs per 2-byte DRAM access), 2-byte elements. Its `energy_mj` values rank
architectures and work in a loss with a relative target, but are not absolute millijoules.

The analytic traffic counts only off-chip traffic, so a model has one per-byte constant. For
a device whose working set fits on chip, set `pj_per_byte` to an on-chip access instead
(derived from the tables above: 8 KB cache 10 pJ / 8 B = 1.25 pJ/B; Eyeriss global buffer
6 / 2 = 3 MACs per byte). No preset has static power (neither paper gives one); set
`static_mw` and pass a latency to include it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Union

import numpy as np
from jaxtyping import Float, Int

from costs.analytic import analytic_costs, layer_cost_tables
from costs.lut import LatencyTable, device_info

PJ_PER_MJ = 1e9
MJ_PER_MW_MS = 1e-3  # 1 mW for 1 ms is 1 uJ


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclasses.dataclass(frozen=True)
class EnergyModel:
    """Per-device energy constants (see the module docstring for the presets' sources).

    pj_per_mac:        energy of one multiply-accumulate, pJ.
    pj_per_byte:       energy of one byte of off-chip (DRAM) traffic, pJ.
    name:              the device name recorded in energy tables.
    source:            where the constants come from (a citation, or "user").
    bytes_per_element: element width the constants assume (fp32 4, fp16 2, int8 1); the
                       default element width of `energy_mj` and `energy_table`.
    static_mw:         static power, mW, charged for the latency of the batch (0: none).
    """

    pj_per_mac: float
    pj_per_byte: float
    name: str = "custom"
    source: str = "user"
    bytes_per_element: int = 4
    static_mw: float = 0.0

    def __post_init__(self):
        for field in ("pj_per_mac", "pj_per_byte", "static_mw"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f"EnergyModel.{field} must be a finite number >= 0, got {value!r}")
            object.__setattr__(self, field, float(value))
        _check_positive_int("EnergyModel.bytes_per_element", self.bytes_per_element)
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"EnergyModel.name must be a non-empty string, got {self.name!r}")


_HOROWITZ = 'Horowitz, "Computing\'s energy problem", ISSCC 2014 (45 nm, 0.9 V)'
_HAN = "DRAM 640 pJ per 32 bits as tabulated by Han et al., NeurIPS 2015"
ENERGY_PRESETS: dict[str, EnergyModel] = {
    "horowitz45_fp32": EnergyModel(
        3.7 + 0.9, 640 / 4, "horowitz45_fp32", f"{_HOROWITZ}: fp32 mult 3.7 + add 0.9 pJ; {_HAN}", 4),
    "horowitz45_fp16": EnergyModel(
        1.1 + 0.4, 640 / 4, "horowitz45_fp16", f"{_HOROWITZ}: fp16 mult 1.1 + add 0.4 pJ; {_HAN}", 2),
    "horowitz45_int8": EnergyModel(
        0.2 + 0.1, 640 / 4, "horowitz45_int8",
        f"{_HOROWITZ}: int8 mult 0.2 + 32-bit accumulate 0.1 pJ; {_HAN}", 1),
    "eyeriss": EnergyModel(
        1.0, 200 / 2, "eyeriss",
        "Chen, Emer & Sze, Eyeriss, ISCA 2016: DRAM access 200x a MAC (16 bit); normalized, MAC = 1 pJ", 2),
}

ModelLike = Union[EnergyModel, str]


def energy_preset(name: str) -> EnergyModel:
    """The preset `name` (one of `ENERGY_PRESETS`); an unknown name raises `ValueError`."""
    try:
        return ENERGY_PRESETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown energy preset {name!r}; presets: {', '.join(sorted(ENERGY_PRESETS))}") from None


def energy_mj(space, archs: Int[np.ndarray, "n d"], model: ModelLike, *, batch_size: int = 1,
              bytes_per_element: int | None = None,
              latency_ms: Float[np.ndarray, " n"] | None = None) -> Float[np.ndarray, " n"]:
    """Energy in mJ of one forward pass of a batch of `batch_size`, per architecture (float64 `[n]`).

    `E = macs * batch_size * pj_per_mac + memory_traffic_bytes * pj_per_byte
         (+ static_mw * latency_ms)`, from `costs.analytic.analytic_costs` (vectorized).
    `model` is an `EnergyModel` or a preset name; `bytes_per_element` defaults to the model's.
    `latency_ms` (`[n]`, the batch's latency) is needed, and used, only when the model has
    static power.
    """
    model = _model(model)
    bpe = model.bytes_per_element if bytes_per_element is None else bytes_per_element
    costs = analytic_costs(space, archs, batch_size=batch_size, bytes_per_element=bpe)
    pj = costs.macs * float(batch_size) * model.pj_per_mac + costs.memory_traffic_bytes * model.pj_per_byte
    energy = pj / PJ_PER_MJ
    if model.static_mw > 0:
        if latency_ms is None:
            raise ValueError(f"energy model {model.name!r} has static power ({model.static_mw} mW): "
                             f"pass latency_ms, the latency of each architecture")
        latency_ms = np.asarray(latency_ms, np.float64).reshape(-1)
        if latency_ms.shape != energy.shape:
            raise ValueError(f"latency_ms has {latency_ms.shape[0]} entries for {energy.shape[0]} architectures")
        energy = energy + model.static_mw * latency_ms * MJ_PER_MW_MS
    return energy


def energy_table(space, model: ModelLike, *, batch_size: int = 1, bytes_per_element: int | None = None,
                 latency: LatencyTable | None = None) -> LatencyTable:
    """A lookup table of metric `energy_mj` (unit mJ) with `table.cost(archs) == energy_mj(...)`.

    The per-choice entries price the analytic per-choice MACs and traffic
    (`costs.analytic.layer_cost_tables`): for fbnet and nasbench201 a `[decisions, choices]`
    `LatencyTable` (per layer candidate, per edge op) with the skeleton in `fixed`; for
    ofa_mbv3 an `OFALatencyTable` (`[R, B, K, E]` blocks, `[R]` fixed). Energy is additive over
    these entries because MACs and traffic are. With static power, `latency` (a
    millisecond `LatencyTable` of the same space and batch size) adds
    `static_mw * latency` entry by entry, which is additive for the same reason; resolutions
    it lacks stay absent (NaN) in an OFA energy table.
    """
    model = _model(model)
    bpe = model.bytes_per_element if bytes_per_element is None else bytes_per_element
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("bytes_per_element", bpe)
    tables = layer_cost_tables(space)

    def price(macs, act_traffic, weight_traffic) -> np.ndarray:  # mJ of elements at batch 1
        pj = (macs * batch_size * model.pj_per_mac
              + (act_traffic * batch_size + weight_traffic) * bpe * model.pj_per_byte)
        return np.asarray(pj, np.float64) / PJ_PER_MJ

    def price_table(c) -> np.ndarray:
        return price(c.macs, c.act_traffic, c.weight_traffic)

    if space.name == "ofa_mbv3":
        fixed, table = price_table(tables.fixed), price_table(tables.blocks)
    elif space.name == "fbnet":
        fixed, table = price_table(tables.fixed), price_table(tables.layers)
    else:  # nasbench201: the edge tables are the per-decision costs
        fixed = price_table(tables.fixed)
        table = price(tables.edge_macs, tables.edge_act_traffic, tables.edge_weight_traffic)
    if space.name != "ofa_mbv3":
        table = _pad_choices(space, table)
    device = {"backend": "analytic", "batch_size": batch_size, "bytes_per_element": bpe,
              "pj_per_mac": model.pj_per_mac, "pj_per_byte": model.pj_per_byte, "source": model.source}
    if model.static_mw > 0:
        fixed, table = _add_static(space, model, fixed, table, latency, batch_size)
        device.update(static_mw=model.static_mw, latency_device=latency.device.get("name"))
    return LatencyTable.for_space(space, table, fixed=fixed if space.name == "ofa_mbv3" else float(fixed),
                                  device=device_info(model.name, **device), metric="energy_mj", unit="mJ")


# ====================================================================== helpers
def _model(model: ModelLike) -> EnergyModel:
    if isinstance(model, EnergyModel):
        return model
    if isinstance(model, str):
        return energy_preset(model)
    raise ValueError(f"model must be an EnergyModel or a preset name ({', '.join(sorted(ENERGY_PRESETS))}), "
                     f"got {type(model).__name__}")


def _pad_choices(space, table: np.ndarray) -> np.ndarray:
    """`[d, max choices]` with NaN for choices a decision lacks (the `LatencyTable` layout)."""
    cards = np.asarray(space.cardinalities)
    out = np.full((len(cards), cards.max()), np.nan)
    if table.shape[0] != len(cards) or table.shape[1] < cards.max():
        raise ValueError(f"{space.name}: cost table of shape {table.shape} does not fit decisions {cards.tolist()}")
    present = np.arange(cards.max())[None, :] < cards[:, None]
    out[present] = table[:, :cards.max()][present]
    return out


def _add_static(space, model: EnergyModel, fixed, table, latency: LatencyTable | None, batch_size: int):
    """Add `static_mw * latency` (mJ) to every entry of the energy table."""
    if latency is None:
        raise ValueError(f"energy model {model.name!r} has static power ({model.static_mw} mW): pass latency, "
                         f"a LatencyTable in ms of this space")
    latency.check_space(space)
    if latency.unit != "ms":
        raise ValueError(f"latency table is in {latency.unit!r}; static energy needs milliseconds")
    measured_batch = latency.device.get("batch_size", batch_size)
    if measured_batch != batch_size:
        raise ValueError(f"latency table was measured at batch size {measured_batch}, energy is for {batch_size}")
    scale = model.static_mw * MJ_PER_MW_MS
    return fixed + scale * np.asarray(latency.fixed, np.float64), table + scale * np.asarray(latency.table)
