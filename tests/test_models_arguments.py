"""A keyword argument a registered model does not take is refused before anything is built or trained, with the
list of those it takes (issue 17), from the library and from the training command line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dmlbook.models import available_models, build_model
from dmlbook.models.registry import model_arguments


@pytest.mark.parametrize("name", sorted(available_models()))
def test_every_registered_model_lists_its_arguments(name: str) -> None:
    # None means build_model cannot tell a wrong argument from a right one: register with accepts=<the class>
    arguments = model_arguments(name)
    assert arguments is not None, f"register_model({name!r}, ...) needs accepts=<the model's class>"
    assert "embedding_dim" in arguments and "in_channels" not in arguments and "in_dim" not in arguments


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "mobilenet_v2",
            ("attention_after", "embedding_dim", "frozen_stages", "pretrained", "weights_format"),
        ),
        ("speech_cnn", ("embedding_dim", "frontend", "input_norm", "n_mels", "num_stages", "width")),
    ],
)
def test_an_argument_the_model_does_not_take_lists_those_it_does(
    name: str, expected: tuple[str, ...]
) -> None:
    with pytest.raises(TypeError, match=rf"model {name!r} does not take 'foo'; it accepts: ") as info:
        build_model(name, foo=1)
    accepted = str(info.value).split("it accepts: ", 1)[1].split(", ")
    assert set(expected) <= set(accepted) and accepted == sorted(accepted)
    with pytest.raises(TypeError, match=rf"does not take 'bar', 'foo'; it accepts: {', '.join(accepted)}$"):
        build_model(name, foo=1, bar=2, embedding_dim=8)


def test_the_arguments_it_takes_still_build_the_model() -> None:
    speech = build_model("speech_cnn", n_mels=16, width=4, num_stages=2, embedding_dim=8)
    assert speech(torch.zeros(2, 1, 16, 20)).shape == (2, 8)  # (B, D)
    mobile = build_model("mobilenet_v2", embedding_dim=8, frozen_stages=2, attention_after=(3,))
    assert mobile(torch.zeros(2, 3, 32, 32)).shape == (2, 8)  # (B, D)


def test_the_training_command_refuses_it_before_training(tmp_path, capsys) -> None:
    from support import write_image_folder

    from dmlbook.train.cli import main

    rng = np.random.default_rng(0)
    write_image_folder(
        tmp_path / "scenes",
        lambda k, j: rng.integers(0, 256, (16, 16, 3), dtype=np.uint8),
        classes=4,
        per_class=3,
        suffix=".png",
    )
    out = tmp_path / "out"
    code = main(
        [
            "--dataset",
            "folder",
            "--data-root",
            str(tmp_path / "scenes"),
            "--loss",
            "triplet",
            "--model",
            "mobilenet_v2",
            "--model-arg",
            "foo=1",
            "--pretrained",
            "none",
            "--val-fraction",
            "0",
            "--epochs",
            "1",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert "model 'mobilenet_v2' does not take 'foo'; it accepts: " in err and "frozen_stages" in err
    assert not any(p.name.startswith(("checkpoint", "metrics", "history")) for p in out.rglob("*"))
