"""The paper's training on Places365 (TFDS `places365_small` files, manual download).

Put the three Places365 tar files in <tfds_dir>/downloads/manual (see README), then
  python train.py --config configs/places.py --workdir runs/places
"""
from configs import default


def get_config():
  config = default.get_config()  # its values are the paper's: batch 128, Adadelta, ...
  config.data.source = 'places365'
  config.model.num_classes = 365
  config.data.num_workers = 8
  return config
