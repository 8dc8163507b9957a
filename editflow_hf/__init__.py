"""editflow-hf: Edit Flows on BERT-family encoders, the Hugging Face way.

Importing the package registers the Edit Flow config, model and pipeline with the transformers Auto
classes; checkpoints saved from here carry the remote code of `editflow_hf.modeling`, so they also load
without this package (`trust_remote_code=True`).
"""

from transformers import AutoConfig, AutoModel
from transformers.pipelines import PIPELINE_REGISTRY

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
