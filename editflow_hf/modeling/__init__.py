"""Remote code shipped with every Edit Flow checkpoint.

These files import only torch, transformers and each other (relative imports), so a checkpoint folder
or Hub repo that carries them loads with ``trust_remote_code=True`` on a machine without editflow_hf.
Installed, this folder is the subpackage ``editflow_hf.modeling``.
"""
