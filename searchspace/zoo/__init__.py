"""The classic architectures of the field, sized for small inputs: the baselines of every search.

Build one by name with `create_network("resnet20", num_classes=10, input_size=32, in_channels=3)`;
`list_networks()` names them all (`NETWORKS` is their `searchspace.registry.Registry`). Every
network runs at any input size from 8x8 up.
"""

from searchspace.zoo import (  # noqa: F401  (importing a family registers its networks)
    alexnet,
    densenet,
    efficientnet,
    fractalnet,
    googlenet,
    inception_v4,
    lenet,
    mobilenet,
    mobilenet_v3,
    nin,
    preact_resnet,
    resnet,
    resnext,
    shufflenet_v2,
    squeezenet,
    vgg,
    wide_resnet,
    zfnet,
)
from searchspace.zoo.registry import (
    NETWORKS,
    UnknownNetwork,
    create_network,
    list_networks,
    register_network,
)

__all__ = ["NETWORKS", "UnknownNetwork", "create_network", "list_networks", "register_network"]
