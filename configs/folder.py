"""Train on any folder of colour photos (greyscale and unreadable files are skipped).

  python train.py --config configs/folder.py --workdir runs/folder \
      --config.data.folder=../shared/data/train --config.data.val_folder=../shared/data/val

Sub-folders become scene labels with --config.data.labels=source, an ImageNet
teacher's (label.py) with --config.data.labels=teacher; without labels the
classification loss is dropped.
"""
from configs import default


def get_config():
  config = default.get_config()
  config.data.source = 'folder'
  config.data.labels = 'none'
  config.data.folder = '../shared/data/train'
  config.data.val_folder = '../shared/data/val'
  config.data.num_workers = 0  # 2-core machines: threads in-process are faster
  # Sized for a laptop CPU: a quarter-width network on 128x128 crops.
  config.model.width = 0.25
  config.model.global_size = 128
  config.data.crop_size = 128
  config.batch_size = 16
  config.num_train_steps = 20_000
  config.log_every_steps = 20
  config.eval_every_steps = 500
  config.checkpoint_every_steps = 500
  return config
