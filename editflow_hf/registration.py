"""Register the Edit Flow classes with transformers (`register`), so that checkpoints load with this package's
code and without `trust_remote_code`:

    AutoConfig.register("editflow", EditFlowConfig)
    AutoModel.register(EditFlowConfig, EditFlowForEditing)
    PIPELINE_REGISTRY.register_pipeline("editflow-generation", EditFlowGenerationPipeline, pt_model=AutoModel)

`import editflow_hf` does not register: it must stay light (every `editflow-* --help` goes through it, and
transformers' Auto classes import torch). Registration happens on the first access to a class of the package
(`from editflow_hf import EditFlowForEditing`, `editflow_hf.EditFlowConfig`...), on an explicit
`editflow_hf.register()`, and in the library functions that load checkpoints by their Auto classes.
"""

_registered = False


def register() -> None:
    """Register the Edit Flow config, model and `editflow-generation` pipeline with transformers (idempotent;
    imports torch and transformers)."""
    global _registered
    if _registered:
        return
    from transformers import AutoConfig, AutoModel
    from transformers.pipelines import PIPELINE_REGISTRY

    from .modeling.configuration_editflow import EditFlowConfig
    from .modeling.modeling_editflow import EditFlowForEditing
    from .modeling.pipeline_editflow import EditFlowGenerationPipeline

    AutoConfig.register(EditFlowConfig.model_type, EditFlowConfig, exist_ok=True)
    AutoModel.register(EditFlowConfig, EditFlowForEditing, exist_ok=True)
    PIPELINE_REGISTRY.register_pipeline("editflow-generation", pipeline_class=EditFlowGenerationPipeline, pt_model=AutoModel)
    _registered = True


__all__ = ["register"]
