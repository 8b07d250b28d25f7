"""mitmproxy entry script: `mitmdump -s addon/edge.py`. Keep this file tiny.

mitmproxy loads this file as a script outside any package, so the repository
root goes on sys.path and cached `addon.*` modules are dropped, making a reload (touch
this file) pick up edits to every module.
"""

import sys
from pathlib import Path

if __name__.startswith("__mitmproxy_script__"):
    _root = str(Path(__file__).resolve().parent.parent)
    if _root not in sys.path:
        sys.path.insert(0, _root)
    for _name in [n for n in sys.modules if n == "addon" or n.startswith("addon.")]:
        del sys.modules[_name]

from addon.mitm import addons as edge_addons  # noqa: E402

addons = edge_addons()
