"""A small CNN embedding over log-mel spectrograms, for isolated-word recognition across speakers.

Input: a batch of log-mel spectrograms (B, 1, n_mels, frames) or (B, n_mels, frames) — e.g. from
:class:`dmlbook.audio.LogMelSpectrogram` or the ``fsdd`` loader — or, when built with a ``frontend``,
raw waveforms (B, samples). Layers:

1. **input normalisation** (``input_norm``): ``"utterance"`` subtracts each mel band's mean over time and
   divides by the utterance's standard deviation — cepstral-mean-and-variance normalisation, which removes a
   speaker's or microphone's fixed spectral colouring; ``"global"`` uses a BatchNorm over the one input
   channel; ``"none"`` passes the log-mels through;
2. ``num_stages`` conv stages ``conv3x3 -> BN -> ReLU -> 2x2 max-pool`` (the same blocks as
   :class:`~dmlbook.models.small_cnn.SmallCNN`) with ``width · 2^i`` channels;
3. pooling that treats the two axes differently: mean over frequency, then the mean and the maximum over time
   (a word may sit anywhere in the padded window), concatenated: (B, 2 · C);
4. optional dropout and a linear embedding layer (B, embedding_dim), L2-normalised if ``normalize``.

This is our small stand-in for the network of Takashima, Takashima, Takiguchi & Ariki (*Dysarthric Speech
Recognition Based on Deep Metric Learning*, Interspeech 2020), whose architecture is not given in the paper's
abstract, the only part of it we could read: the layout above is an engineering choice, not the paper's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_choice
from ._inputs import dropout_rate, flag, positive_int
from .registry import register_model
from .small_cnn import conv_stage

INPUT_NORMS = ("utterance", "global", "none")


class SpeechCNN(nn.Module):
    """Log-mel spectrogram (or waveform, with ``frontend``) -> embedding.

    Args:
        n_mels: mel bands of the input (its height).
        embedding_dim: output dimension D.
        width: channels of the first stage; stage ``i`` has ``width · 2^i``.
        num_stages: conv stages; each halves both axes, so inputs need ``n_mels, frames >= 2^num_stages``.
        input_norm: ``"utterance"`` (per-band mean and per-utterance std over time), ``"global"`` (BatchNorm) or
            ``"none"``.
        dropout: dropout before the embedding layer.
        normalize: L2-normalise the embeddings (off by default: the losses normalise inside).
        frontend: a module mapping waveforms (B, samples) to log-mels (B, n_mels, frames), e.g.
            :class:`dmlbook.audio.LogMelSpectrogram`; the model then takes waveforms.

    ``forward(x)``: (B, [1,] n_mels, frames) -> (B, embedding_dim); ``features(x)``: the pooled (B, 2 · C)
    features before the embedding layer.
    """

    def __init__(
        self,
        n_mels: int = 32,
        embedding_dim: int = 64,
        *,
        width: int = 16,
        num_stages: int = 3,
        input_norm: str = "utterance",
        dropout: float = 0.0,
        normalize: bool = False,
        frontend: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.n_mels = positive_int(n_mels, "n_mels")
        self.embedding_dim = positive_int(embedding_dim, "embedding_dim")
        self.width = positive_int(width, "width")
        self.num_stages = positive_int(num_stages, "num_stages")
        if 2**self.num_stages > self.n_mels:
            raise ValueError(
                f"num_stages={num_stages} halves the {n_mels} mel bands {num_stages} times; use at most "
                f"{self.n_mels.bit_length() - 1} stages or more mel bands"
            )
        self.input_norm = check_choice(input_norm, INPUT_NORMS, "input_norm")
        self.dropout = dropout_rate(dropout, "dropout")
        self.normalize = flag(normalize, "normalize")
        if frontend is not None and not isinstance(frontend, nn.Module):
            raise TypeError(
                f"frontend must be an nn.Module (e.g. dmlbook.audio.LogMelSpectrogram); "
                f"got {type(frontend).__name__}"
            )
        self.frontend = frontend
        self.input_bn = nn.BatchNorm2d(1) if self.input_norm == "global" else None
        channels = [1] + [self.width * 2**i for i in range(self.num_stages)]
        self.stages = nn.Sequential(
            *(conv_stage(channels[i], channels[i + 1]) for i in range(self.num_stages))
        )
        self.feature_dim = 2 * channels[-1]
        self.drop = nn.Dropout(self.dropout) if self.dropout > 0 else nn.Identity()
        self.embedding = nn.Linear(self.feature_dim, self.embedding_dim)

    def _spectrograms(self, x: Tensor) -> Tensor:
        """Validate (and, with a frontend, compute) the log-mels: -> (B, 1, n_mels, frames)."""
        if not isinstance(x, Tensor):
            raise TypeError(
                f"x must be a torch.Tensor of log-mel spectrograms (batch, 1, {self.n_mels}, frames); "
                f"got {type(x).__name__}"
            )
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor; got {x.dtype}")
        if self.frontend is not None:
            if x.dim() != 2:
                raise ValueError(
                    f"with a frontend, x must be waveforms (batch, samples); got {tuple(x.shape)}"
                )
            x = self.frontend(x)  # (B, n_mels, frames)
        if x.dim() == 3:
            x = x.unsqueeze(1)  # (B, 1, n_mels, frames)
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != self.n_mels:
            raise ValueError(
                f"x must have shape (batch, 1, {self.n_mels}, frames) or (batch, {self.n_mels}, frames) "
                f"to match n_mels={self.n_mels}; got {tuple(x.shape)}"
            )
        if x.shape[3] < 2**self.num_stages:
            raise ValueError(
                f"x has {x.shape[3]} frames; {self.num_stages} stages need at least {2**self.num_stages}"
            )
        return x

    def normalize_input(self, x: Tensor) -> Tensor:
        """The input normalisation alone: (B, 1, M, T) -> (B, 1, M, T)."""
        if self.input_norm == "utterance":
            x = x - x.mean(dim=3, keepdim=True)  # (B, 1, M, T) per-band mean over time removed
            return x / x.std(dim=(2, 3), keepdim=True).clamp(min=1e-5)  # (B, 1, M, T)
        if self.input_norm == "global":
            return self.input_bn(x)  # (B, 1, M, T)
        return x

    def features(self, x: Tensor) -> Tensor:
        """Pooled features (B, 2 · C): mean over frequency, then [mean, max] over time."""
        x = self.normalize_input(self._spectrograms(x))  # (B, 1, M, T)
        maps = self.stages(x)  # (B, C, M / 2^S, T / 2^S)
        over_time = maps.mean(dim=2)  # (B, C, T')
        return torch.cat([over_time.mean(dim=2), over_time.amax(dim=2)], dim=1)  # (B, 2C)

    def forward(self, x: Tensor) -> Tensor:
        z = self.embedding(self.drop(self.features(x)))  # (B, D)
        return F.normalize(z, dim=1) if self.normalize else z  # (B, D)


def _build(*, in_channels: int | None, **kwargs: object) -> nn.Module:
    if in_channels not in (None, 1):
        raise ValueError(
            f"'speech_cnn' takes one-channel log-mel spectrograms: in_channels must be 1; got {in_channels}"
        )
    return SpeechCNN(**kwargs)  # type: ignore[arg-type]


register_model(
    "speech_cnn",
    _build,
    input="images",
    description="SpeechCNN: log-mel spectrogram (1, n_mels, frames) -> embedding; per-utterance normalisation, "
    "mean+max pooling over time",
    accepts=SpeechCNN,
)

__all__ = ["INPUT_NORMS", "SpeechCNN"]
