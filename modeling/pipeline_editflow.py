"""Text generation with an Edit Flow model (tau-leaping). Placeholder until the sampler lands."""

from transformers import Pipeline


class EditFlowGenerationPipeline(Pipeline):
    def _sanitize_parameters(self, **kwargs):
        return {}, {}, {}

    def preprocess(self, inputs):
        raise NotImplementedError

    def _forward(self, model_inputs):
        raise NotImplementedError

    def postprocess(self, model_outputs):
        raise NotImplementedError
