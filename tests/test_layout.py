"""The package's shape, read from the source (ast, nothing imported): arrows between layers point down, the
commands are leaves, each fact the code relies on has one definition, and registration uses no import hook."""

import ast
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "editflow_hf"
MODELING = REPO_ROOT / "modeling"

# Lowest first. A module may import its own layer and the layers below it, never one above. `editflow_hf`
# itself (the package's __init__) only re-exports `registration` and the modeling classes.
LAYERS = (
    ("errors", "flags"),  # the one user-facing error; boolean flag words
    ("modeling",),  # remote code: imports only torch, transformers and itself
    ("registration", "checkpoints", "causal_lm"),  # Auto-class registration; model folders, Hub ids; causal LMs (GGUF)
    ("path", "objective"),  # the probability path; the loss and the bound
    ("data",),  # datasets for training and evaluation
    ("conversion", "hub"),  # encoder/decoder -> Edit Flow checkpoint; model card and upload
    ("training",),  # the training loop, its flags, checks and saves
    ("evaluation", "sampling_flags", "visualize", "lm_eval"),  # held-out metrics; sampling flags + pipeline; trace views; lm-eval model
    ("apps",),  # the commands: parse flags, call the library; nothing imports them
)
LAYER_OF = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def package_modules() -> dict[str, Path]:
    """`editflow_hf.x.y` -> its file, for every module of the package (modeling/ through the symlink)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imported_modules(module: str, path: Path) -> set[str]:
    """Every `editflow_hf...` module `path` imports, at the top or inside a function (absolute and relative)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # `from . import x` names a module
    return {name for name in found if name == "editflow_hf" or name.startswith("editflow_hf.")}


def top_name(module: str) -> str:
    """The layer name of a module: its first component below `editflow_hf` (`editflow_hf.hub.card` -> `hub`)."""
    return module.split(".")[1]


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: {m for m in imported_modules(name, path) if m in modules or m == "editflow_hf"} for name, path in modules.items()}


def test_every_module_has_a_layer():
    unplaced = sorted({top_name(m) for m in package_modules() if m != "editflow_hf"} - set(LAYER_OF))
    assert not unplaced, f"give these a layer in LAYERS: {unplaced}"


def test_imports_point_down_and_nothing_imports_the_commands():
    wrong = []
    for module, targets in import_graph().items():
        for target in targets:
            if module == "editflow_hf":
                if top_name(target) not in ("registration", "modeling"):
                    wrong.append(f"{module} -> {target} (the package root re-exports registration and the classes only)")
                continue
            if target == "editflow_hf":
                wrong.append(f"{module} -> editflow_hf (import the module that defines the name)")
                continue
            if top_name(target) == "apps" and top_name(module) != "apps":
                wrong.append(f"{module} -> {target} (commands are leaves)")
            elif LAYER_OF[top_name(target)] > LAYER_OF[top_name(module)]:
                wrong.append(f"{module} -> {target} (layer {top_name(target)} is above {top_name(module)})")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_graph_test_sees_relative_and_lazy_imports():
    """The scanner itself: a lazy relative import inside a function is an edge (else the test above proves nothing)."""
    graph = import_graph()
    assert "editflow_hf.data.prepare" in graph["editflow_hf.evaluation"]  # `from .data.prepare import ...` in a function
    assert "editflow_hf.hub.upload" in graph["editflow_hf.training.cli"]
    assert "editflow_hf.visualize" in graph["editflow_hf.apps.sample"]


def test_remote_code_imports_only_torch_transformers_and_itself():
    allowed_roots = {"torch", "transformers", "__future__"}
    for path in sorted(MODELING.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                roots = {node.module.split(".")[0]}
            else:
                continue
            third_party = {root for root in roots if root not in allowed_roots and root not in STDLIB}
            assert not third_party, f"{path.name} imports {third_party}: remote code may import only torch and transformers"


STDLIB = sys.stdlib_module_names


def test_no_import_hook_and_no_private_importlib_state():
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert "meta_path" not in text and "_initializing" not in text, path


# --- one definition per fact --------------------------------------------------------------------------------------


def definitions() -> list[tuple[str, ast.AST]]:
    """(file, node) for every function, class and module-level assignment in editflow_hf/ and modeling/."""
    found = []
    for path in sorted({*PACKAGE.rglob("*.py"), *MODELING.glob("*.py")}, key=str):
        if path.is_relative_to(PACKAGE / "modeling"):
            continue  # the same files as modeling/ (symlink)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [(str(path.relative_to(REPO_ROOT)), node) for node in ast.walk(tree)]
    return found


def defined_names(nodes) -> list[tuple[str, str]]:
    names = []
    for where, node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append((where, node.name))
        elif isinstance(node, ast.Assign):
            names += [(where, target.id) for target in node.targets if isinstance(target, ast.Name)]
    return names


def string_constants(nodes) -> list[tuple[str, str]]:
    return [(where, node.value) for where, node in nodes if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def compared_to_constant(nodes, name: str, op: type, value) -> list[str]:
    """Files with a comparison `<...name> <op> value` (e.g. `prompt_len > 1`)."""
    hits = []
    for where, node in nodes:
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], op):
            left, right = node.left, node.comparators[0]
            left_name = left.id if isinstance(left, ast.Name) else getattr(left, "attr", None)
            if left_name == name and isinstance(right, ast.Constant) and right.value == value:
                hits.append(where)
    return hits


@pytest.fixture(scope="module")
def nodes():
    return definitions()


# fact -> the names that define it; each must be defined exactly once, in the named file.
ONE_HOME = {
    "Hub id or local path": ("editflow_hf/checkpoints/hub_ids.py", ["is_hub_id"]),
    "boolean words": ("editflow_hf/flags.py", ["TRUE_WORDS", "FALSE_WORDS", "bool_word", "str_to_bool"]),
    "tokens no edit may write (suppress_token_ids)": ("modeling/edits_editflow.py", ["unwritable_token_ids"]),
    "model folder completeness": ("editflow_hf/checkpoints/folder_checks.py", ["config_file_problem", "model_folder_problem", "weights_problem", "checkpoint_problem", "check_checkpoint"]),
    "config checks before loading": ("editflow_hf/checkpoints/config_checks.py", ["config_problem", "size_problem", "foreign_code"]),
    "the loading gate": ("editflow_hf/checkpoints/gate.py", ["check_model_folder", "hub_config_check", "loading_errors"]),
    "recorded training arguments": ("editflow_hf/checkpoints/names.py", ["RECORDED_TRAINING_ARGS", "TRAINING_ARGS_FILE"]),
    "x0 spec parsing and default": ("editflow_hf/path/couplings.py", ["parse_x0_sampler", "DEFAULT_X0_SAMPLER"]),
    "the regime of an example": ("editflow_hf/path/collator.py", ["regime"]),
    "edit kinds": ("modeling/edits_editflow.py", ["EditKind"]),
    # the standard library only: the commands offer them as flag choices and --help loads no torch
    "the edit rules, write orders and infill modes": ("modeling/edits_editflow.py", ["EDIT_RULES", "WRITE_ORDERS", "INFILL_MODES"]),
    "the pad id of a batch (pad_token_id, else 0)": ("modeling/edits_editflow.py", ["pad_token_id_of"]),
    "a seed in range (0 to 2**64 - 1, or None)": ("modeling/firing_editflow.py", ["check_seed"]),
    "the Hub options of from_pretrained": ("modeling/generation_editflow.py", ["HUB_DOWNLOAD_KWARGS"]),
    "the pipeline's batch size (also lm-eval's)": ("modeling/pipeline_editflow.py", ["DEFAULT_BATCH_SIZE"]),
    "decode record": ("modeling/edits_editflow.py", ["DecodeTrace", "TraceStep"]),
    "rows of a padded batch": ("modeling/applying_editflow.py", ["unpadded_rows"]),
    "the tie-break check": ("editflow_hf/path/alignment.py", ["check_tie_break", "TIE_BREAKS"]),
    "the collator's tie-breaks (auto, per regime)": ("editflow_hf/path/collator.py", ["TIE_BREAK_CHOICES", "AUTO_TIE_BREAK"]),
    "a CLI error as one line": ("editflow_hf/errors.py", ["EditFlowError", "run_cli"]),
    "the commands' sampling flags": ("editflow_hf/sampling_flags.py", ["check_common_args", "sampling_kwargs", "as_flags"]),
}

# Facts whose home is the remote code: defined once, in a file of modeling/ (editflow_hf imports them from there).
ONE_HOME_IN_MODELING = {
    "text a tokenizer can encode (no lone surrogate)": ["check_text"],
    "a size setting in range": ["check_size"],
    "the sampling and edit settings in range": ["check_sampling_params", "check_edit_params"],
}


@pytest.mark.parametrize("fact", sorted(ONE_HOME))
def test_each_fact_has_one_definition(nodes, fact):
    home, names = ONE_HOME[fact]
    defined = defined_names(nodes)
    for name in names:
        places = [where for where, defined_name in defined if defined_name == name]
        assert places == [home], f"{fact}: {name} defined in {places}, expected once in {home}"


@pytest.mark.parametrize("fact", sorted(ONE_HOME_IN_MODELING))
def test_each_remote_code_fact_has_one_definition_in_modeling(nodes, fact):
    defined = defined_names(nodes)
    for name in ONE_HOME_IN_MODELING[fact]:
        places = [where for where, defined_name in defined if defined_name == name]
        assert len(places) == 1 and places[0].startswith("modeling/"), f"{fact}: {name} defined in {places}, expected once in modeling/"


def string_tuples(nodes) -> list[tuple[str, tuple]]:
    """(file, value) for every tuple literal made only of strings."""
    return [(where, tuple(e.value for e in node.elts)) for where, node in nodes if isinstance(node, ast.Tuple) and node.elts
            and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts)]  # fmt: skip


# The old second homes, by the shape they had: none may come back.
def test_no_second_definition_by_shape(nodes):
    strings = string_constants(nodes)
    # a Hub-id regex or a "looks local" helper beside is_hub_id
    assert not [w for w, s in strings if s.startswith("[A-Za-z0-9_][\\w.-]*")], "a second Hub-id pattern"
    assert not [w for w, n in defined_names(nodes) if "looks_local" in n or (n.endswith("hub_id") and n != "is_hub_id")]
    # boolean words spelled out again
    assert [w for w, s in strings if s == "yes"] == ["editflow_hf/flags.py"], "boolean words outside flags.py"
    # the regime read from prompt_len anywhere but `regime`
    assert compared_to_constant(nodes, "prompt_len", ast.Gt, 1) == ["editflow_hf/path/collator.py"]
    # the x0 default and the training-args file name written out twice
    assert [w for w, s in strings if s == "masks[length:64]"] == ["editflow_hf/path/couplings.py"]
    assert [w for w, s in strings if s == "training_args.json"] == ["editflow_hf/checkpoints/names.py"]
    assert [w for w, s in strings if s == "config.json"] == ["editflow_hf/checkpoints/names.py"]
    # a tie-break tested against the list of tie-breaks outside check_tie_break (a per-regime mapping's values aside)
    tested = [(where, node) for where, node in nodes if isinstance(node, ast.Compare) and isinstance(node.ops[0], (ast.In, ast.NotIn))
              and getattr(node.comparators[0], "id", None) in ("TIE_BREAKS", "TIE_BREAK_CHOICES")]  # fmt: skip
    assert [(where, ast.unparse(node)) for where, node in tested] == [("editflow_hf/path/collator.py", "value in TIE_BREAKS")]
    # `prog: error: message` printed by hand beside run_cli
    assert {w for w, s in strings if ": error: " in s} == {"editflow_hf/errors.py"}
    # the edit rules, write orders or infill modes retyped (e.g. as a parser's choices)
    choices = {("sample", "threshold", "gain"), ("parallel", "frontier"), ("free", "fixed")}
    assert {w for w, t in string_tuples(nodes) if t in choices} == {"modeling/edits_editflow.py"}
    # the Hub options of from_pretrained listed twice
    assert {w for w, t in string_tuples(nodes) if "local_files_only" in t} == {"modeling/generation_editflow.py"}
    # a size or a seed checked inline beside check_size / check_seed
    assert {w for w, s in strings if "must be an integer from" in s} == {"modeling/generation_editflow.py"}
    assert {w for w, s in strings if "`seed` must be" in s} == {"modeling/firing_editflow.py"}
    # the pad fallback written out beside pad_token_id_of
    pad_fallbacks = [w for w, node in nodes if isinstance(node, ast.IfExp) and "pad_token_id" in ast.unparse(node.test)]
    assert pad_fallbacks == ["modeling/edits_editflow.py"], pad_fallbacks
    # a parameter no caller passes (the check functions name settings, the commands spell them as flags: as_flags)
    assert not [w for w, node in nodes if isinstance(node, ast.arg) and node.arg == "flag_prefix"]
    # the wrapper of check_text that only retyped its error
    assert not [w for w, n in defined_names(nodes) if n == "check_text" and w.startswith("editflow_hf/")]
    # `sequences()` written once: the sampler's two methods delegate to unpadded_rows
    sampler = [node for where, node in nodes if where == "modeling/sampling_editflow.py"]
    bodies = [ast.dump(node) for node in sampler if isinstance(node, ast.FunctionDef) and node.name == "sequences"]
    assert all("unpadded_rows" in body for body in bodies) and len(bodies) == 2


def test_suppress_token_ids_come_from_one_function(nodes):
    """One call in the library passes `suppress_token_ids=` (sampler_for: generate, the pipeline and eval all build
    their sampler there), and its ids start from `unwritable_token_ids(...)` (the generation config's
    `suppress_tokens` beside them)."""
    passed = [
        (where, keyword.value)
        for where, node in nodes
        if isinstance(node, ast.Call)
        for keyword in node.keywords
        if keyword.arg == "suppress_token_ids"
    ]
    assert [where for where, _ in passed] == ["modeling/generation_editflow.py"], passed
    calls = {getattr(getattr(node, "func", None), "id", None) for node in ast.walk(passed[0][1])}
    assert "unwritable_token_ids" in calls


# --- sizes --------------------------------------------------------------------------------------------------------

# At most this many lines per file, per class, per function (a module, a class or a function longer than this holds
# more than one concern: split it by concern). SIZE_ROOTS: the trees held to it (editflow_hf/ without its modeling
# symlink, whose files are modeling/'s, and the remote code itself); to hold another tree to the limits, add it here.
MAX_FILE_LINES, MAX_CLASS_LINES, MAX_FUNCTION_LINES = 600, 250, 80
SIZE_ROOTS = (PACKAGE, MODELING)


def oversized(paths) -> list[str]:
    """`path: what (lines)` for each file, class or function of `paths` over its limit."""
    found = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(REPO_ROOT)
        if len(text.splitlines()) > MAX_FILE_LINES:
            found.append(f"{where}: {len(text.splitlines())} lines (at most {MAX_FILE_LINES})")
        for node in ast.walk(ast.parse(text)):
            limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found.append(f"{where}: {node.name} {lines} lines (at most {limit})")
    return found


def test_files_classes_and_functions_are_not_oversized():
    paths = [path for root in SIZE_ROOTS for path in sorted(root.rglob("*.py"))
             if not path.is_relative_to(PACKAGE / "modeling")]  # fmt: skip
    assert len(paths) > 40  # the scan sees the package (not only the symlink's files, nor nothing)
    assert {"sampling_editflow.py", "pipeline_editflow.py"} <= {path.name for path in paths}  # and the remote code
    assert not oversized(paths), "\n".join(oversized(paths))


def test_the_size_check_reports_a_file_a_class_and_a_function_one_line_over(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "REPO_ROOT", tmp_path)
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES - 2))
    (tmp_path / "within.py").write_text(f"def f():\n{body}    return 0\n")
    (tmp_path / "function.py").write_text(f"def f():\n{body}    x = 0\n    return 0\n")
    methods = "".join(f"    def m{i}(self):\n        return {i}\n\n" for i in range(MAX_CLASS_LINES // 3 + 1))
    (tmp_path / "klass.py").write_text(f"class C:\n{methods}")
    (tmp_path / "file.py").write_text("x = 0\n" * (MAX_FILE_LINES + 1))
    assert oversized([tmp_path / "within.py"]) == []
    assert oversized([tmp_path / "function.py"]) == [f"function.py: f {MAX_FUNCTION_LINES + 1} lines (at most {MAX_FUNCTION_LINES})"]
    assert [problem.split(":")[1].split()[0] for problem in oversized([tmp_path / "klass.py"])] == ["C"]
    assert oversized([tmp_path / "file.py"]) == [f"file.py: {MAX_FILE_LINES + 1} lines (at most {MAX_FILE_LINES})"]
