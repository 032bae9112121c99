"""Transfer learning on VGGish: train, evaluate and apply sound classifiers on its embeddings.

``Classifier.load(path)`` gives a classifier that takes audio and returns class scores per 0.96 s window and
for the clip; ``audioembed train`` / ``evaluate`` / ``classify`` are the command-line side. The package sits
above the pipeline: it uses an :class:`~audioembed.pipeline.Embedder`, never the reverse.
"""

from audioembed.classifier.classifier import ClassificationResult, Classifier
from audioembed.classifier.file import ClassifierFile, read_classifier, write_classifier
from audioembed.classifier.heads import ClassifierHead, HeadConfig
from audioembed.classifier.registry import classifier_head_logistic, classifier_head_mlp  # registers them

__all__ = [
    "ClassificationResult",
    "Classifier",
    "ClassifierFile",
    "ClassifierHead",
    "HeadConfig",
    "classifier_head_logistic",
    "classifier_head_mlp",
    "read_classifier",
    "write_classifier",
]
