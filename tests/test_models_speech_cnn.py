"""SpeechCNN: shapes, the registry, the input normalisation's invariances, the waveform front end, bad input."""

from __future__ import annotations

import pytest
import torch

from dmlbook.audio import LogMelSpectrogram
from dmlbook.models import SpeechCNN, available_models, build_model


def test_shapes_and_registry(dtype, device):
    model = build_model("speech_cnn", in_channels=1, embedding_dim=24, n_mels=32, width=8).to(device, dtype)
    assert "speech_cnn" in available_models() and isinstance(model, SpeechCNN)
    x = torch.randn(5, 1, 32, 51, dtype=dtype, device=device)
    out = model(x)
    assert out.shape == (5, 24) and out.dtype == dtype
    torch.testing.assert_close(model(x[:, 0]), out)  # (B, n_mels, frames) is accepted too
    assert model.features(x).shape == (5, 2 * 8 * 4) == (5, model.feature_dim)
    unit = SpeechCNN(32, 16, normalize=True).to(device, dtype)
    torch.testing.assert_close(unit(x).norm(dim=1), torch.ones(5, dtype=dtype, device=device))


def test_utterance_normalisation_removes_level_and_colouring():
    """A fixed gain per mel band (a microphone's or a vocal tract's colouring, additive in the log domain) and an
    overall loudness change leave the embedding unchanged with input_norm="utterance"."""
    torch.manual_seed(0)
    model = SpeechCNN(16, 8, width=4, num_stages=2).eval()
    x = torch.randn(3, 1, 16, 20, dtype=torch.float64)
    model.double()
    colour = torch.randn(1, 1, 16, 1, dtype=torch.float64) * 3  # per-band offset, constant over time
    torch.testing.assert_close(model(x + colour), model(x))
    torch.testing.assert_close(model(2.5 * x + colour), model(x))  # a scale of the log-mels too
    plain = SpeechCNN(16, 8, width=4, num_stages=2, input_norm="none").eval().double()
    assert not torch.allclose(plain(x + colour), plain(x))


def test_pooling_is_invariant_to_where_the_word_is():
    """Mean and max over time: shifting a word inside the padded window by whole pooled cells (2^S frames)
    changes nothing, because the padding is silent and the conv stages are shift-equivariant (away from the
    window's edges, where the convolutions' zero padding differs from silence)."""
    torch.manual_seed(0)
    model = SpeechCNN(16, 8, width=4, num_stages=2, input_norm="none").eval().double()
    word = torch.randn(1, 1, 16, 8, dtype=torch.float64)
    silence = torch.full((1, 1, 16, 64), -5.0, dtype=torch.float64)
    a, b = silence.clone(), silence.clone()
    a[..., 16:24], b[..., 36:44] = word, word  # shift by 20 frames = 5 cells of 2^2, far from both edges
    torch.testing.assert_close(model(a), model(b))


def test_waveform_frontend():
    front = LogMelSpectrogram(sample_rate=8000, n_mels=24, hop_length=128)
    model = SpeechCNN(24, 16, frontend=front).eval()
    wave = torch.randn(2, 6400) * 0.1
    out = model(wave)
    assert out.shape == (2, 16)
    plain = SpeechCNN(24, 16).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("frontend")})
    torch.testing.assert_close(plain(front(wave)), out)
    with pytest.raises(ValueError, match="with a frontend, x must be waveforms"):
        model(torch.randn(2, 1, 24, 51))


def test_global_norm_and_dropout_train():
    model = SpeechCNN(16, 8, width=4, num_stages=2, input_norm="global", dropout=0.5)
    x = torch.randn(6, 1, 16, 24, requires_grad=True)
    model(x).sum().backward()
    assert x.grad is not None and model.input_bn is not None


def test_bad_input_and_arguments():
    model = SpeechCNN(32, 8)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        model([[0.0]])
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(2, 1, 32, 40, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(batch, 1, 32, frames\).*n_mels=32"):
        model(torch.zeros(2, 1, 40, 40))
    with pytest.raises(ValueError, match="x has 4 frames; 3 stages need at least 8"):
        model(torch.zeros(2, 1, 32, 4))
    with pytest.raises(ValueError, match="use at most 4 stages"):
        SpeechCNN(16, 8, num_stages=5)
    with pytest.raises(ValueError, match="input_norm must be one of"):
        SpeechCNN(32, 8, input_norm="batch")
    with pytest.raises(TypeError, match="embedding_dim must be an int"):
        SpeechCNN(32, 8.0)
    with pytest.raises(TypeError, match="frontend must be an nn.Module"):
        SpeechCNN(32, 8, frontend=lambda x: x)
    with pytest.raises(ValueError, match="in_channels must be 1"):
        build_model("speech_cnn", in_channels=3)
