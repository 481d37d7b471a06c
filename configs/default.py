"""Every field jaxcolor's training reads, with the paper's values.

Variants import this and override a few fields. Run:
  python train.py --config configs/default.py --workdir runs/default
"""
import ml_collections

from jaxcolor import images


def get_config():
  config = ml_collections.ConfigDict()

  # The network (jaxcolor/model.py). width scales every hidden channel count.
  config.model = ml_collections.ConfigDict()
  config.model.width = 1.0
  config.model.num_classes = 365      # Places365; the paper's Places205 had 205
  config.model.global_size = 224      # global branch input, a multiple of 32
  config.model.dtype = 'float32'      # compute dtype ('bfloat16' on GPU/TPU)
  config.model.param_dtype = 'float32'  # 'float64' (with JAX_ENABLE_X64) for exactness tests
  # Not the paper's (docs/QUALITY.md): head 'bins' predicts a distribution over
  # quantised a*b* (jaxcolor/bins.py, Zhang et al. 2016) instead of a*b*, trained
  # with cross-entropy and decoded by the annealed mean (infer.py --temperature).
  # encoder 'efficientnet_lite0' adds a pretrained ImageNet encoder to the global
  # path (jaxcolor/encoder.py; needs the [train] extra's weights package); its
  # classifier names the scenes, so it trains with data.labels='none'.
  config.model.head = 'regression'
  config.model.encoder = ''
  config.model.encoder_trainable = False
  # hints=True adds colour hints to the network's input (jaxcolor/hints.py): three
  # planes after L for both paths. Training simulates them from the truth (data.hints);
  # start such a model from an automatic one with init_from (its hint weights zero).
  config.model.hints = False

  # Data (jaxcolor/training/input_pipeline.py).
  config.data = ml_collections.ConfigDict()
  config.data.source = 'places365'    # 'places365' (TFDS places365_small), 'folder' or 'mix'
  config.data.tfds_dir = '~/tensorflow_datasets'  # where TFDS builds and reads
  config.data.manual_dir = ''         # Places365 tar files; '' = <tfds_dir>/downloads/manual
  config.data.folder = ''             # source='folder': a folder of photos
  config.data.val_folder = ''         # source='folder': validation photos ('' = none)
  # Class labels for the classification loss: 'none', 'source' (the data's own:
  # Places365 scenes, or the top-level sub-folder names of a folder, 'unlabelled'
  # meaning none), 'teacher' / 'teacher_soft' (an ImageNet classifier's top-1 /
  # top-5 distribution per photo, made by label.py; see teacher_labels).
  config.data.labels = 'source'
  config.data.teacher_labels = ''     # source='folder': '' = <folder>/teacher_labels.tsv
  config.data.val_teacher_labels = ''  # '' = <val_folder>/teacher_labels.tsv (optional)
  # source='mix': {name: {folder, weight, holdout, teacher_labels, folder_labels}}; each is
  # sampled in proportion to its weight, and its `holdout` photos (a fixed
  # sample, datasets/folder.holdout_photos) are never trained on and form the
  # validation set 'holdout/<name>'. See configs/mix.py.
  config.data.sources = ml_collections.ConfigDict()
  config.data.folder_max_short_side = 256  # source='folder': stored downscaled (0 = as is)
  config.data.grey_threshold = images.GREY_THRESHOLD  # skip photos whose chroma score is below
  config.data.crop_size = 224         # random crops of this size (+ horizontal flips)
  # What the global path sees in training: 'crop' (the crop, resized to global
  # size) or 'photo' (the whole photo squashed to global size, as at inference).
  config.data.global_view = 'crop'
  config.data.num_workers = 4         # grain worker processes (0 = in-process)
  # Simulated hints for a model with hints (hints.simulate, Zhang et al. 2017): a
  # geometric count (P(none) = hints_p), patch sides 1 to hints_max_side px at a short
  # side of 256. Validation crops get none: the trainer measures the automatic model.
  config.data.hints_p = 1 / 8
  config.data.hints_max_side = 9

  # Optimisation: MSE on a*b* + alpha * cross-entropy on the scene label.
  config.batch_size = 128             # global, split over all devices and hosts
  config.num_train_steps = 200_000
  config.alpha = 1 / 300
  config.adadelta_rho = 0.95
  config.adadelta_eps = 1e-6
  config.learning_rate = 1.0          # must be explicit: optax's None ascends
  # Optional, not the paper's: weight each pixel's squared a*b* error by the
  # rarity of its true colour (jaxcolor/training/rarity.py; with the bins head, its
  # cross-entropy: Zhang et al.'s class rebalancing). 0 = plain MSE (the paper),
  # 1 = Zhang et al. 2016's weights; `rarity_mix` is their lambda.
  config.rarity_power = 0.0
  config.rarity_mix = 0.5
  config.rarity_photos = 4000         # training crops the colour histogram is taken from
  config.seed = 0
  # Start from another run's checkpoint (its weights and BatchNorm statistics; a new
  # optimiser, step 0), e.g. a model with hints from an automatic one. '' = from scratch.
  config.init_from = ''

  # Bookkeeping (all in the workdir).
  config.log_every_steps = 100
  config.eval_every_steps = 5_000
  config.eval_batches = 20
  config.checkpoint_every_steps = 5_000
  config.keep_checkpoints = 3
  config.profile_steps = (0, 0)       # (first, last) step traced by jax.profiler; (0, 0) = off
  return config
