"""Remote code shipped with every Edit Flow checkpoint.

These files import only torch, transformers and each other (relative imports), so a checkpoint folder
or Hub repo that carries them loads with ``trust_remote_code=True`` on a machine without editflow_hf.
This top-level folder is the real home of these files; ``editflow_hf/modeling`` is a symlink to it, so the same
files are the subpackage ``editflow_hf.modeling`` from a checkout (``PYTHONPATH=.``), an editable install and a
wheel (setuptools copies the files the link points at).
"""
