"""Datasets for Edit Flow training and evaluation: `--dataset_args` loading, pretraining blocks, SFT
conversations (`prepare`), and cheap checks of local data files before they are loaded (`files`)."""
