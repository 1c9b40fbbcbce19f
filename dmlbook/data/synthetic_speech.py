"""Generated spoken words: a formant synthesiser that writes a stand-in for the Free Spoken Digit Dataset.

:func:`synthesize_fsdd` writes recordings in FSDD's official layout (``recordings/{word}_{speaker}_{take}.wav``
and ``speakers.csv``, see :mod:`dmlbook.data.fsdd`), so that the loader, the speaker splits and chapter 9 run
offline. Each "word" is a template (an optional fricative onset and 2-3 vowels, :func:`synth_vocabulary`); each
generated speaker (:class:`SynthSpeaker`, :func:`synth_speakers`) has its own pitch, vocal-tract length (all
formants scaled), speaking rate, spectral tilt, breathiness and accent (a factor per vowel and formant), and
every take jitters durations, pitch and formant targets (:func:`synthesize_word`).

The synthesis is the source-filter model of speech (Fant, *Acoustic Theory of Speech Production*, 1960):
harmonics of a falling pitch weighted by a sum of formant resonances; the vowel formants are the adult male
averages of Peterson & Barney (JASA 24, 1952). The names are also importable from :mod:`dmlbook.data.fsdd`.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import audio
from .._checks import check_int

__all__ = [
    "VOWELS",
    "SynthSpeaker",
    "synth_speakers",
    "synth_vocabulary",
    "synthesize_fsdd",
    "synthesize_word",
]

#: Vowel formants F1, F2, F3 in Hz, adult male averages (Peterson & Barney, JASA 1952).
VOWELS: dict[str, tuple[float, float, float]] = {
    "i": (270, 2290, 3010),
    "I": (390, 1990, 2550),
    "E": (530, 1840, 2480),
    "ae": (660, 1720, 2410),
    "a": (730, 1090, 2440),
    "O": (570, 840, 2410),
    "U": (440, 1020, 2240),
    "u": (300, 870, 2240),
    "V": (640, 1190, 2390),
    "er": (490, 1350, 1690),
}
_BANDWIDTHS = np.array([90.0, 110.0, 170.0])  # formant bandwidths (Hz)
_GAINS = np.array([1.0, 0.5, 0.25])  # formant peak gains


@dataclass(frozen=True)
class SynthSpeaker:
    """A generated speaker: pitch ``f0`` (Hz), vocal-tract ``formant_scale`` (formants multiplied by it),
    speaking ``rate`` (durations divided by it), spectral ``tilt`` (harmonic k weighted ``k^-tilt``),
    ``breath`` (noise level) and ``accent``: a factor per vowel and formant (len(VOWELS), 3) — how this speaker
    realises each vowel, the part of the variation that a uniform vocal-tract scaling does not explain."""

    name: str
    f0: float
    formant_scale: float
    rate: float
    tilt: float
    breath: float
    accent: tuple[tuple[float, float, float], ...] = ()


def synth_vocabulary(num_words: int = 10, *, seed: int = 0) -> list[tuple[bool, tuple[str, ...]]]:
    """``num_words`` distinct word templates: (fricative onset?, 2-3 vowels with no vowel repeated in a row)."""
    check_int(num_words, "num_words", 2, maximum=200)
    rng = np.random.default_rng([seed, 0])
    names, words = list(VOWELS), []
    while len(words) < num_words:
        n = int(rng.integers(2, 4))
        seq = [str(rng.choice(names))]
        while len(seq) < n:
            v = str(rng.choice(names))
            if v != seq[-1]:
                seq.append(v)
        word = (bool(rng.random() < 0.4), tuple(seq))
        if word not in words:
            words.append(word)
    return words


def synth_speakers(
    num_speakers: int,
    *,
    seed: int = 0,
    formant_range: tuple[float, float] = (0.8, 1.25),
    rate_range: tuple[float, float] = (0.75, 1.35),
    accent: float = 0.15,
) -> list[SynthSpeaker]:
    """``num_speakers`` generated speakers named ``spk0, spk1, ...`` with random pitch (90-210 Hz), vocal-tract
    scale (``formant_range``), rate (``rate_range``), tilt, breathiness and accent (each vowel's formants
    multiplied by ``1 + accent · N(0, 1)``)."""
    check_int(num_speakers, "num_speakers", 1)
    out = []
    for s in range(num_speakers):
        rng = np.random.default_rng([seed, 1, s])
        f0, scale, rate = rng.uniform(90, 210), rng.uniform(*formant_range), rng.uniform(*rate_range)
        tilt, breath = rng.uniform(0.6, 1.2), rng.uniform(0.005, 0.03)
        factors = np.clip(1.0 + accent * rng.standard_normal((len(VOWELS), 3)), 0.5, 1.5)  # (V, 3)
        out.append(
            SynthSpeaker(
                f"spk{s}",
                float(f0),
                float(scale),
                float(rate),
                float(tilt),
                float(breath),
                tuple(tuple(float(v) for v in row) for row in factors),
            )
        )
    return out


def synthesize_word(
    word: tuple[bool, tuple[str, ...]],
    speaker: SynthSpeaker,
    *,
    sample_rate: int = 8000,
    rng: np.random.Generator,
) -> np.ndarray:
    """One take of a word by a speaker: a float64 waveform (T,) with peak amplitude 0.3-0.8.

    Source-filter synthesis: harmonics ``k · f0(t)`` of a slowly falling pitch, each weighted by the formant
    envelope ``Σ_j g_j / (1 + ((k f0 − F_j(t)) / B_j)²)`` and the tilt ``k^-tilt``; the formant tracks
    ``F_j(t)`` interpolate the vowels' targets (scaled by the speaker's vocal-tract scale, jittered per take);
    an optional fricative onset is band-passed noise. Durations follow the speaker's rate, jittered per take.
    """
    fricative, vowels = word
    rate = speaker.rate * rng.uniform(0.9, 1.1)
    durs = np.array([rng.uniform(0.11, 0.16) for _ in vowels]) / rate  # (V,) seconds per vowel
    t_voiced = durs.sum()
    n = round(t_voiced * sample_rate)
    t = np.arange(n) / sample_rate  # (n,)
    centres = np.cumsum(durs) - durs / 2  # (V,)
    targets = np.array([VOWELS[v] for v in vowels]) * speaker.formant_scale  # (V, 3)
    if speaker.accent:
        names = list(VOWELS)
        targets = targets * np.array([speaker.accent[names.index(v)] for v in vowels])  # (V, 3) accent
    targets = targets * (1.0 + 0.02 * rng.standard_normal(targets.shape))  # per-take jitter
    f0_start = speaker.f0 * rng.uniform(0.94, 1.06)
    # pitch, formants and the harmonic weights change slowly: compute them every `step` samples, then interpolate
    step = 16
    tc = np.arange(0, n + step, step) / sample_rate  # (n_c,) coarse times
    tracks = np.stack([np.interp(tc, centres, targets[:, j]) for j in range(3)], axis=1)  # (n_c, 3) F_j(t)
    f0c = f0_start * (1.08 - 0.16 * tc / max(t_voiced, 1e-9))  # (n_c,) falling pitch (declination)
    k = np.arange(1, int((sample_rate / 2 - 100) // f0c.max()) + 1)  # (K,) harmonics below Nyquist
    harm = k[None, :] * f0c[:, None]  # (n_c, K) harmonic frequencies
    env = (_GAINS / (1.0 + ((harm[:, :, None] - tracks[:, None, :]) / _BANDWIDTHS) ** 2)).sum(-1)  # (n_c, K)
    env = env * k[None, :] ** -speaker.tilt  # (n_c, K)
    pos = np.arange(n) / step  # (n,) position on the coarse grid
    i0 = pos.astype(np.int64)
    frac = (pos - i0)[:, None]  # (n, 1)
    weights = env[i0] * (1.0 - frac) + env[i0 + 1] * frac  # (n, K) linear interpolation
    f0 = np.interp(t, tc, f0c)  # (n,)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate  # (n,)
    voiced = (weights * np.sin(k[None, :] * phase[:, None])).sum(1)  # (n,)
    ramp = min(int(0.02 * sample_rate), n // 2)
    fade = np.ones(n)
    fade[:ramp], fade[n - ramp :] = np.linspace(0, 1, ramp), np.linspace(1, 0, ramp)
    voiced *= fade / max(np.abs(voiced).max(), 1e-12)
    parts = [voiced]
    if fricative:
        m = round(rng.uniform(0.06, 0.09) / rate * sample_rate)
        spec = np.fft.rfft(rng.standard_normal(m))
        freqs = np.fft.rfftfreq(m, 1 / sample_rate)
        lo = 2200 * speaker.formant_scale
        spec[(freqs < lo) | (freqs > sample_rate / 2 - 150)] = 0
        noise = np.fft.irfft(spec, m)
        noise *= np.hanning(m) * 0.35 / max(np.abs(noise).max(), 1e-12)
        parts.insert(0, noise)
    x = np.concatenate(parts)
    x = x + speaker.breath * rng.standard_normal(x.shape)
    return x * (rng.uniform(0.3, 0.8) / max(np.abs(x).max(), 1e-12))


def synthesize_fsdd(
    root: str | os.PathLike[str],
    *,
    num_speakers: int = 6,
    num_words: int = 10,
    takes: int = 20,
    sample_rate: int = 8000,
    seed: int = 0,
    accent: float = 0.15,
    overwrite: bool = False,
) -> Path:
    """Write a generated stand-in for FSDD in its official layout under ``root`` and return ``root``.

    ``recordings/{word}_{spk}_{take}.wav`` (16-bit PCM) for ``num_speakers`` x ``num_words`` x ``takes`` recordings,
    and ``speakers.csv`` with each speaker's generating parameters (``accent``: see :func:`synth_speakers`). Every
    file depends only on ``seed``, ``accent`` and its (speaker, word, take), so a larger set extends a smaller one.
    Existing recordings are an error unless ``overwrite``.
    """
    root = Path(root)
    check_int(takes, "takes", 1)
    rec = root / "recordings"
    if rec.is_dir() and any(rec.iterdir()) and not overwrite:
        raise FileExistsError(f"{rec} already holds files; pass overwrite=True or another root")
    rec.mkdir(parents=True, exist_ok=True)
    vocabulary = synth_vocabulary(num_words, seed=seed)
    speakers = synth_speakers(num_speakers, seed=seed, accent=accent)
    for si, spk in enumerate(speakers):
        for w, word in enumerate(vocabulary):
            for take in range(takes):
                x = synthesize_word(
                    word, spk, sample_rate=sample_rate, rng=np.random.default_rng([seed, 2, si, w, take])
                )
                audio.write_wav(rec / f"{w}_{spk.name}_{take}.wav", x, sample_rate)
    with open(root / "speakers.csv", "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(
            ["speaker", "gender", "accent", "language", "recordings", "f0_hz", "formant_scale", "rate"]
        )
        for spk in speakers:
            out.writerow(
                [
                    spk.name,
                    "generated",
                    "generated",
                    "none",
                    num_words * takes,
                    f"{spk.f0:.1f}",
                    f"{spk.formant_scale:.3f}",
                    f"{spk.rate:.3f}",
                ]
            )
    return root
