"""Audio front end: WAV files -> waveforms of one length -> log-mel spectrograms, batched in torch.

No torchaudio (it does not load everywhere): WAV files are read with Python's :mod:`wave` (PCM, 8/16/24/32-bit),
falling back to :func:`scipy.io.wavfile.read` for IEEE-float files; resampling uses
:func:`scipy.signal.resample_poly`; the spectrogram is :func:`torch.stft` followed by a triangular mel
filterbank, the front end of most small-vocabulary speech recognisers and of the dysarthric-speech work this
library's chapter 9 follows (Takashima, Takashima, Takiguchi & Ariki, *Dysarthric Speech Recognition Based on
Deep Metric Learning*, Interspeech 2020; only their abstract was available, so their exact features are not known
here).

For a batch of waveforms ``x`` (B, T) at sample rate ``sr``:

* short-time Fourier transform with a periodic Hann window ``w`` of ``win_length`` samples, ``n_fft`` points and
  hop ``h``; with ``center=True`` the signal is zero-padded by ``n_fft // 2`` on both sides, so there are
  ``1 + T // h`` frames: ``X[f, t] = Σ_n w[n] x[t·h + n − n_fft/2] e^{−2πi f n / n_fft}``;
* power spectrum ``P = |X|^power`` (``power=2``: energy, ``1``: magnitude);
* mel filterbank ``M`` (n_mels, n_fft // 2 + 1): triangles between ``n_mels + 2`` points equally spaced on the mel
  scale from ``f_min`` to ``f_max`` (HTK ``m = 2595 log10(1 + f/700)`` or Slaney's linear-then-log scale),
  optionally area-normalised (``norm="slaney"``: row i scaled by ``2 / (f_{i+2} − f_i)``);
* ``log(M P + log_offset)``: (B, n_mels, frames).

Everything is batched (no Python loop over samples or frames), runs on the input's device and keeps float32 or
float64. Waveforms of different lengths are brought to one length with :func:`fix_length` / :func:`pad_batch`
(zero-padding or cropping, centred by default) before the transform.
"""

from __future__ import annotations

import math
import os
import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ._checks import check_choice, check_int, check_positive

MEL_SCALES = ("htk", "slaney")
MEL_NORMS = ("none", "slaney")
ALIGNS = ("center", "start")

__all__ = [
    "ALIGNS",
    "MEL_NORMS",
    "MEL_SCALES",
    "LogMelSpectrogram",
    "fix_length",
    "hz_to_mel",
    "log_mel_spectrogram",
    "mel_filterbank",
    "mel_to_hz",
    "num_frames",
    "pad_batch",
    "read_wav",
    "resample",
    "write_wav",
]


# ------------------------------------------------------------------------------------------------ arguments
def _waveforms(x: object, name: str = "waveforms") -> Tensor:
    """A finite floating-point (T,) or (B, T) tensor with T >= 1."""
    if not isinstance(x, Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (samples,) or (batch, samples); got {type(x).__name__}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor (float32 or float64); got {x.dtype}")
    if x.dim() not in (1, 2):
        raise ValueError(f"{name} must have shape (samples,) or (batch, samples); got {tuple(x.shape)}")
    if x.shape[-1] == 0 or x.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


# ------------------------------------------------------------------------------------------------ WAV files
def read_wav(path: str | os.PathLike[str], *, mono: bool = True) -> tuple[Tensor, int]:
    """Read a WAV file as float32 samples in [-1, 1] and its sample rate.

    PCM files (8-bit unsigned, 16/24/32-bit signed) are read with :mod:`wave`; IEEE-float WAVs with
    :func:`scipy.io.wavfile.read`. Returns ``(waveform, sample_rate)`` with waveform (T,) when ``mono`` (channels
    averaged) or (channels, T). Raises FileNotFoundError for a missing file and ValueError for a file that is not
    a readable WAV or holds no samples.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no WAV file at {path}")
    try:
        with wave.open(str(path), "rb") as f:
            channels, width, rate, frames = (
                f.getnchannels(),
                f.getsampwidth(),
                f.getframerate(),
                f.getnframes(),
            )
            raw = f.readframes(frames)
        data = _pcm_to_float(raw, width, channels)  # (T, channels)
    except (wave.Error, EOFError) as err:
        data, rate = _read_wav_scipy(path, err)
    if data.shape[0] == 0:
        raise ValueError(f"{path} holds no samples")
    waveform = torch.from_numpy(np.ascontiguousarray(data.T, dtype=np.float32))  # (channels, T)
    return (waveform.mean(dim=0) if mono else waveform), int(rate)


def _pcm_to_float(raw: bytes, width: int, channels: int) -> np.ndarray:
    """Interleaved little-endian PCM bytes -> float64 (T, channels) in [-1, 1]."""
    if width == 1:  # unsigned, offset 128
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
    elif width == 3:  # 24-bit: sign-extend three bytes into an int32
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = np.where(v >= 1 << 23, v - (1 << 24), v).astype(np.float64) / float(1 << 23)
    elif width == 4:
        x = np.frombuffer(raw, dtype="<i4").astype(np.float64) / float(1 << 31)
    else:
        raise ValueError(f"unsupported PCM sample width of {width} bytes")
    return x.reshape(-1, channels)


def _read_wav_scipy(path: Path, cause: Exception) -> tuple[np.ndarray, int]:
    """IEEE-float (and other non-PCM) WAVs via scipy; ValueError naming the file if that fails too."""
    try:
        from scipy.io import wavfile
    except ImportError:  # pragma: no cover - scipy is in the train extra
        raise ValueError(
            f"{path} is not a PCM WAV file ({cause}); reading other WAV formats needs scipy"
        ) from None
    try:
        rate, data = wavfile.read(str(path))
    except (ValueError, OSError) as err:
        raise ValueError(f"{path} is not a readable WAV file: {cause}; scipy: {err}") from None
    data = np.asarray(data)
    if data.ndim == 1:
        data = data[:, None]
    if np.issubdtype(data.dtype, np.floating):
        return data.astype(np.float64), int(rate)
    if data.dtype == np.uint8:
        return (data.astype(np.float64) - 128.0) / 128.0, int(rate)
    return data.astype(np.float64) / float(np.iinfo(data.dtype).max + 1), int(rate)


def write_wav(path: str | os.PathLike[str], waveform: Tensor | np.ndarray, sample_rate: int) -> Path:
    """Write a mono float waveform (T,) in [-1, 1] as a 16-bit PCM WAV (values outside are clipped)."""
    sample_rate = check_int(sample_rate, "sample_rate")
    x = waveform.detach().cpu().numpy() if isinstance(waveform, Tensor) else np.asarray(waveform)
    if x.ndim != 1 or x.size == 0 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(
            f"waveform must be a non-empty 1-D float array; got dtype {x.dtype}, shape {x.shape}"
        )
    pcm = np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(pcm.tobytes())
    return path


def resample(waveform: Tensor, orig_rate: int, new_rate: int) -> Tensor:
    """Resample along the last axis with a polyphase anti-aliasing filter (:func:`scipy.signal.resample_poly`,
    Kaiser window): (..., T) -> (..., ceil(T · new_rate / orig_rate)). Same dtype and device as the input."""
    waveform = _waveforms(waveform, "waveform")
    orig_rate, new_rate = check_int(orig_rate, "orig_rate"), check_int(new_rate, "new_rate")
    if orig_rate == new_rate:
        return waveform
    try:
        from scipy.signal import resample_poly
    except ImportError:  # pragma: no cover - scipy is in the train extra
        raise ImportError(
            "resampling needs scipy: pip install dmlbook[train] (or pip install scipy)"
        ) from None
    g = math.gcd(orig_rate, new_rate)
    out = resample_poly(waveform.detach().cpu().double().numpy(), new_rate // g, orig_rate // g, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(out)).to(device=waveform.device, dtype=waveform.dtype)


# ------------------------------------------------------------------------------------------------ one length
def fix_length(waveforms: Tensor, length: int, *, align: str = "center") -> Tensor:
    """Zero-pad or crop the last axis to ``length`` samples: (..., T) -> (..., length).

    ``align="center"`` keeps the middle of a long signal and centres a short one in the padding;
    ``"start"`` keeps the beginning and pads at the end.
    """
    waveforms = _waveforms(waveforms)
    length = check_int(length, "length")
    check_choice(align, ALIGNS, "align")
    t = waveforms.shape[-1]
    if t >= length:
        start = (t - length) // 2 if align == "center" else 0
        return waveforms[..., start : start + length]
    before = (length - t) // 2 if align == "center" else 0
    return torch.nn.functional.pad(waveforms, (before, length - t - before))  # (..., length)


def pad_batch(waveforms: Sequence[Tensor], length: int | None = None, *, align: str = "center") -> Tensor:
    """Stack 1-D waveforms of different lengths into (B, length) by :func:`fix_length` (default: the longest)."""
    if isinstance(waveforms, Tensor) or not isinstance(waveforms, Sequence) or len(waveforms) == 0:
        raise TypeError("waveforms must be a non-empty sequence of 1-D tensors")
    for i, w in enumerate(waveforms):
        if not isinstance(w, Tensor) or w.dim() != 1:
            raise ValueError(
                f"waveforms[{i}] must be a 1-D tensor (samples,); got "
                f"{tuple(w.shape) if isinstance(w, Tensor) else type(w).__name__}"
            )
    length = max(w.shape[0] for w in waveforms) if length is None else check_int(length, "length")
    return torch.stack([fix_length(w, length, align=align) for w in waveforms])  # (B, length)


# ------------------------------------------------------------------------------------------------ mel scale
def hz_to_mel(freq: Tensor | float, *, scale: str = "htk") -> Tensor:
    """Hz -> mel (a Python number gives a float64 tensor). HTK: ``2595 log10(1 + f / 700)``. Slaney (Auditory Toolbox, librosa's default): linear
    ``3 f / 200`` below 1 kHz, ``15 + 27 ln(f / 1000) / ln 6.4`` above."""
    check_choice(scale, MEL_SCALES, "scale")
    f = freq if isinstance(freq, Tensor) else torch.as_tensor(freq, dtype=torch.float64)
    if scale == "htk":
        return 2595.0 * torch.log10(1.0 + f / 700.0)
    logstep = math.log(6.4) / 27.0
    return torch.where(f < 1000.0, 3.0 * f / 200.0, 15.0 + torch.log(f.clamp(min=1e-10) / 1000.0) / logstep)


def mel_to_hz(mel: Tensor | float, *, scale: str = "htk") -> Tensor:
    """The inverse of :func:`hz_to_mel`."""
    check_choice(scale, MEL_SCALES, "scale")
    m = mel if isinstance(mel, Tensor) else torch.as_tensor(mel, dtype=torch.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    logstep = math.log(6.4) / 27.0
    return torch.where(m < 15.0, 200.0 * m / 3.0, 1000.0 * torch.exp(logstep * (m - 15.0)))


def mel_filterbank(
    *,
    n_fft: int,
    n_mels: int,
    sample_rate: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    scale: str = "htk",
    norm: str = "none",
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Triangular mel filters (n_mels, n_fft // 2 + 1) for a power spectrum of ``n_fft`` points.

    Filter i rises linearly from ``f_i`` to ``f_{i+1}`` and falls to ``f_{i+2}``, where ``f_0 < ... < f_{M+1}``
    are equally spaced on the mel scale between ``f_min`` and ``f_max`` (default ``sample_rate / 2``):
    ``M[i, k] = max(0, min((ν_k − f_i)/(f_{i+1} − f_i), (f_{i+2} − ν_k)/(f_{i+2} − f_{i+1})))`` at the FFT bin
    frequencies ``ν_k = k · sample_rate / n_fft``. ``norm="slaney"`` scales row i by ``2 / (f_{i+2} − f_i)``
    (equal area). A filter that covers no FFT bin (too many mel bands for ``n_fft``) is an error.
    """
    n_fft, n_mels, sample_rate = (
        check_int(n_fft, "n_fft", 2),
        check_int(n_mels, "n_mels"),
        check_int(sample_rate, "sample_rate"),
    )
    check_choice(scale, MEL_SCALES, "scale")
    check_choice(norm, MEL_NORMS, "norm")
    f_min = check_positive(f_min, "f_min", allow_zero=True)
    nyquist = sample_rate / 2
    f_max = nyquist if f_max is None else check_positive(f_max, "f_max")
    if not f_min < f_max <= nyquist:
        raise ValueError(
            f"need 0 <= f_min < f_max <= sample_rate / 2 = {nyquist}; got f_min={f_min}, f_max={f_max}"
        )
    bins = torch.linspace(0.0, nyquist, n_fft // 2 + 1, dtype=torch.float64)  # (F,) ν_k
    mels = torch.linspace(
        float(hz_to_mel(f_min, scale=scale)),
        float(hz_to_mel(f_max, scale=scale)),
        n_mels + 2,
        dtype=torch.float64,
    )  # (M + 2,)
    edges = mel_to_hz(mels, scale=scale)  # (M + 2,) f_0 .. f_{M+1} in Hz
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (M, 1) each
    rising = (bins[None, :] - lower) / (centre - lower)  # (M, F)
    falling = (upper - bins[None, :]) / (upper - centre)  # (M, F)
    fb = torch.minimum(rising, falling).clamp(min=0.0)  # (M, F)
    if norm == "slaney":
        fb = fb * (2.0 / (upper - lower))  # (M, F)
    empty = torch.nonzero(fb.sum(dim=1) == 0).flatten()
    if empty.numel():
        raise ValueError(
            f"n_mels={n_mels} is too many for n_fft={n_fft} at {sample_rate} Hz: mel band(s) "
            f"{empty.tolist()[:5]} cover no FFT bin; use fewer mel bands or a larger n_fft"
        )
    return fb.to(dtype=dtype, device=device)


def num_frames(num_samples: int, hop_length: int) -> int:
    """Frames of a centred STFT of ``num_samples`` samples: ``1 + num_samples // hop_length``."""
    return 1 + check_int(num_samples, "num_samples") // check_int(hop_length, "hop_length")


# ------------------------------------------------------------------------------------------------ log-mel
def log_mel_spectrogram(
    waveforms: Tensor,
    *,
    sample_rate: int,
    n_fft: int = 256,
    hop_length: int = 64,
    win_length: int | None = None,
    n_mels: int = 32,
    f_min: float = 0.0,
    f_max: float | None = None,
    power: float = 2.0,
    log_offset: float = 1e-6,
    scale: str = "htk",
    norm: str = "none",
    center: bool = True,
) -> Tensor:
    """``log(M |STFT(x)|^power + log_offset)``: (B, T) -> (B, n_mels, frames), or (T,) -> (n_mels, frames).

    See the module docstring for the equations. ``frames = 1 + T // hop_length`` with ``center=True`` (zero
    padding by ``n_fft // 2``), ``1 + (T − n_fft) // hop_length`` without (then T >= n_fft is required).
    """
    x = _waveforms(waveforms)
    front = LogMelSpectrogram(
        sample_rate=sample_rate,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        n_mels=n_mels,
        f_min=f_min,
        f_max=f_max,
        power=power,
        log_offset=log_offset,
        scale=scale,
        norm=norm,
        center=center,
    )
    return front.to(x.device)(x)


class LogMelSpectrogram(nn.Module):
    """The log-mel front end as a module (no trainable parameters): ``forward(waveforms)``,
    (B, T) -> (B, n_mels, frames) or (T,) -> (n_mels, frames), in the input's dtype and on its device.

    Args:
        sample_rate: of the input, in Hz.
        n_fft: FFT size; ``win_length``: Hann window length (default ``n_fft``), centred in the FFT frame.
        hop_length: samples between frames.
        n_mels: mel bands; ``f_min``, ``f_max``: their range in Hz (default 0 to ``sample_rate / 2``).
        power: 2 for an energy (power) spectrum, 1 for magnitude.
        log_offset: added before the log, so silence (zero padding) gives ``log(log_offset)`` instead of −inf.
        scale: mel scale, ``"htk"`` or ``"slaney"``; ``norm``: ``"none"`` or ``"slaney"`` (equal-area filters).
        center: zero-pad ``n_fft // 2`` samples on both sides so that frame t is centred on sample ``t · hop``.
    """

    def __init__(
        self,
        *,
        sample_rate: int,
        n_fft: int = 256,
        hop_length: int = 64,
        win_length: int | None = None,
        n_mels: int = 32,
        f_min: float = 0.0,
        f_max: float | None = None,
        power: float = 2.0,
        log_offset: float = 1e-6,
        scale: str = "htk",
        norm: str = "none",
        center: bool = True,
    ) -> None:
        super().__init__()
        self.sample_rate = check_int(sample_rate, "sample_rate")
        self.n_fft = check_int(n_fft, "n_fft", 2)
        self.hop_length = check_int(hop_length, "hop_length")
        self.win_length = self.n_fft if win_length is None else check_int(win_length, "win_length")
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length must be <= n_fft ({self.n_fft}); got {self.win_length}")
        self.n_mels = check_int(n_mels, "n_mels")
        self.power = check_positive(power, "power")
        self.log_offset = check_positive(log_offset, "log_offset")
        if not isinstance(center, bool):
            raise TypeError(f"center must be True or False; got {type(center).__name__}")
        self.center = center
        self.f_min, self.f_max, self.scale, self.norm = f_min, f_max, scale, norm
        fb = mel_filterbank(
            n_fft=self.n_fft,
            n_mels=self.n_mels,
            sample_rate=self.sample_rate,
            f_min=f_min,
            f_max=f_max,
            scale=scale,
            norm=norm,
            dtype=torch.float64,
        )  # (M, F)
        self.register_buffer("filterbank", fb, persistent=False)
        window = torch.hann_window(self.win_length, periodic=True, dtype=torch.float64)  # (W,)
        self.register_buffer("window", window, persistent=False)

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` input samples."""
        if self.center:
            return num_frames(num_samples, self.hop_length)
        if num_samples < self.n_fft:
            raise ValueError(f"center=False needs at least n_fft={self.n_fft} samples; got {num_samples}")
        return 1 + (num_samples - self.n_fft) // self.hop_length

    def forward(self, waveforms: Tensor) -> Tensor:
        x = _waveforms(waveforms)
        single = x.dim() == 1
        x = x.unsqueeze(0) if single else x  # (B, T)
        self.num_frames(x.shape[-1])  # raises for a too-short input without centring
        if self.center:
            pad = self.n_fft // 2
            x = torch.nn.functional.pad(x, (pad, pad))  # (B, T + 2·pad) zero padding
        spec = torch.stft(
            x,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window.to(x.dtype),
            center=False,
            return_complex=True,
        )  # (B, F, frames)
        power = spec.abs().pow(self.power) if self.power != 2.0 else spec.real.square() + spec.imag.square()
        mel = torch.matmul(self.filterbank.to(x.dtype), power)  # (B, M, frames)
        out = torch.log(mel + self.log_offset)  # (B, M, frames)
        return out[0] if single else out

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, hop_length={self.hop_length}, "
            f"win_length={self.win_length}, n_mels={self.n_mels}, scale={self.scale!r}, norm={self.norm!r}"
        )
