"""Sharing on the Hugging Face Hub: the model card (`card`) and the upload of a checked checkpoint (`upload`)."""

from .card import build_model_card, eval_results_for_card
from .upload import plan_upload, push_checkpoint, upload_file_list

__all__ = ["build_model_card", "eval_results_for_card", "plan_upload", "push_checkpoint", "upload_file_list"]
