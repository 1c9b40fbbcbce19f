"""The audio front end (dmlbook.audio) against loop references written from the formulas, known values of the
mel scales, WAV files written byte by byte, and bad input."""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from dmlbook import audio

# ------------------------------------------------------------------------------------------------ references


def ref_filterbank(n_fft, n_mels, sr, f_min, f_max, scale, norm):
    """Mel filters with explicit loops over bands and FFT bins (float64)."""

    def to_mel(f):
        if scale == "htk":
            return 2595.0 * math.log10(1.0 + f / 700.0)
        return 3.0 * f / 200.0 if f < 1000 else 15.0 + math.log(f / 1000.0) * 27.0 / math.log(6.4)

    def to_hz(m):
        if scale == "htk":
            return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
        return 200.0 * m / 3.0 if m < 15 else 1000.0 * math.exp((m - 15.0) * math.log(6.4) / 27.0)

    lo, hi = to_mel(f_min), to_mel(f_max)
    edges = [to_hz(lo + (hi - lo) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    fb = np.zeros((n_mels, n_fft // 2 + 1))
    for i in range(n_mels):
        a, b, c = edges[i], edges[i + 1], edges[i + 2]
        for k in range(n_fft // 2 + 1):
            f = k * sr / n_fft
            w = max(0.0, min((f - a) / (b - a), (c - f) / (c - b)))
            fb[i, k] = w * (2.0 / (c - a) if norm == "slaney" else 1.0)
    return fb


def ref_log_mel(x, sr, n_fft, hop, win_length, n_mels, power, offset, center, scale="htk", norm="none"):
    """Frame-by-frame numpy: pad, window, rfft, |.|^power, filterbank, log (float64)."""
    x = np.asarray(x, dtype=np.float64)
    if center:
        x = np.pad(x, (n_fft // 2, n_fft // 2))
    n = np.arange(win_length)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / win_length)  # periodic Hann
    left = (n_fft - win_length) // 2
    full = np.zeros(n_fft)
    full[left : left + win_length] = window
    fb = ref_filterbank(n_fft, n_mels, sr, 0.0, sr / 2, scale, norm)
    frames = 1 + (len(x) - n_fft) // hop
    out = np.zeros((n_mels, frames))
    for t in range(frames):
        seg = x[t * hop : t * hop + n_fft] * full
        p = np.abs(np.fft.rfft(seg)) ** power
        out[:, t] = np.log(fb @ p + offset)
    return out


# ------------------------------------------------------------------------------------------------ mel scale


def test_mel_scale_known_values():
    assert float(audio.hz_to_mel(1000.0)) == pytest.approx(999.9855, abs=1e-3)  # HTK: 1 kHz ~ 1000 mel
    assert float(audio.hz_to_mel(700.0)) == pytest.approx(2595 * math.log10(2))
    assert float(audio.hz_to_mel(1000.0, scale="slaney")) == pytest.approx(15.0)  # librosa's default scale
    assert float(audio.hz_to_mel(500.0, scale="slaney")) == pytest.approx(7.5)
    assert float(audio.hz_to_mel(6400.0, scale="slaney")) == pytest.approx(42.0)  # 15 + 27
    f = torch.tensor([0.0, 100.0, 999.0, 1000.0, 3000.0, 7999.0], dtype=torch.float64)
    for scale in audio.MEL_SCALES:
        torch.testing.assert_close(audio.mel_to_hz(audio.hz_to_mel(f, scale=scale), scale=scale), f)


@pytest.mark.parametrize("scale,norm", [("htk", "none"), ("slaney", "slaney"), ("htk", "slaney")])
def test_filterbank_matches_loop(scale, norm):
    fb = audio.mel_filterbank(
        n_fft=256,
        n_mels=24,
        sample_rate=8000,
        f_min=50.0,
        f_max=3900.0,
        scale=scale,
        norm=norm,
        dtype=torch.float64,
    )
    assert fb.shape == (24, 129)
    np.testing.assert_allclose(
        fb.numpy(), ref_filterbank(256, 24, 8000, 50.0, 3900.0, scale, norm), atol=1e-12
    )
    assert (fb >= 0).all() and (fb.sum(dim=1) > 0).all()


def test_filterbank_peaks_rise_with_band():
    fb = audio.mel_filterbank(n_fft=512, n_mels=32, sample_rate=16000)
    peaks = fb.argmax(dim=1)
    assert (peaks[1:] > peaks[:-1]).all()  # band i+1 peaks at a higher frequency than band i
    # HTK triangles overlap at half height: each interior bin is shared by at most two bands, summing to <= 1
    assert float(fb.sum(dim=0).max()) <= 1.0 + 1e-6


def test_filterbank_bad_arguments():
    with pytest.raises(ValueError, match="n_mels=128 is too many for n_fft=64"):
        audio.mel_filterbank(n_fft=64, n_mels=128, sample_rate=8000)
    with pytest.raises(ValueError, match="f_max <= sample_rate / 2"):
        audio.mel_filterbank(n_fft=256, n_mels=20, sample_rate=8000, f_max=5000.0)
    with pytest.raises(ValueError, match="scale must be one of"):
        audio.mel_filterbank(n_fft=256, n_mels=20, sample_rate=8000, scale="bark")
    with pytest.raises(TypeError, match="n_mels must be an int"):
        audio.mel_filterbank(n_fft=256, n_mels=20.0, sample_rate=8000)


# ------------------------------------------------------------------------------------------------ log-mel


@pytest.mark.parametrize("center,win_length,power", [(True, None, 2.0), (False, None, 2.0), (True, 200, 1.0)])
def test_log_mel_matches_loop_reference(center, win_length, power):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 1000)) * 0.1
    got = audio.log_mel_spectrogram(
        torch.from_numpy(x),
        sample_rate=8000,
        n_fft=256,
        hop_length=80,
        win_length=win_length,
        n_mels=20,
        power=power,
        center=center,
    )
    assert got.dtype == torch.float64
    for b in range(3):
        ref = ref_log_mel(x[b], 8000, 256, 80, win_length or 256, 20, power, 1e-6, center)
        assert got[b].shape == ref.shape
        np.testing.assert_allclose(got[b].numpy(), ref, atol=1e-9, rtol=1e-9)


def test_log_mel_slaney_matches_loop_reference():
    x = np.sin(2 * np.pi * 440 * np.arange(800) / 8000)
    got = audio.log_mel_spectrogram(
        torch.from_numpy(x), sample_rate=8000, n_mels=16, scale="slaney", norm="slaney"
    )
    ref = ref_log_mel(x, 8000, 256, 64, 256, 16, 2.0, 1e-6, True, "slaney", "slaney")
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-9)


def test_log_mel_shapes_batching_and_dtype(dtype, device):
    x = torch.randn(4, 6400, dtype=dtype, device=device)
    front = audio.LogMelSpectrogram(sample_rate=8000, n_fft=256, hop_length=128, n_mels=32).to(device)
    out = front(x)
    assert out.shape == (4, 32, audio.num_frames(6400, 128)) == (4, 32, 51)
    assert out.dtype == dtype and out.device.type == device.type
    single = front(x[2])  # (T,) -> (n_mels, frames), the same as row 2 of the batch
    assert single.shape == (32, 51)
    torch.testing.assert_close(single, out[2])
    assert front.num_frames(6400) == 51


def test_log_mel_tone_lands_in_its_band():
    sr, f = 8000, 1500.0
    x = torch.sin(2 * math.pi * f * torch.arange(4000, dtype=torch.float64) / sr)
    out = audio.log_mel_spectrogram(x, sample_rate=sr, n_fft=512, hop_length=128, n_mels=40)  # (40, frames)
    edges = audio.mel_to_hz(torch.linspace(0.0, float(audio.hz_to_mel(sr / 2)), 42, dtype=torch.float64))
    centres = edges[1:-1]
    assert int(out[:, 5:-5].mean(dim=1).argmax()) == int((centres - f).abs().argmin())


def test_log_mel_silence_is_log_offset():
    out = audio.log_mel_spectrogram(torch.zeros(2, 500), sample_rate=8000, log_offset=1e-4)
    torch.testing.assert_close(out, torch.full_like(out, math.log(1e-4)))


def test_log_mel_bad_input():
    with pytest.raises(TypeError, match="waveforms must be a torch.Tensor"):
        audio.log_mel_spectrogram(np.zeros(100), sample_rate=8000)
    with pytest.raises(TypeError, match="floating-point"):
        audio.log_mel_spectrogram(torch.zeros(100, dtype=torch.int16), sample_rate=8000)
    with pytest.raises(ValueError, match=r"\(samples,\) or \(batch, samples\)"):
        audio.log_mel_spectrogram(torch.zeros(2, 1, 100), sample_rate=8000)
    with pytest.raises(ValueError, match="NaN or infinite"):
        audio.log_mel_spectrogram(torch.tensor([0.0, float("nan")] * 100), sample_rate=8000)
    with pytest.raises(ValueError, match="empty"):
        audio.log_mel_spectrogram(torch.zeros(3, 0), sample_rate=8000)
    with pytest.raises(ValueError, match="center=False needs at least n_fft=256 samples"):
        audio.log_mel_spectrogram(torch.zeros(100), sample_rate=8000, center=False)
    with pytest.raises(ValueError, match="win_length must be <= n_fft"):
        audio.LogMelSpectrogram(sample_rate=8000, n_fft=128, win_length=256)
    with pytest.raises(ValueError, match="log_offset must be a finite number > 0"):
        audio.LogMelSpectrogram(sample_rate=8000, log_offset=0.0)


# ------------------------------------------------------------------------------------------------ lengths


def test_fix_length_crop_and_pad():
    x = torch.arange(1.0, 11.0)  # 10 samples
    torch.testing.assert_close(audio.fix_length(x, 4), torch.tensor([4.0, 5.0, 6.0, 7.0]))  # centre crop
    torch.testing.assert_close(audio.fix_length(x, 4, align="start"), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    padded = audio.fix_length(x, 15)
    torch.testing.assert_close(
        padded, torch.cat([torch.zeros(2), x, torch.zeros(3)])
    )  # centred in the padding
    torch.testing.assert_close(audio.fix_length(x, 12, align="start"), torch.cat([x, torch.zeros(2)]))
    batch = torch.stack([x, -x])
    assert audio.fix_length(batch, 7).shape == (2, 7)
    with pytest.raises(ValueError, match="align must be one of"):
        audio.fix_length(x, 4, align="end")
    with pytest.raises(ValueError, match="length must be >= 1"):
        audio.fix_length(x, 0)


def test_pad_batch():
    ws = [torch.ones(3), torch.ones(7), torch.ones(5)]
    out = audio.pad_batch(ws)
    assert out.shape == (3, 7) and out.sum(dim=1).tolist() == [3.0, 7.0, 5.0]
    assert audio.pad_batch(ws, 4).shape == (3, 4)
    with pytest.raises(TypeError, match="non-empty sequence"):
        audio.pad_batch([])
    with pytest.raises(ValueError, match=r"waveforms\[1\] must be a 1-D tensor"):
        audio.pad_batch([torch.ones(3), torch.ones(2, 3)])


# ------------------------------------------------------------------------------------------------ WAV files


def _write_pcm(path: Path, frames: bytes, *, width: int, channels: int = 1, rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(frames)
    return path


def test_read_wav_pcm_widths(tmp_path):
    # 16-bit: -32768 -> -1, 16384 -> 0.5
    p = _write_pcm(tmp_path / "a16.wav", np.array([-32768, 0, 16384, 32767], "<i2").tobytes(), width=2)
    x, sr = audio.read_wav(p)
    assert sr == 8000 and x.dtype == torch.float32
    torch.testing.assert_close(x, torch.tensor([-1.0, 0.0, 0.5, 32767 / 32768]))
    # 8-bit unsigned, offset 128
    x, _ = audio.read_wav(_write_pcm(tmp_path / "a8.wav", bytes([0, 128, 192, 255]), width=1))
    torch.testing.assert_close(x, torch.tensor([-1.0, 0.0, 0.5, 127 / 128]))
    # 24-bit little-endian, sign-extended: -2^23, -1, 2^22
    raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in (-(1 << 23), -1, 1 << 22))
    x, _ = audio.read_wav(_write_pcm(tmp_path / "a24.wav", raw, width=3))
    torch.testing.assert_close(x, torch.tensor([-1.0, -1 / (1 << 23), 0.5]))
    # 32-bit
    x, _ = audio.read_wav(
        _write_pcm(
            tmp_path / "a32.wav", np.array([-(1 << 31), 1 << 30], "<i4").tobytes(), width=4, rate=16000
        )
    )
    torch.testing.assert_close(x, torch.tensor([-1.0, 0.5]))


def test_read_wav_stereo_and_float(tmp_path):
    frames = np.array([[16384, -16384], [32767, 32767]], "<i2")  # (T, channels) interleaved
    p = _write_pcm(tmp_path / "st.wav", frames.tobytes(), width=2, channels=2)
    both, _ = audio.read_wav(p, mono=False)
    assert both.shape == (2, 2)
    torch.testing.assert_close(both[:, 0], torch.tensor([0.5, -0.5]))
    mono, _ = audio.read_wav(p)
    torch.testing.assert_close(mono, both.mean(dim=0))
    wavfile = pytest.importorskip("scipy.io.wavfile")
    data = np.array([0.25, -0.5, 0.75], np.float32)
    wavfile.write(tmp_path / "f.wav", 22050, data)  # IEEE float: the wave module refuses it, scipy reads it
    x, sr = audio.read_wav(tmp_path / "f.wav")
    assert sr == 22050
    torch.testing.assert_close(x, torch.from_numpy(data))


def test_write_read_round_trip(tmp_path):
    x = 0.5 * np.sin(np.linspace(0, 20, 400))
    audio.write_wav(tmp_path / "r.wav", x, 8000)
    y, sr = audio.read_wav(tmp_path / "r.wav")
    assert sr == 8000 and y.shape == (400,)
    np.testing.assert_allclose(y.numpy(), x, atol=1 / 32768 + 1e-7)  # 16-bit quantisation


def test_read_wav_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no WAV file"):
        audio.read_wav(tmp_path / "missing.wav")
    (tmp_path / "text.wav").write_text("not audio at all")
    with pytest.raises(ValueError, match="not a readable WAV"):
        audio.read_wav(tmp_path / "text.wav")
    with pytest.raises(ValueError, match="holds no samples"):
        audio.read_wav(_write_pcm(tmp_path / "empty.wav", b"", width=2))
    with pytest.raises(ValueError, match="non-empty 1-D float"):
        audio.write_wav(tmp_path / "bad.wav", np.zeros((2, 3)), 8000)


# ------------------------------------------------------------------------------------------------ resampling


def test_resample_keeps_a_tone():
    pytest.importorskip("scipy.signal")
    t16 = np.arange(16000) / 16000
    x = torch.from_numpy(np.sin(2 * np.pi * 440 * t16))  # 1 s at 16 kHz, float64
    y = audio.resample(x, 16000, 8000)
    assert y.shape == (8000,) and y.dtype == torch.float64
    t8 = np.arange(8000) / 8000
    np.testing.assert_allclose(y.numpy()[200:-200], np.sin(2 * np.pi * 440 * t8)[200:-200], atol=2e-3)
    # a tone above the new Nyquist (5 kHz at 8 kHz) is filtered out, not aliased to 3 kHz
    z = audio.resample(torch.from_numpy(np.sin(2 * np.pi * 5000 * t16)), 16000, 8000)
    assert float(z[200:-200].abs().max()) < 0.05
    batch = audio.resample(torch.stack([x, -x]).float(), 16000, 12000)
    assert batch.shape == (2, 12000) and batch.dtype == torch.float32
    assert audio.resample(x, 8000, 8000) is x
    with pytest.raises(ValueError, match="orig_rate must be >= 1"):
        audio.resample(x, 0, 8000)
