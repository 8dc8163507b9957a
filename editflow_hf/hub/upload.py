"""Upload a checked Edit Flow checkpoint folder to the Hub in one commit, with its model card and decode GIF
(`plan_upload` reads and checks only; `push_checkpoint` sends). The folder is never modified."""

import importlib
import importlib.util
from dataclasses import dataclass
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

from ..checkpoints import check_checkpoint
from ..errors import EditFlowError
from .card import DEFAULT_LICENSE, EVAL_RESULTS_FILE, build_model_card

# huggingface_hub talks HTTP through httpx2 (httpx in older releases); their transport errors are not OSErrors.
_HTTP_ERRORS = tuple(
    importlib.import_module(name).HTTPError for name in ("httpx2", "httpx") if importlib.util.find_spec(name) is not None
)

OFFLINE_MESSAGE = "no network: cannot reach the Hub (HF_HUB_OFFLINE=1 is set; unset it to push)"

# Trainer resume state: useless for inference, large (optimizer.pt is twice the weights) and partly pickled.
UPLOAD_IGNORE_PATTERNS = ["optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth", "global_step*", "global_step*/**"]


def upload_file_list(checkpoint_dir) -> list[str]:
    """Files of the folder that upload_folder sends, relative POSIX paths, sorted (same ignore patterns)."""
    folder = Path(checkpoint_dir)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return list(filter_repo_objects(files, ignore_patterns=UPLOAD_IGNORE_PATTERNS + DEFAULT_IGNORE_PATTERNS))


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
    files = [name for name in upload_file_list(folder) if name != "README.md" and not (gif_path and name == gif_path.name)]
    return UploadPlan(folder, files, card, generated, gif_path)


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

    if huggingface_hub.constants.HF_HUB_OFFLINE:
        raise EditFlowError(OFFLINE_MESSAGE)
    token = token or huggingface_hub.get_token()
    if not token:
        raise EditFlowError("no Hugging Face token: run `hf auth login` or pass --token (or set HF_TOKEN)")
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(plan.folder / name)) for name in plan.files]
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
