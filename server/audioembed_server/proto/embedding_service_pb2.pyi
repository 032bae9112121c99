from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OutputKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTPUT_KIND_UNSPECIFIED: _ClassVar[OutputKind]
    OUTPUT_KIND_BOTH: _ClassVar[OutputKind]
    OUTPUT_KIND_RAW: _ClassVar[OutputKind]
    OUTPUT_KIND_QUANTIZED: _ClassVar[OutputKind]

class ShortClipPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SHORT_CLIP_POLICY_UNSPECIFIED: _ClassVar[ShortClipPolicy]
    SHORT_CLIP_POLICY_NONE: _ClassVar[ShortClipPolicy]
    SHORT_CLIP_POLICY_PAD: _ClassVar[ShortClipPolicy]
    SHORT_CLIP_POLICY_DROP: _ClassVar[ShortClipPolicy]

class PcmEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PCM_ENCODING_UNSPECIFIED: _ClassVar[PcmEncoding]
    PCM_ENCODING_S16LE: _ClassVar[PcmEncoding]
    PCM_ENCODING_F32LE: _ClassVar[PcmEncoding]
OUTPUT_KIND_UNSPECIFIED: OutputKind
OUTPUT_KIND_BOTH: OutputKind
OUTPUT_KIND_RAW: OutputKind
OUTPUT_KIND_QUANTIZED: OutputKind
SHORT_CLIP_POLICY_UNSPECIFIED: ShortClipPolicy
SHORT_CLIP_POLICY_NONE: ShortClipPolicy
SHORT_CLIP_POLICY_PAD: ShortClipPolicy
SHORT_CLIP_POLICY_DROP: ShortClipPolicy
PCM_ENCODING_UNSPECIFIED: PcmEncoding
PCM_ENCODING_S16LE: PcmEncoding
PCM_ENCODING_F32LE: PcmEncoding

class PcmFormat(_message.Message):
    __slots__ = ("encoding", "sample_rate", "channels")
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    encoding: PcmEncoding
    sample_rate: int
    channels: int
    def __init__(self, encoding: _Optional[_Union[PcmEncoding, str]] = ..., sample_rate: _Optional[int] = ..., channels: _Optional[int] = ...) -> None: ...

class RawPcm(_message.Message):
    __slots__ = ("data", "format")
    DATA_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    format: PcmFormat
    def __init__(self, data: _Optional[bytes] = ..., format: _Optional[_Union[PcmFormat, _Mapping]] = ...) -> None: ...

class Audio(_message.Message):
    __slots__ = ("encoded", "pcm")
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    PCM_FIELD_NUMBER: _ClassVar[int]
    encoded: bytes
    pcm: RawPcm
    def __init__(self, encoded: _Optional[bytes] = ..., pcm: _Optional[_Union[RawPcm, _Mapping]] = ...) -> None: ...

class EmbedOptions(_message.Message):
    __slots__ = ("output", "hop_seconds", "short_clip")
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    HOP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SHORT_CLIP_FIELD_NUMBER: _ClassVar[int]
    output: OutputKind
    hop_seconds: float
    short_clip: ShortClipPolicy
    def __init__(self, output: _Optional[_Union[OutputKind, str]] = ..., hop_seconds: _Optional[float] = ..., short_clip: _Optional[_Union[ShortClipPolicy, str]] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("audio", "options")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    audio: Audio
    options: EmbedOptions
    def __init__(self, audio: _Optional[_Union[Audio, _Mapping]] = ..., options: _Optional[_Union[EmbedOptions, _Mapping]] = ...) -> None: ...

class EmbeddingResult(_message.Message):
    __slots__ = ("num_examples", "dimension", "raw", "quantized", "timestamps", "window_seconds", "hop_seconds", "duration_seconds", "sample_rate", "short_clip", "has_quantized", "has_raw")
    NUM_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    QUANTIZED_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    HOP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    SHORT_CLIP_FIELD_NUMBER: _ClassVar[int]
    HAS_QUANTIZED_FIELD_NUMBER: _ClassVar[int]
    HAS_RAW_FIELD_NUMBER: _ClassVar[int]
    num_examples: int
    dimension: int
    raw: bytes
    quantized: bytes
    timestamps: _containers.RepeatedScalarFieldContainer[float]
    window_seconds: float
    hop_seconds: float
    duration_seconds: float
    sample_rate: int
    short_clip: ShortClipPolicy
    has_quantized: bool
    has_raw: bool
    def __init__(self, num_examples: _Optional[int] = ..., dimension: _Optional[int] = ..., raw: _Optional[bytes] = ..., quantized: _Optional[bytes] = ..., timestamps: _Optional[_Iterable[float]] = ..., window_seconds: _Optional[float] = ..., hop_seconds: _Optional[float] = ..., duration_seconds: _Optional[float] = ..., sample_rate: _Optional[int] = ..., short_clip: _Optional[_Union[ShortClipPolicy, str]] = ..., has_quantized: _Optional[bool] = ..., has_raw: _Optional[bool] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: EmbeddingResult
    def __init__(self, result: _Optional[_Union[EmbeddingResult, _Mapping]] = ...) -> None: ...

class EmbedBatchRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[EmbedRequest]
    def __init__(self, items: _Optional[_Iterable[_Union[EmbedRequest, _Mapping]]] = ...) -> None: ...

class Status(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class EmbedBatchItemResult(_message.Message):
    __slots__ = ("result", "error")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    result: EmbeddingResult
    error: Status
    def __init__(self, result: _Optional[_Union[EmbeddingResult, _Mapping]] = ..., error: _Optional[_Union[Status, _Mapping]] = ...) -> None: ...

class EmbedBatchResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[EmbedBatchItemResult]
    def __init__(self, items: _Optional[_Iterable[_Union[EmbedBatchItemResult, _Mapping]]] = ...) -> None: ...

class StreamConfig(_message.Message):
    __slots__ = ("pcm", "encoded", "options", "classifier", "top_k")
    PCM_FIELD_NUMBER: _ClassVar[int]
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    pcm: PcmFormat
    encoded: bool
    options: EmbedOptions
    classifier: str
    top_k: int
    def __init__(self, pcm: _Optional[_Union[PcmFormat, _Mapping]] = ..., encoded: _Optional[bool] = ..., options: _Optional[_Union[EmbedOptions, _Mapping]] = ..., classifier: _Optional[str] = ..., top_k: _Optional[int] = ...) -> None: ...

class EmbedStreamRequest(_message.Message):
    __slots__ = ("config", "chunk")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    config: StreamConfig
    chunk: bytes
    def __init__(self, config: _Optional[_Union[StreamConfig, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class EmbedStreamResponse(_message.Message):
    __slots__ = ("result", "final", "classification")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    result: EmbeddingResult
    final: bool
    classification: ClassificationResult
    def __init__(self, result: _Optional[_Union[EmbeddingResult, _Mapping]] = ..., final: _Optional[bool] = ..., classification: _Optional[_Union[ClassificationResult, _Mapping]] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WeightsProvenance(_message.Message):
    __slots__ = ("sha256", "source", "synthetic")
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SYNTHETIC_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    source: str
    synthetic: bool
    def __init__(self, sha256: _Optional[str] = ..., source: _Optional[str] = ..., synthetic: _Optional[bool] = ...) -> None: ...

class ServerLimits(_message.Message):
    __slots__ = ("max_batch_examples", "max_queue_delay_ms", "max_queue_examples", "max_receive_message_bytes", "max_send_message_bytes", "max_stream_bytes", "max_batch_items")
    MAX_BATCH_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    MAX_RECEIVE_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_SEND_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAM_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_ITEMS_FIELD_NUMBER: _ClassVar[int]
    max_batch_examples: int
    max_queue_delay_ms: float
    max_queue_examples: int
    max_receive_message_bytes: int
    max_send_message_bytes: int
    max_stream_bytes: int
    max_batch_items: int
    def __init__(self, max_batch_examples: _Optional[int] = ..., max_queue_delay_ms: _Optional[float] = ..., max_queue_examples: _Optional[int] = ..., max_receive_message_bytes: _Optional[int] = ..., max_send_message_bytes: _Optional[int] = ..., max_stream_bytes: _Optional[int] = ..., max_batch_items: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("sample_rate", "window_seconds", "hop_seconds", "dimension", "pca_loaded", "weights", "limits", "version", "classifiers")
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    HOP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    PCA_LOADED_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIERS_FIELD_NUMBER: _ClassVar[int]
    sample_rate: int
    window_seconds: float
    hop_seconds: float
    dimension: int
    pca_loaded: bool
    weights: WeightsProvenance
    limits: ServerLimits
    version: str
    classifiers: _containers.RepeatedCompositeFieldContainer[ClassifierInfo]
    def __init__(self, sample_rate: _Optional[int] = ..., window_seconds: _Optional[float] = ..., hop_seconds: _Optional[float] = ..., dimension: _Optional[int] = ..., pca_loaded: _Optional[bool] = ..., weights: _Optional[_Union[WeightsProvenance, _Mapping]] = ..., limits: _Optional[_Union[ServerLimits, _Mapping]] = ..., version: _Optional[str] = ..., classifiers: _Optional[_Iterable[_Union[ClassifierInfo, _Mapping]]] = ...) -> None: ...

class ClassifierInfo(_message.Message):
    __slots__ = ("name", "labels", "multi_label", "vggish_sha256", "model", "features", "pool", "fine_tuned")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    MULTI_LABEL_FIELD_NUMBER: _ClassVar[int]
    VGGISH_SHA256_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    FINE_TUNED_FIELD_NUMBER: _ClassVar[int]
    name: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    multi_label: bool
    vggish_sha256: str
    model: str
    features: str
    pool: str
    fine_tuned: bool
    def __init__(self, name: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., multi_label: _Optional[bool] = ..., vggish_sha256: _Optional[str] = ..., model: _Optional[str] = ..., features: _Optional[str] = ..., pool: _Optional[str] = ..., fine_tuned: _Optional[bool] = ...) -> None: ...

class ClassifyOptions(_message.Message):
    __slots__ = ("hop_seconds", "short_clip")
    HOP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SHORT_CLIP_FIELD_NUMBER: _ClassVar[int]
    hop_seconds: float
    short_clip: ShortClipPolicy
    def __init__(self, hop_seconds: _Optional[float] = ..., short_clip: _Optional[_Union[ShortClipPolicy, str]] = ...) -> None: ...

class ClassifyRequest(_message.Message):
    __slots__ = ("audio", "classifier", "top_k", "options")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    audio: Audio
    classifier: str
    top_k: int
    options: ClassifyOptions
    def __init__(self, audio: _Optional[_Union[Audio, _Mapping]] = ..., classifier: _Optional[str] = ..., top_k: _Optional[int] = ..., options: _Optional[_Union[ClassifyOptions, _Mapping]] = ...) -> None: ...

class LabelScore(_message.Message):
    __slots__ = ("label", "score")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    label: str
    score: float
    def __init__(self, label: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class ClassificationResult(_message.Message):
    __slots__ = ("classifier", "labels", "num_windows", "num_classes", "window_scores", "clip_scores", "top_k", "timestamps", "window_seconds", "hop_seconds", "duration_seconds", "sample_rate", "short_clip", "multi_label")
    CLASSIFIER_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    NUM_WINDOWS_FIELD_NUMBER: _ClassVar[int]
    NUM_CLASSES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SCORES_FIELD_NUMBER: _ClassVar[int]
    CLIP_SCORES_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    HOP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    SHORT_CLIP_FIELD_NUMBER: _ClassVar[int]
    MULTI_LABEL_FIELD_NUMBER: _ClassVar[int]
    classifier: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    num_windows: int
    num_classes: int
    window_scores: bytes
    clip_scores: _containers.RepeatedScalarFieldContainer[float]
    top_k: _containers.RepeatedCompositeFieldContainer[LabelScore]
    timestamps: _containers.RepeatedScalarFieldContainer[float]
    window_seconds: float
    hop_seconds: float
    duration_seconds: float
    sample_rate: int
    short_clip: ShortClipPolicy
    multi_label: bool
    def __init__(self, classifier: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., num_windows: _Optional[int] = ..., num_classes: _Optional[int] = ..., window_scores: _Optional[bytes] = ..., clip_scores: _Optional[_Iterable[float]] = ..., top_k: _Optional[_Iterable[_Union[LabelScore, _Mapping]]] = ..., timestamps: _Optional[_Iterable[float]] = ..., window_seconds: _Optional[float] = ..., hop_seconds: _Optional[float] = ..., duration_seconds: _Optional[float] = ..., sample_rate: _Optional[int] = ..., short_clip: _Optional[_Union[ShortClipPolicy, str]] = ..., multi_label: _Optional[bool] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: ClassificationResult
    def __init__(self, result: _Optional[_Union[ClassificationResult, _Mapping]] = ...) -> None: ...

class ClassifyBatchRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ClassifyRequest]
    def __init__(self, items: _Optional[_Iterable[_Union[ClassifyRequest, _Mapping]]] = ...) -> None: ...

class ClassifyBatchItemResult(_message.Message):
    __slots__ = ("result", "error")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    result: ClassificationResult
    error: Status
    def __init__(self, result: _Optional[_Union[ClassificationResult, _Mapping]] = ..., error: _Optional[_Union[Status, _Mapping]] = ...) -> None: ...

class ClassifyBatchResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ClassifyBatchItemResult]
    def __init__(self, items: _Optional[_Iterable[_Union[ClassifyBatchItemResult, _Mapping]]] = ...) -> None: ...
