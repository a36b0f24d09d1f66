"""Per-frame video autoencoder around diffusers' AutoencoderKL (tiny dummy configs)."""

from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKL

from freeaction_gym.models.autoencoder import AutoencoderConfig, VideoAutoencoder

TINY = dict(block_out_channels=(8, 16), norm_num_groups=4, latent_channels=4, sample_size=16)


def video(b=2, f=3, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, f, 16, 16, 3), generator=g, dtype=torch.uint8)


@pytest.fixture(scope="module")
def ae() -> VideoAutoencoder:
    torch.manual_seed(0)
    return VideoAutoencoder.from_config(AutoencoderConfig(**TINY)).eval()


def test_encode_decode_shapes(ae) -> None:
    v = video()
    with torch.no_grad():
        z = ae.encode(v)
        x = ae.decode(z)
    assert ae.downsample == 2 and ae.latent_channels == 4 and ae.scaling_factor == 1.0
    assert z.shape == (2, 3, 4, 8, 8)
    assert x.shape == (2, 3, 3, 16, 16) and x.dtype == torch.float32
    assert ae.to_uint8(x).shape == v.shape


def test_video_encode_equals_per_frame_encode(ae) -> None:
    v = video()
    with torch.no_grad():
        z = ae.encode(v)
        frame = ae.vae.encode(ae.to_float(v[1, 2])[None]).latent_dist.mode()
    torch.testing.assert_close(z[1, 2], frame[0], rtol=1e-5, atol=1e-5)


def test_scaling_factor_from_config(tmp_path) -> None:
    torch.manual_seed(1)
    cfg = AutoencoderConfig(**TINY, scaling_factor=0.13025).to_diffusers()
    AutoencoderKL(**cfg).save_pretrained(str(tmp_path / "vae"))
    raw = AutoencoderKL.from_pretrained(str(tmp_path / "vae")).eval()
    for where in (tmp_path / "vae", tmp_path):  # also a pipeline dir with a vae/ subfolder
        ae = VideoAutoencoder.from_pretrained(where).eval()
        assert ae.scaling_factor == pytest.approx(0.13025)
        v = video(b=1, f=2)
        x = v.movedim(-1, -3).float().flatten(0, 1) / 127.5 - 1.0  # (F, 3, H, W)
        with torch.no_grad():
            z = ae.encode(v)
            want = raw.encode(x).latent_dist.mode() * 0.13025
            torch.testing.assert_close(z[0], want, rtol=1e-5, atol=1e-6)
            dec = ae.decode(z)
            torch.testing.assert_close(
                dec[0], raw.decode(want / 0.13025).sample, rtol=1e-5, atol=1e-5
            )


def test_missing_directory_message(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="config.json") as err:
        VideoAutoencoder.from_pretrained(tmp_path / "no_vae")
    assert "no_vae" in str(err.value)


def test_uint8_roundtrip_is_exact() -> None:
    x = torch.arange(256, dtype=torch.uint8).repeat(3, 1).T.reshape(1, 16, 16, 3)
    f = VideoAutoencoder.to_float(x)
    assert f.shape == (1, 3, 16, 16) and f.min() == -1.0 and f.max() == 1.0
    assert torch.equal(VideoAutoencoder.to_uint8(f), x)
    assert VideoAutoencoder.to_float(f) is f  # float passes through
    clipped = VideoAutoencoder.to_uint8(torch.tensor([-3.0, 0.0, 3.0]).view(1, 3, 1, 1))
    assert clipped.flatten().tolist() == [0, 128, 255]


def test_chunking_matches_single_batch(ae) -> None:
    v = video(b=2, f=3)
    chunked = VideoAutoencoder(ae.vae, chunk=2)
    with torch.no_grad():
        z1, z2 = ae.encode(v), chunked.encode(v)
        torch.testing.assert_close(z2, z1, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(chunked.decode(z1), ae.decode(z1), rtol=1e-5, atol=1e-6)


def test_sample_posterior_uses_generator(ae) -> None:
    sampler = VideoAutoencoder(ae.vae, sample_posterior=True)
    v = video(b=1, f=2)
    with torch.no_grad():
        a = sampler.encode(v, torch.Generator().manual_seed(0))
        b = sampler.encode(v, torch.Generator().manual_seed(0))
        c = sampler.encode(v, torch.Generator().manual_seed(1))
        mode = ae.encode(v)
    assert torch.equal(a, b) and not torch.allclose(a, c) and not torch.allclose(a, mode)
