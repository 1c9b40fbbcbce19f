"""Free Spoken Digit Dataset (FSDD): isolated spoken digits by several speakers, as log-mel spectrograms.

Z. Jackson, C. Souza, J. Flaks, Y. Pan, H. Nicolas, A. Thite, *Free Spoken Digit Dataset*,
github.com/Jakobovski/free-spoken-digit-dataset (CC BY-SA 4.0). Official layout::

    <root>/recordings/{digit}_{speaker}_{take}.wav     # e.g. 7_jackson_32.wav; 8 kHz mono 16-bit PCM
    <root>/speakers.csv                                # optional: speaker,gender,accent,language,...

Each recording is one *word* (the digit, the class label) said by one *speaker* (kept per recording in
``meta["speaker"]``, with ``meta["take"]`` and ``meta["path"]``). The loader reads every WAV, brings it to
``duration`` seconds (zero-padding or centre crop, :func:`dmlbook.audio.fix_length`) and stores the log-mel
spectrogram (:func:`dmlbook.audio.log_mel_spectrogram`) as ``x`` of shape (1, n_mels, frames) — or the
waveform itself with ``features="waveform"``.

Splits. The word classes are the same on both sides (this is recognition, not retrieval of unseen classes):

* the dataset's official split (``load_dataset("fsdd", split=...)``): takes 0-4 test, 5-49 train. It is **not**
  speaker-disjoint: every test speaker is also a training speaker;
* :func:`speaker_split` / :func:`leave_one_speaker_out`: a held-out speaker's recordings against the others'
  — the unseen-speaker setting of chapter 9, where the word accuracy drops because every speaker says a word
  differently (the intra-class variation Takashima et al., Interspeech 2020, address with metric learning).
  A few of the held-out speaker's takes can be set aside for adaptation (their transfer setting).

A generated stand-in in the same layout (formant-synthesised "words" with speaker-specific pitch, vocal-tract
length and speaking rate), so that everything here runs offline, is written by
:func:`dmlbook.data.synthetic_speech.synthesize_fsdd` (its names are re-exported here).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import audio
from .._checks import check_choice, check_int, check_positive
from .dataset import DMLDataset
from .info import DatasetInfo, RemoteFile
from .splits import SplitSource

# the generated stand-in lives in its own module; its names stay importable from here (fsdd.synthesize_fsdd, ...)
from .synthetic_speech import (
    VOWELS,
    SynthSpeaker,
    synth_speakers,
    synth_vocabulary,
    synthesize_fsdd,
    synthesize_word,
)

COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"
FEATURES = ("logmel", "waveform")
PATTERN = re.compile(r"^(\d+)_([A-Za-z0-9-]+)_(\d+)\.wav$", re.IGNORECASE)
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

INFO = DatasetInfo(
    name="fsdd",
    title="Free Spoken Digit Dataset (spoken digits 0-9, several speakers; log-mel spectrograms)",
    input_kind="logmel",
    input_shape=None,
    num_classes=10,
    split="takes 0-4 test, 5-49 train (official, NOT speaker-disjoint); speaker_split() for unseen speakers",
    embedding_dim=64,
    batch_p=10,
    batch_k=8,
    source="download",
    url="https://github.com/Jakobovski/free-spoken-digit-dataset",
    license="CC BY-SA 4.0 (attribute the Free Spoken Digit Dataset; share derived data alike)",
    citation="Z. Jackson et al. Free Spoken Digit Dataset (FSDD). "
    "github.com/Jakobovski/free-spoken-digit-dataset, v1.0.10.",
    folders=("fsdd", "free-spoken-digit-dataset", "FSDD"),
    files=(
        RemoteFile(
            f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/{COMMIT}.zip",
            "free-spoken-digit-dataset.zip",
            extract=True,
            strip=f"free-spoken-digit-dataset-{COMMIT}",
        ),
    ),
    manual="Or: git clone https://github.com/Jakobovski/free-spoken-digit-dataset and point root= (or a link "
    "$DMLBOOK_DATA/fsdd) at the clone; the loader reads its recordings/ folder.",
)


# ------------------------------------------------------------------------------------------------ the files
@dataclass(frozen=True)
class Recording:
    """One file of the official layout: ``{word}_{speaker}_{take}.wav``."""

    path: Path
    word: int
    speaker: str
    take: int


def parse_name(name: str) -> tuple[int, str, int] | None:
    """``"7_jackson_32.wav"`` -> ``(7, "jackson", 32)``; None for a name that does not follow the layout."""
    m = PATTERN.match(name)
    return (int(m.group(1)), m.group(2), int(m.group(3))) if m else None


def scan(folder: Path) -> list[Recording]:
    """Every recording under ``folder/recordings`` sorted by (speaker, word, take). A ``.wav`` whose name does not
    follow ``{word}_{speaker}_{take}.wav`` is an error (naming the file), never silently skipped."""
    base = Path(folder) / "recordings"
    if not base.is_dir():
        return []
    out = []
    for f in base.iterdir():
        if f.name.startswith(".") or f.suffix.lower() != ".wav":
            continue
        parsed = parse_name(f.name)
        if parsed is None:
            raise ValueError(
                f"{f}: FSDD recordings must be named {{digit}}_{{speaker}}_{{take}}.wav "
                "(e.g. 7_jackson_32.wav)"
            )
        out.append(Recording(f, *parsed))
    return sorted(out, key=lambda r: (r.speaker, r.word, r.take))


def check(folder: Path) -> str | None:
    """What is missing: ``"recordings/"`` (no folder) or a WAV pattern (no recordings); None when usable."""
    base = Path(folder) / "recordings"
    if not base.is_dir():
        return "recordings/"
    if not any(parse_name(f.name) for f in base.iterdir()):
        return "recordings/{digit}_{speaker}_{take}.wav"
    return None


def read_speakers(folder: Path) -> dict[str, dict[str, str]]:
    """``speakers.csv`` as ``{speaker: {column: value}}`` ({} when the file is absent)."""
    path = Path(folder) / "speakers.csv"
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if rows and "speaker" not in rows[0]:
        raise ValueError(f"{path} must have a 'speaker' column; got columns {list(rows[0])}")
    return {r["speaker"]: {k: v for k, v in r.items() if k != "speaker"} for r in rows}


# ------------------------------------------------------------------------------------------------ loading
def load(
    folder: Path,
    *,
    features: str = "logmel",
    sample_rate: int = 8000,
    duration: float = 0.8,
    n_fft: int = 256,
    hop_length: int = 128,
    n_mels: int = 32,
    align: str = "center",
    speakers: Sequence[str] | None = None,
    test_takes: int = 5,
) -> SplitSource:
    """Every recording of ``folder`` (the official layout) as one dataset; the train side is takes >= ``test_takes``.

    Args:
        features: ``"logmel"``: ``x`` is (1, n_mels, frames) float32, ``frames = 1 + samples // hop_length``;
            ``"waveform"``: ``x`` is (samples,) float32 in [-1, 1].
        sample_rate: files at another rate are resampled to it (:func:`dmlbook.audio.resample`).
        duration: seconds every recording is padded or cropped to (``align``: ``"center"`` or ``"start"``).
            FSDD recordings last 0.14-2.28 s (median 0.42 s; 99 % are under 0.93 s).
        n_fft, hop_length, n_mels: the log-mel front end (:class:`dmlbook.audio.LogMelSpectrogram`).
        speakers: keep only these speakers (default: all).
        test_takes: takes ``0 .. test_takes-1`` form the official test side.

    ``labels`` are the words (digits) with ``class_ids`` 0-9 and ``class_names`` "zero".."nine" (for any word id
    above 9, its number); ``meta`` holds ``speaker``, ``take``, ``path`` and ``seconds`` (original length);
    ``dataset.speakers`` is the ``speakers.csv`` table (``{}`` if absent).
    """
    check_choice(features, FEATURES, "features")
    duration = check_positive(duration, "duration")
    check_int(test_takes, "test_takes", 0)
    records = scan(folder)
    if speakers is not None:
        if isinstance(speakers, str):
            raise TypeError("speakers must be a list of speaker names, not a single str")
        known = sorted({r.speaker for r in records})
        unknown = sorted(set(speakers) - set(known))
        if unknown:
            raise ValueError(f"speakers {unknown} have no recordings in {folder}; speakers there: {known}")
        records = [r for r in records if r.speaker in set(speakers)]
    if not records:
        raise ValueError(f"no recordings to load in {Path(folder) / 'recordings'}")
    length = max(1, round(duration * sample_rate))
    waves, seconds = [], []
    for r in records:
        w, rate = audio.read_wav(r.path)  # (T,)
        seconds.append(w.shape[0] / rate)
        if rate != sample_rate:
            w = audio.resample(w, rate, sample_rate)
        waves.append(w)
    x = audio.pad_batch(waves, length, align=align)  # (N, samples)
    if features == "logmel":
        front = audio.LogMelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels
        )
        x = torch.cat([front(chunk) for chunk in x.split(1024)]).unsqueeze(1)  # (N, 1, n_mels, frames)
    words = np.array([r.word for r in records], dtype=np.int64)
    ids = np.unique(words)
    labels = np.searchsorted(ids, words)
    names = [DIGIT_NAMES[i] if i < len(DIGIT_NAMES) else str(i) for i in ids]
    takes = np.array([r.take for r in records], dtype=np.int64)
    meta = {
        "speaker": np.array([r.speaker for r in records]),
        "take": takes,
        "path": np.array([str(r.path) for r in records]),
        "seconds": np.array(seconds),
    }
    ds = DMLDataset(
        x.contiguous(),
        labels,
        class_ids=ids,
        class_names=names,
        meta=meta,
        name=f"fsdd:{Path(folder).name}",
        info=INFO,
    )
    ds.speakers = read_speakers(folder)
    ds.sample_rate = sample_rate
    return SplitSource(ds, takes >= test_takes, by_class=False)


# ------------------------------------------------------------------------------------------------ speakers
@dataclass
class SpeakerSplit:
    """One leave-one-speaker-out fold. Labels keep the full word space in every part.

    ``train``: the other speakers' recordings except their ``seen_test_takes`` first takes; ``seen_test``: those
    takes (seen speakers, unseen recordings); ``adapt``: ``adapt_takes`` recordings per word of the held-out
    speaker (for adaptation); ``unseen_test``: the held-out speaker's other recordings.
    """

    speaker: str
    train: DMLDataset
    seen_test: DMLDataset
    adapt: DMLDataset
    unseen_test: DMLDataset


def speaker_list(dataset: DMLDataset) -> list[str]:
    """The speakers of a dataset loaded by :func:`load` (sorted)."""
    if "speaker" not in dataset.meta:
        raise ValueError("dataset has no meta['speaker']; load it with load_dataset('fsdd', split='all')")
    return sorted(set(dataset.meta["speaker"].tolist()))


def speaker_split(
    dataset: DMLDataset, speaker: str, *, adapt_takes: int = 0, seen_test_takes: int = 5, seed: int = 0
) -> SpeakerSplit:
    """Hold out ``speaker``: see :class:`SpeakerSplit`. The adaptation takes are drawn per word, seeded by
    ``(seed, speaker)``; they are never in ``unseen_test``."""
    speakers = speaker_list(dataset)
    if speaker not in speakers:
        raise ValueError(f"speaker must be one of {speakers}; got {speaker!r}")
    if len(speakers) < 2:
        raise ValueError(f"leave-one-speaker-out needs at least 2 speakers; the dataset has {speakers}")
    check_int(adapt_takes, "adapt_takes", 0)
    check_int(seen_test_takes, "seen_test_takes", 0)
    spk, take, labels = dataset.meta["speaker"], dataset.meta["take"], dataset.labels
    held = spk == speaker
    seen_test = ~held & (take < seen_test_takes)
    adapt = np.zeros(len(dataset), dtype=bool)
    if adapt_takes:
        rng = np.random.default_rng([seed, *speaker.encode()])
        for word in np.unique(labels[held]):
            idx = np.flatnonzero(held & (labels == word))
            if adapt_takes >= len(idx):
                raise ValueError(
                    f"adapt_takes={adapt_takes} leaves no test recording of word "
                    f"{dataset.class_names[word] if dataset.class_names else word} for speaker "
                    f"{speaker!r}, who has {len(idx)}; use fewer"
                )
            adapt[rng.choice(idx, size=adapt_takes, replace=False)] = True
    parts = {
        "train": ~held & ~seen_test,
        "seen_test": seen_test,
        "adapt": adapt,
        "unseen_test": held & ~adapt,
    }
    if not parts["train"].any():
        raise ValueError(f"seen_test_takes={seen_test_takes} leaves no training recordings")
    return SpeakerSplit(speaker, **{k: dataset.subset(m, split=k) for k, m in parts.items()})


def leave_one_speaker_out(
    dataset: DMLDataset,
    *,
    speakers: Sequence[str] | None = None,
    adapt_takes: int = 0,
    seen_test_takes: int = 5,
    seed: int = 0,
) -> Iterator[SpeakerSplit]:
    """:func:`speaker_split` for every speaker in turn (or for ``speakers``)."""
    for s in speaker_list(dataset) if speakers is None else speakers:
        yield speaker_split(dataset, s, adapt_takes=adapt_takes, seen_test_takes=seen_test_takes, seed=seed)


__all__ = [
    "DIGIT_NAMES",
    "FEATURES",
    "INFO",
    "VOWELS",
    "Recording",
    "SpeakerSplit",
    "SynthSpeaker",
    "check",
    "leave_one_speaker_out",
    "load",
    "parse_name",
    "read_speakers",
    "scan",
    "speaker_list",
    "speaker_split",
    "synth_speakers",
    "synth_vocabulary",
    "synthesize_fsdd",
    "synthesize_word",
]
