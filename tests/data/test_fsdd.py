"""The FSDD loader on fabricated trees of generated WAV files (and on the real files under $DMLBOOK_DATA), its
leave-one-speaker-out splits, and the generated stand-in."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dmlbook import audio
from dmlbook.data import (
    DatasetNotFoundError,
    dataset_info,
    fsdd,
    list_datasets,
    load_dataset,
    synthetic_speech,
)

SPEAKERS = ("alice", "bob", "carol")


def tone_tree(root: Path, *, words=(0, 1, 2), takes=4, speakers=SPEAKERS, rate=8000) -> Path:
    """recordings/{word}_{speaker}_{take}.wav: a tone whose pitch encodes the word, length encodes the take."""
    for s, spk in enumerate(speakers):
        for w in words:
            for t in range(takes):
                n = int(0.2 * rate) + 80 * t
                x = 0.3 * np.sin(2 * np.pi * (300 + 400 * w + 20 * s) * np.arange(n) / rate)
                audio.write_wav(root / "recordings" / f"{w}_{spk}_{t}.wav", x, rate)
    (root / "speakers.csv").write_text(
        "speaker,gender,accent,language,recordings\n"
        + "".join(f"{s},x,y,english,{len(words) * takes}\n" for s in speakers)
    )
    return root


def test_registered():
    assert "fsdd" in list_datasets()
    info = dataset_info("fsdd")
    assert info.num_classes == 10 and "fsdd" in info.folders and info.needs_folder


def test_load_logmel_tree(tmp_path):
    root = tone_tree(tmp_path / "fsdd")
    ds = load_dataset("fsdd", root=root, split="all", duration=0.5, hop_length=100, n_mels=24)
    assert len(ds) == 3 * 3 * 4 and ds.num_classes == 3
    assert ds.data.shape == (36, 1, 24, 1 + 4000 // 100) and ds.data.dtype == torch.float32
    assert ds.class_names == ["zero", "one", "two"] and ds.class_ids.tolist() == [0, 1, 2]
    assert sorted(set(ds.meta["speaker"])) == list(SPEAKERS)
    assert ds.speakers["bob"]["language"] == "english" and ds.sample_rate == 8000
    # sorted by (speaker, word, take); the file name gives the label and the meta
    i = 4 * 3 + 4 * 2 + 1  # bob, word 2, take 1
    assert Path(ds.meta["path"][i]).name == "2_bob_1.wav"
    assert ds.labels[i] == 2 and ds.meta["take"][i] == 1
    assert math.isclose(ds.meta["seconds"][i], (1600 + 80) / 8000)
    # x is the log-mel of the recording padded to 0.5 s (centred), computed independently here
    w, _ = audio.read_wav(ds.meta["path"][i])
    ref = audio.log_mel_spectrogram(audio.fix_length(w, 4000), sample_rate=8000, hop_length=100, n_mels=24)
    torch.testing.assert_close(ds.data[i, 0], ref)
    # the brightest band follows the tone: word 2 (1100 Hz) sits above word 0 (300 Hz)
    band = ds.data[:, 0, :, 10:30].mean(dim=-1).argmax(dim=1)
    assert (band[ds.labels == 2] > band[ds.labels == 0].max()).all()


def test_official_split_by_take(tmp_path):
    root = tone_tree(tmp_path / "fsdd", takes=7)
    train = load_dataset("fsdd", root=root, split="train", val_fraction=0)
    test = load_dataset("fsdd", root=root, split="test")
    assert (train.meta["take"] >= 5).all() and (test.meta["take"] < 5).all()
    assert len(train) == 3 * 3 * 2 and len(test) == 3 * 3 * 5
    assert set(train.meta["speaker"]) == set(test.meta["speaker"])  # the official split shares speakers
    assert train.class_ids.tolist() == test.class_ids.tolist() == [0, 1, 2]
    custom = load_dataset("fsdd", root=root, split="test", test_takes=2)
    assert len(custom) == 3 * 3 * 2


def test_waveforms_resampling_and_speaker_filter(tmp_path):
    root = tone_tree(tmp_path / "fsdd", speakers=("alice", "bob"), takes=2)
    x = 0.3 * np.sin(2 * np.pi * 440 * np.arange(3200) / 16000)  # a 16 kHz file among the 8 kHz ones
    audio.write_wav(root / "recordings" / "1_alice_9.wav", x, 16000)
    ds = load_dataset("fsdd", root=root, split="all", features="waveform", duration=0.25, speakers=["alice"])
    assert set(ds.meta["speaker"]) == {"alice"} and ds.data.shape == (7, 2000)
    i = int(np.flatnonzero(ds.meta["take"] == 9)[0])
    assert math.isclose(ds.meta["seconds"][i], 0.2)
    y = ds.data[i]  # 0.2 s at 16 kHz -> 1600 samples at 8 kHz, centred in 2000
    assert y[:200].abs().max() == 0 and y[1800:].abs().max() == 0
    t = np.arange(1600) / 8000
    np.testing.assert_allclose(
        y[200:1800].numpy()[100:-100], (0.3 * np.sin(2 * np.pi * 440 * t))[100:-100], atol=5e-3
    )
    with pytest.raises(ValueError, match=r"speakers \['dave'\] have no recordings"):
        load_dataset("fsdd", root=root, split="all", speakers=["dave"])
    with pytest.raises(ValueError, match="features must be one of"):
        load_dataset("fsdd", root=root, split="all", features="mfcc")


def test_missing_and_malformed(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="recordings/") as err:
        load_dataset("fsdd", root=tmp_path / "nowhere", split="all")
    assert "free-spoken-digit-dataset" in str(err.value)  # says where to get it
    (tmp_path / "empty" / "recordings").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match=r"\{digit\}_\{speaker\}_\{take\}\.wav"):
        load_dataset("fsdd", root=tmp_path / "empty", split="all")
    root = tone_tree(tmp_path / "fsdd", speakers=("alice",), words=(0, 1), takes=2)
    audio.write_wav(root / "recordings" / "seven-alice.wav", np.zeros(100), 8000)
    with pytest.raises(ValueError, match="seven-alice.wav: FSDD recordings must be named"):
        load_dataset("fsdd", root=root, split="all")


def test_home_lookup(tmp_path, monkeypatch):
    tone_tree(tmp_path / "fsdd", speakers=("alice", "bob"), takes=2)
    monkeypatch.setenv("DMLBOOK_DATA", str(tmp_path))
    assert len(load_dataset("fsdd", split="all")) == 2 * 3 * 2


def test_speaker_split(tmp_path):
    ds = load_dataset("fsdd", root=tone_tree(tmp_path / "fsdd", takes=8), split="all")
    sp = fsdd.speaker_split(ds, "bob", adapt_takes=2, seen_test_takes=3, seed=1)
    parts = {k: getattr(sp, k) for k in ("train", "seen_test", "adapt", "unseen_test")}
    assert {k: len(v) for k, v in parts.items()} == {
        "train": 2 * 3 * 5,
        "seen_test": 2 * 3 * 3,
        "adapt": 3 * 2,
        "unseen_test": 3 * 6,
    }
    paths = [set(v.meta["path"]) for v in parts.values()]
    assert sum(len(p) for p in paths) == len(ds) and len(set().union(*paths)) == len(ds)  # a partition
    assert set(sp.train.meta["speaker"]) == set(sp.seen_test.meta["speaker"]) == {"alice", "carol"}
    assert set(sp.adapt.meta["speaker"]) == set(sp.unseen_test.meta["speaker"]) == {"bob"}
    assert (sp.train.meta["take"] >= 3).all() and (sp.seen_test.meta["take"] < 3).all()
    assert sp.adapt.class_counts().tolist() == [2, 2, 2]  # adapt_takes per word
    assert sp.train.class_ids.tolist() == sp.unseen_test.class_ids.tolist() == [0, 1, 2]  # one word space
    again = fsdd.speaker_split(ds, "bob", adapt_takes=2, seen_test_takes=3, seed=1)
    assert set(again.adapt.meta["path"]) == set(sp.adapt.meta["path"])  # seeded
    none = fsdd.speaker_split(ds, "bob", seen_test_takes=0)
    assert len(none.adapt) == len(none.seen_test) == 0 and len(none.unseen_test) == 24
    folds = list(fsdd.leave_one_speaker_out(ds, adapt_takes=1))
    assert [f.speaker for f in folds] == list(SPEAKERS)
    with pytest.raises(ValueError, match="speaker must be one of"):
        fsdd.speaker_split(ds, "dave")
    with pytest.raises(ValueError, match="adapt_takes=8 leaves no test recording"):
        fsdd.speaker_split(ds, "bob", adapt_takes=8)
    with pytest.raises(ValueError, match="adapt_takes must be >= 0"):
        fsdd.speaker_split(ds, "bob", adapt_takes=-1)
    with pytest.raises(TypeError, match="seen_test_takes must be an int"):
        fsdd.speaker_split(ds, "bob", seen_test_takes=2.0)
    with pytest.raises(ValueError, match="no meta"):
        fsdd.speaker_split(ds.__class__(torch.zeros(2, 1), [0, 1]), "bob")


def test_parse_name():
    assert fsdd.parse_name("7_jackson_32.wav") == (7, "jackson", 32)
    assert fsdd.parse_name("7_jackson.wav") is None and fsdd.parse_name("x_a_1.wav") is None


def test_synthesize_fsdd(tmp_path):
    root = fsdd.synthesize_fsdd(tmp_path / "gen", num_speakers=2, num_words=3, takes=2, seed=3)
    names = sorted(p.name for p in (root / "recordings").iterdir())
    assert len(names) == 12 and "2_spk1_1.wav" in names
    ds = load_dataset("fsdd", root=root, split="all")
    assert ds.num_classes == 3 and set(ds.meta["speaker"]) == {"spk0", "spk1"}
    assert float(ds.speakers["spk0"]["f0_hz"]) > 0
    x, sr = audio.read_wav(root / "recordings" / "1_spk0_0.wav")
    assert sr == 8000 and 0.2 < x.shape[0] / sr < 1.2 and 0.25 < float(x.abs().max()) <= 0.81
    # every file depends only on (seed, speaker, word, take): a larger set extends a smaller one
    big = fsdd.synthesize_fsdd(tmp_path / "big", num_speakers=3, num_words=4, takes=3, seed=3)
    y, _ = audio.read_wav(big / "recordings" / "1_spk0_0.wav")
    torch.testing.assert_close(x, y)
    with pytest.raises(FileExistsError, match="already holds files"):
        fsdd.synthesize_fsdd(root, num_speakers=1, num_words=2, takes=1)
    with pytest.raises(ValueError, match=r"num_words must be in \[2, 200\]"):
        fsdd.synth_vocabulary(1)
    with pytest.raises(TypeError, match="num_words must be an int"):
        fsdd.synth_vocabulary(10.0)
    with pytest.raises(TypeError, match="takes must be an int"):
        fsdd.synthesize_fsdd(tmp_path / "bad", takes="3")


def test_generator_has_its_own_module():
    """The formant synthesiser lives in dmlbook.data.synthetic_speech; fsdd re-exports the same objects."""
    for name in synthetic_speech.__all__:
        assert getattr(fsdd, name) is getattr(synthetic_speech, name)
    assert synthetic_speech.synthesize_fsdd.__module__ == "dmlbook.data.synthetic_speech"


def test_synthetic_speakers_differ_more_than_takes():
    """The generated speakers vary in pitch and formants; a speaker's takes vary less (what makes the
    unseen-speaker setting harder than the seen one)."""
    vocab = fsdd.synth_vocabulary(10)
    assert len(set(vocab)) == 10
    speakers = fsdd.synth_speakers(6)
    assert len({round(s.formant_scale, 3) for s in speakers}) == 6
    front = audio.LogMelSpectrogram(sample_rate=8000, n_mels=32)

    def spectrum(speaker, take, word):
        x = fsdd.synthesize_word(vocab[word], speaker, rng=np.random.default_rng([take]))
        spec = front(torch.from_numpy(x)).mean(dim=1)  # (32,) average log-mel spectrum
        return spec - spec.mean()  # the loudness of a take (a constant in log) removed

    within = np.mean(
        [
            float((spectrum(s, 0, w) - spectrum(s, t, w)).norm())
            for w in range(3)
            for s in speakers
            for t in (1, 2)
        ]
    )
    across = np.mean(
        [
            float((spectrum(a, 0, w) - spectrum(b, 0, w)).norm())
            for w in range(3)
            for i, a in enumerate(speakers)
            for b in speakers[i + 1 :]
        ]
    )
    assert across > 1.5 * within


@pytest.mark.realdata
def test_real_fsdd(real_data):
    if not (real_data / "fsdd" / "recordings").is_dir():
        pytest.skip(f"{real_data / 'fsdd'} is missing")
    ds = load_dataset("fsdd", split="all")
    assert len(ds) == 3000 and ds.num_classes == 10 and ds.data.shape[1:] == (1, 32, 51)
    assert fsdd.speaker_list(ds) == ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    assert ds.class_counts().tolist() == [300] * 10
    assert ds.speakers["theo"]["accent"] == "USA/neutral"
    assert 0.14 < ds.meta["seconds"].min() and ds.meta["seconds"].max() < 2.3
    # the official split (FSDD's README): takes 0-4 test, 5-49 train -> 300 / 2,700 recordings here
    assert len(load_dataset("fsdd", split="train", val_fraction=0)) == 2700
    assert len(load_dataset("fsdd", split="test")) == 300
    sp = fsdd.speaker_split(ds, "theo", adapt_takes=5)
    assert (len(sp.train), len(sp.seen_test), len(sp.adapt), len(sp.unseen_test)) == (2250, 250, 50, 450)
