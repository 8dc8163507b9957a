"""editflow-hf: Edit Flows on BERT-family encoders, the Hugging Face way.

Importing the package registers the Edit Flow config, model and pipeline with the transformers Auto
classes; checkpoints saved from here carry the remote code of `editflow_hf.modeling`, so they also load
without this package (`trust_remote_code=True`).

The import itself is light: the classes below load on first access (module `__getattr__`), and the
registration waits until transformers' Auto classes or pipelines are imported (see `_auto_registration`),
so `import editflow_hf` and every `editflow-* --help` start without torch.
"""

import importlib

from . import _auto_registration

__version__ = "0.1.0"

_LAZY_ATTRIBUTES = {
    "EditFlowConfig": ".modeling.configuration_editflow",
    "EditFlowForEditing": ".modeling.modeling_editflow",
    "EditFlowGenerationPipeline": ".modeling.pipeline_editflow",
    "EditFlowOutput": ".modeling.modeling_editflow",
    "EditFlowTokenHead": ".modeling.modeling_editflow",
    "get_scheduler": ".modeling.scheduling_editflow",
}

__all__ = sorted(_LAZY_ATTRIBUTES)


def __getattr__(name: str):
    module = _LAZY_ATTRIBUTES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_ATTRIBUTES})


_auto_registration.install()
