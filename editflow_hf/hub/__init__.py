"""Sharing on the Hugging Face Hub: the model card (`card.build_model_card`) and the upload of a checked checkpoint
(`upload.push_checkpoint`)."""
