"""editflow-hf: Edit Flows on BERT-family encoders, the Hugging Face way.

Importing the package registers the Edit Flow config, model and pipeline with the transformers Auto
classes; checkpoints saved from here carry the remote code in `editflow_hf.modeling` (the repo's
top-level `modeling/` folder), so they also load without this package (`trust_remote_code=True`).
"""

import importlib.util
from pathlib import Path

from transformers import AutoConfig, AutoModel
from transformers.pipelines import PIPELINE_REGISTRY

# Installed, `modeling/` is the subpackage editflow_hf.modeling (pyproject's package-dir). Run from a source
# checkout without installing (`PYTHONPATH=. python training/pt.py ...`), it sits beside this folder instead.
_source_root = Path(__file__).resolve().parent.parent
if importlib.util.find_spec(f"{__name__}.modeling") is None and (_source_root / "modeling" / "modeling_editflow.py").is_file():
    __path__.append(str(_source_root))

from .modeling.configuration_editflow import EditFlowConfig
from .modeling.modeling_editflow import EditFlowForEditing, EditFlowOutput, EditFlowTokenHead
from .modeling.pipeline_editflow import EditFlowGenerationPipeline
from .modeling.scheduling_editflow import get_scheduler

__version__ = "0.1.0"

AutoConfig.register(EditFlowConfig.model_type, EditFlowConfig, exist_ok=True)
AutoModel.register(EditFlowConfig, EditFlowForEditing, exist_ok=True)
EditFlowConfig.register_for_auto_class()
EditFlowForEditing.register_for_auto_class("AutoModel")
PIPELINE_REGISTRY.register_pipeline("editflow-generation", pipeline_class=EditFlowGenerationPipeline, pt_model=AutoModel)

__all__ = [
    "EditFlowConfig",
    "EditFlowForEditing",
    "EditFlowGenerationPipeline",
    "EditFlowOutput",
    "EditFlowTokenHead",
    "get_scheduler",
]
