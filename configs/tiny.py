"""A network small enough to train in minutes on a 2-core CPU (the tests use it).

  python train.py --config configs/tiny.py --workdir runs/tiny --config.data.folder=PHOTOS
"""
from configs import default


def get_config():
  config = default.get_config()
  config.model.width = 0.125
  config.model.num_classes = 4
  config.model.global_size = 32
  config.data.source = 'folder'
  config.data.labels = 'none'
  config.data.crop_size = 32
  config.data.num_workers = 0
  config.batch_size = 8
  config.num_train_steps = 20
  config.log_every_steps = 5
  config.eval_every_steps = 10
  config.eval_batches = 2
  config.checkpoint_every_steps = 10
  return config
