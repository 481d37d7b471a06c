"""TFDS builders (array_record, read without TensorFlow) for jaxcolor's training data.

places365: Places365-Standard 256x256 from the manually downloaded tars.
folder: any folder of photos.
"""
