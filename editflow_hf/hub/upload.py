"""Upload a checked Edit Flow checkpoint folder to the Hub in one commit, with its model card and decode GIF
(`plan_upload` reads and checks only; `push_checkpoint` sends). The folder is never modified."""

import importlib
import importlib.util
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import huggingface_hub
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import (
    HfHubHTTPError,
    HFValidationError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
)
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects, validate_repo_id

from ..checkpoints.folder_checks import check_checkpoint
from ..errors import EditFlowError
from .card import DEFAULT_LICENSE, EVAL_RESULTS_FILE, build_model_card

# huggingface_hub talks HTTP through httpx2 (httpx in older releases); their transport errors are not OSErrors.
_HTTP_ERRORS = tuple(
    importlib.import_module(name).HTTPError for name in ("httpx2", "httpx") if importlib.util.find_spec(name) is not None
)

OFFLINE_MESSAGE = "no network: cannot reach the Hub (HF_HUB_OFFLINE=1 is set; unset it to push)"

# Trainer resume state: useless for inference, large (optimizer.pt is twice the weights) and partly pickled.
UPLOAD_IGNORE_PATTERNS = ["optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth", "global_step*", "global_step*/**"]
# Pickles run code when they are loaded (torch.load(weights_only=False), pickle.load): nothing pickled is uploaded
# (training_args.bin, pytorch_model.bin, *.pt...). The weights go up as safetensors; any other file whose bytes are
# a pickle or a torch.save archive is left out as well (`is_pickled`).
PICKLE_PATTERNS = ["*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt", "*.joblib"]


def is_pickled(path) -> bool:
    """Whether a file holds a pickle (protocol 2 to 5 header) or a torch.save archive (a zip with a .pkl inside)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
            if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
                return True
            if head != b"PK\x03\x04":
                return False
            handle.seek(0)
            with zipfile.ZipFile(handle) as archive:
                return any(name.endswith(".pkl") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


# JSON files go up with every local path in their values reduced to its last name (config.json's
# encoder_config._name_or_path, training_args.json's model_name_or_path, an eval result's dataset...): the machine's
# file system layout never leaves it. tokenizer.json (the vocabulary) and chat templates go up as they are.
_VERBATIM_JSON = {"tokenizer.json"}
_VERBATIM_KEYS = {"chat_template"}
_WINDOWS_PATH = re.compile(r"^[A-Za-z]:[\\/]")


def _public_part(text: str) -> str:
    """One `|`-separated part of a value: a local path (absolute, `~`, or a Windows drive), with an optional
    `[split]` suffix as in --dataset_args, reduced to its last name; anything else as it is."""
    if not (text.startswith(("/", "~")) and not text.startswith("//")) and not _WINDOWS_PATH.match(text):
        return text
    path, bracket, rest = text.partition("[")
    name = re.split(r"[\\/]", path.rstrip("/\\"))[-1] or path
    return name + bracket + rest


def public_json_value(value, key: str | None = None):
    """`value` (parsed JSON) with every string that is a local path, or a `|`-list of them, reduced to last names."""
    if isinstance(value, dict):
        return {k: v if k in _VERBATIM_KEYS else public_json_value(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [public_json_value(item, key) for item in value]
    if isinstance(value, str):
        return "|".join(_public_part(part) for part in value.split("|"))
    return value


def public_bytes(path: Path) -> bytes:
    """The bytes a push sends for the file at `path`: a JSON file with local paths reduced (`public_json_value`),
    anything else as it is on disk."""
    data = path.read_bytes()
    if path.suffix != ".json" or path.name in _VERBATIM_JSON:
        return data
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return data
    public = public_json_value(parsed)
    if public == parsed:
        return data
    return (json.dumps(public, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def sort_upload_files(checkpoint_dir) -> tuple[list[str], list[str]]:
    """(files a push sends, pickled files it leaves out) of the folder, relative POSIX paths, sorted. Never sent:
    resume state (optimizer, scheduler, RNG), anything pickled (`PICKLE_PATTERNS`, `is_pickled`) and what
    huggingface_hub ignores (.git, .cache)."""
    folder = Path(checkpoint_dir)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    wanted = list(filter_repo_objects(files, ignore_patterns=UPLOAD_IGNORE_PATTERNS + DEFAULT_IGNORE_PATTERNS))
    by_name = set(filter_repo_objects(wanted, allow_patterns=PICKLE_PATTERNS))
    pickled = [name for name in wanted if name in by_name or is_pickled(folder / name)]
    return [name for name in wanted if name not in pickled], pickled


def upload_file_list(checkpoint_dir) -> list[str]:
    """The files of the folder that a push sends (see `sort_upload_files`)."""
    return sort_upload_files(checkpoint_dir)[0]


def _hub_failure(err: Exception, repo_id: str) -> EditFlowError:
    """One line for what went wrong talking to the Hub."""
    if isinstance(err, OfflineModeIsEnabled):
        return EditFlowError(OFFLINE_MESSAGE)
    if isinstance(err, RepositoryNotFoundError):
        return EditFlowError(f"repo {repo_id} not found or not writable with this token (check the namespace and the token's write access)")
    if isinstance(err, HfHubHTTPError):
        status = err.response.status_code if err.response is not None else None
        if status == 401:
            return EditFlowError("the Hugging Face token was rejected (401): run `hf auth login` again or pass a valid --token")
        if status == 403:
            return EditFlowError(f"not allowed to write to {repo_id} (403): use a token with write access to that namespace")
        return EditFlowError(f"the Hub refused the push of {repo_id} ({status}): {str(err).splitlines()[0]}")
    detail = str(err).splitlines()[0] if str(err) else "no details"
    return EditFlowError(f"no network: cannot reach the Hub at {huggingface_hub.constants.ENDPOINT} ({type(err).__name__}: {detail})")


@dataclass
class UploadPlan:
    """What a push sends: the folder's files (relative paths), the model card and the GIF. Nothing is written
    into the folder: the card goes up from memory, the GIF from where it is."""

    folder: Path
    files: list[str]
    card: str
    card_is_generated: bool
    gif_path: Path | None = None
    left_out: list[str] = field(default_factory=list)  # pickled files of the folder, never uploaded

    @property
    def repo_files(self) -> list[str]:
        """Every file of the repo after the push, sorted."""
        extra = {"README.md"} | ({self.gif_path.name} if self.gif_path else set())
        return sorted(set(self.files) | extra)


def plan_upload(
    checkpoint_dir,
    repo_id: str,
    *,
    base_model: str | None = None,
    dataset=None,
    training_args: dict | None = None,
    gif_path=None,
    license: str | None = DEFAULT_LICENSE,
    eval_results=None,
) -> UploadPlan:
    """Check the folder and the repo id, build the card (the folder's own README.md when it has one, else the
    generated card) and list the files; reads only. Raises EditFlowError (one line) for anything wrong."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise EditFlowError(f"invalid repo id {repo_id!r}: use `namespace/name` ({str(err).splitlines()[0]})") from None
    folder = Path(checkpoint_dir)
    check_checkpoint(folder)
    if gif_path is not None:
        gif_path = Path(gif_path)
        if not gif_path.is_file():
            raise EditFlowError(f"GIF {gif_path} not found: make one with `editflow-sample ... --make_gif` or drop --gif.")
    own_card = folder / "README.md"
    if own_card.is_file():
        card, generated = own_card.read_text(encoding="utf-8"), False
    else:
        if eval_results is None and (folder / EVAL_RESULTS_FILE).is_file():
            eval_results = folder / EVAL_RESULTS_FILE
        card = str(build_model_card(
            folder, repo_id, base_model=base_model, dataset=dataset, training_args=training_args, gif_path=gif_path,
            license=license, eval_results=eval_results,
        ))  # fmt: skip
        generated = True
    files, pickled = sort_upload_files(folder)
    files = [name for name in files if name != "README.md" and not (gif_path and name == gif_path.name)]
    return UploadPlan(folder, files, card, generated, gif_path, pickled)


def push_checkpoint(
    checkpoint_dir,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    base_model: str | None = None,
    dataset=None,
    training_args: dict | None = None,
    gif_path=None,
    dry_run: bool = False,
    commit_message: str | None = None,
    license: str | None = DEFAULT_LICENSE,
    eval_results=None,
) -> str:
    """Check that `checkpoint_dir` is a complete repo, then create `repo_id` (exist_ok) and upload, in one
    commit, the folder's files, the model card as README.md (the folder's own README.md if it has one, else
    the generated card, uploaded from memory) and the decode GIF when given. The folder is never modified.

    `eval_results`: an `editflow-eval` JSON file for the card's `model-index` (default: `eval_results.json` in the
    checkpoint, when there is one).
    Returns the repo URL, or with `dry_run` the files the repo would hold, one per line (nothing is sent).
    Raises EditFlowError (one line) for an incomplete folder, a bad repo id, no network, no token or a refused write."""
    plan = plan_upload(
        checkpoint_dir, repo_id, base_model=base_model, dataset=dataset, training_args=training_args, gif_path=gif_path,
        license=license, eval_results=eval_results,
    )
    if dry_run:
        return "\n".join(plan.repo_files)
    return send_upload(plan, repo_id, private=private, token=token, commit_message=commit_message)


def send_upload(plan: UploadPlan, repo_id: str, *, private: bool = False, token: str | None = None, commit_message: str | None = None) -> str:
    """Create `repo_id` (exist_ok) and upload what `plan` lists in one commit; returns the repo URL. EditFlowError
    (one line) for no network, no token or a refused write."""
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        raise EditFlowError(OFFLINE_MESSAGE)
    token = token or huggingface_hub.get_token()
    if not token:
        raise EditFlowError("no Hugging Face token: run `hf auth login` or pass --token (or set HF_TOKEN)")
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=data) for name, data in upload_contents(plan).items()]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=plan.card.encode("utf-8")))
    if plan.gif_path is not None:
        operations.append(CommitOperationAdd(path_in_repo=plan.gif_path.name, path_or_fileobj=str(plan.gif_path)))
    api = HfApi(token=token)
    try:
        repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.create_commit(
            repo_id=repo_id,
            operations=operations,
            commit_message=commit_message or f"Upload Edit Flow checkpoint ({plan.folder.name})",
            repo_type="model",
        )
    except (OSError, *_HTTP_ERRORS) as err:  # HfHubHTTPError and OfflineModeIsEnabled are OSErrors
        raise _hub_failure(err, repo_id) from None
    return str(repo_url)


def upload_contents(plan: UploadPlan) -> dict:
    """What a push sends of the folder's files: name -> bytes for the JSON files whose local paths were reduced
    (`public_bytes`), name -> path on disk for the rest (the weights are streamed, not read into memory)."""
    contents = {}
    for name in plan.files:
        path = plan.folder / name
        if path.suffix == ".json" and path.name not in _VERBATIM_JSON:
            data = public_bytes(path)
            contents[name] = data if data != path.read_bytes() else str(path)
        else:
            contents[name] = str(path)
    return contents
