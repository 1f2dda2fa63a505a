"""BasicSR's own network classes (basicsr 1.4.2): RRDBNet (ESRGAN), SRVGGNetCompact, DFDNet.

The platform builds on BasicSR's architectures rather than copies of them, so published checkpoints
load into exactly the code that produced them. basicsr 1.4.2's import fails on current torchvision:
its degradations module imports `torchvision.transforms.functional_tensor`, a module torchvision has
since removed. The one function it takes from there, `rgb_to_grayscale`, lives on in
`torchvision.transforms.functional`; a stand-in module that re-exports it is registered before
basicsr is imported. Import BasicSR classes from here, never from basicsr directly.
"""

import sys
import types

import torchvision.transforms.functional as _functional

if "torchvision.transforms.functional_tensor" not in sys.modules:
    _stand_in = types.ModuleType("torchvision.transforms.functional_tensor")
    _stand_in.rgb_to_grayscale = _functional.rgb_to_grayscale
    sys.modules["torchvision.transforms.functional_tensor"] = _stand_in

from basicsr.archs import vgg_arch  # noqa: E402
from basicsr.archs.dfdnet_arch import DFDNet  # noqa: E402
from basicsr.archs.rrdbnet_arch import RRDBNet  # noqa: E402
from basicsr.archs.srvgg_arch import SRVGGNetCompact  # noqa: E402

__all__ = ["DFDNet", "RRDBNet", "SRVGGNetCompact", "vgg_arch"]
