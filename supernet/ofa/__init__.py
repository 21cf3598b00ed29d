"""Once-for-All MobileNetV3 (Cai et al., ICLR 2020): the elastic supernet, its subnets, recalibration.

    model = OFASupernet(get_space("ofa_mbv3", "tiny"), HostInit(0))
    logits = model(images_at_resolution, arch, train=False)    # arch: int32 [46], traced
    subnet = extract(model, arch)                              # static network, same function

One XLA compilation per input resolution serves every subnet (see `supernet.ofa.supernet`).
"""

from supernet.ofa.elastic import elastic_kernel, sort_channels, sort_middle_channels
from supernet.ofa.recalibrate import accuracy_after_recalibration, count_correct, evaluate, recalibrate_bn
from supernet.ofa.subnet import Head, MBConvBlock, OFASubnet, Stem, extract, make_block
from supernet.ofa.supernet import ElasticBlock, OFASupernet, resize

__all__ = [
    "ElasticBlock",
    "Head",
    "MBConvBlock",
    "OFASubnet",
    "OFASupernet",
    "Stem",
    "accuracy_after_recalibration",
    "count_correct",
    "elastic_kernel",
    "evaluate",
    "extract",
    "make_block",
    "recalibrate_bn",
    "resize",
    "sort_channels",
    "sort_middle_channels",
]
