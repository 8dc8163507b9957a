"""editflow-hf: Edit Flows on BERT-family encoders, the Hugging Face way.

`import editflow_hf` is light (no torch, no transformers). The classes below load on first access (module
`__getattr__`), and that first access registers them with transformers (AutoConfig, AutoModel and the
`editflow-generation` pipeline task); `editflow_hf.register()` does the same explicitly. Checkpoints saved from
here carry the remote code of `editflow_hf.modeling`, so they also load without this package
(`trust_remote_code=True`).
"""

import importlib

from .registration import register

__version__ = "0.1.0"

_LAZY_ATTRIBUTES = {
    "EditFlowConfig": ".modeling.configuration_editflow",
    "EditFlowForEditing": ".modeling.modeling_editflow",
    "EditFlowGenerationPipeline": ".modeling.pipeline_editflow",
    "EditFlowOutput": ".modeling.modeling_editflow",
    "EditFlowTokenHead": ".modeling.modeling_editflow",
    "get_scheduler": ".modeling.scheduling_editflow",
}

__all__ = sorted([*_LAZY_ATTRIBUTES, "register"])


def __getattr__(name: str):
    module = _LAZY_ATTRIBUTES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    register()
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_ATTRIBUTES})
