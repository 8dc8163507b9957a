"""Register the Edit Flow classes with transformers' Auto classes and pipeline registry, without importing
transformers (and with it torch) before the user's own code does.

`import editflow_hf` must stay fast (every `editflow-* --help` goes through it), yet after it
`AutoConfig/AutoModel/AutoTokenizer.from_pretrained(editflow_checkpoint)` and `pipeline("editflow-generation")`
must know the Edit Flow classes. So each registration waits for the transformers module it needs:

    transformers.models.auto.configuration_auto -> AutoConfig.register("editflow", EditFlowConfig)
    transformers.models.auto.modeling_auto      -> AutoModel.register(EditFlowConfig, EditFlowForEditing)
    transformers.pipelines                      -> PIPELINE_REGISTRY.register_pipeline("editflow-generation", ...)

A module that is already imported registers at once. For one that is not, a meta-path finder wraps the loader
of that module (a post-import hook): right after transformers has executed it, and before the import that
asked for it returns, the registration runs. Each registration imports only modules that the finished one
already depends on, so no import cycle can see a half-initialised transformers module; and when one of our own
modules is half-executed at that moment (it is the one importing transformers), the registration waits until
our module has finished (its loader is wrapped the same way).
"""

import importlib.abc
import logging
import sys

logger = logging.getLogger(__name__)


def _register_config() -> None:
    from transformers import AutoConfig

    from .modeling.configuration_editflow import EditFlowConfig

    AutoConfig.register(EditFlowConfig.model_type, EditFlowConfig, exist_ok=True)


def _register_model() -> None:
    from transformers import AutoModel

    from .modeling.configuration_editflow import EditFlowConfig
    from .modeling.modeling_editflow import EditFlowForEditing

    AutoModel.register(EditFlowConfig, EditFlowForEditing, exist_ok=True)


def _register_pipeline() -> None:
    from transformers import AutoModel
    from transformers.pipelines import PIPELINE_REGISTRY

    from .modeling.pipeline_editflow import EditFlowGenerationPipeline

    PIPELINE_REGISTRY.register_pipeline("editflow-generation", pipeline_class=EditFlowGenerationPipeline, pt_model=AutoModel)


# transformers module -> the registration that needs it (removed once done).
_PENDING = {
    "transformers.models.auto.configuration_auto": _register_config,
    "transformers.models.auto.modeling_auto": _register_model,
    "transformers.pipelines": _register_pipeline,
}
# Our own modules (the registrations import them) and which of them have finished executing.
_OWN_PREFIX = __name__.rsplit(".", 1)[0] + ".modeling."
_executed: set[str] = set()
# transformers modules whose registration waits for one of our modules to finish (see `_own_module_busy`).
_deferred: list[str] = []


def _own_module_busy() -> bool:
    """Whether one of our modules is half-executed: e.g. `import editflow_hf.modeling.pipeline_editflow` runs
    `from transformers import Pipeline`, which finishes `transformers.pipelines` while pipeline_editflow has not
    defined its class yet. A registration then waits until that module is done. importlib flags a module
    `_initializing` on its spec until its import returns; `_executed` tells apart one whose code has already run
    (we are inside its wrapped loader)."""
    return any(
        name.startswith(_OWN_PREFIX) and name not in _executed and getattr(getattr(module, "__spec__", None), "_initializing", False)
        for name, module in list(sys.modules.items())
    )


def _run(module_name: str) -> None:
    registration = _PENDING.pop(module_name, None)
    if registration is None:
        return
    if not _PENDING and not _deferred:  # nothing left to wait for: stop looking at every import
        sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _RegisterAfterImport)]
    try:
        registration()
    except Exception as err:  # a failed registration must not break the user's transformers import
        logger.warning("editflow_hf could not register its classes with %s: %s", module_name, err)


def _after_exec(module_name: str) -> None:
    """Called right after a hooked module has executed."""
    if module_name.startswith(_OWN_PREFIX):
        _executed.add(module_name)
    elif _own_module_busy():
        _deferred.append(module_name)
        return
    if module_name in _PENDING:
        _run(module_name)
    if _deferred and not _own_module_busy():
        waiting, _deferred[:] = list(_deferred), []
        for name in waiting:
            _run(name)


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for a hooked module (a transformers module with a pending registration, or one of our
    own) it asks the other finders for the spec and makes the spec's loader call `_after_exec` right after
    executing the module."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in _PENDING and not fullname.startswith(_OWN_PREFIX):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        execute = loader.exec_module

        def exec_module(module):
            execute(module)
            _after_exec(fullname)

        # The loader object belongs to this one spec, so wrapping its method leaves every other import alone.
        loader.exec_module = exec_module
        return spec


def install() -> None:
    """Hook the transformers modules not imported yet; register now with those already imported."""
    if not any(isinstance(finder, _RegisterAfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())
    for module_name in list(_PENDING):
        if module_name in sys.modules:
            _run(module_name)
