"""Train on ../shared/data/train plus the extra photos, mixed by source weight.

Extract the extra photos (../shared/data/extra/README.md) to PHOTOS and label
them (label.py, once per source folder), then:

  python train.py --config configs/mix.py:PHOTOS --workdir runs/mix

Every source is its own TFDS dataset; each extra source keeps 200 photos
(datasets/folder.holdout_photos) out of training as the validation set
'holdout/<source>', next to ../shared/data/val. Override a weight with
--config.data.sources.cats_dogs.weight=0.1.
"""
import os

from configs import folder

# Sampling weights, chosen so that no kind of photo dominates: the extra
# photos are 47% cats and dogs and 32% landscapes, while the 2,451 photos of
# ../shared/data/train are the most varied (ImageNet, COCO, BSDS).
WEIGHTS = {'train': 0.2, 'intel_scenes': 0.25, 'imagenette': 0.25, 'cats_dogs': 0.15,
           'flowers': 0.15}
HOLDOUT = 200


def get_config(photos='../data/extra'):
  config = folder.get_config()
  config.data.source = 'mix'
  config.data.sources = {
      name: {'folder': os.path.join(photos, name), 'weight': weight, 'holdout': HOLDOUT,
             'teacher_labels': '',  # '' = <folder>/teacher_labels.tsv
             'folder_labels': True}  # sub-folders name classes
      for name, weight in WEIGHTS.items()}
  config.data.sources.train.folder = '../shared/data/train'
  config.data.sources.train.folder_labels = False  # its sub-folders name datasets
  config.data.sources.train.holdout = 0  # ../shared/data/val is its validation set
  return config
