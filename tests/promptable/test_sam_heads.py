"""The decoder's reassociated attention and channels-last upscaling equal the plain formulation."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.parametrize(("image_batch", "tokens"), [(1, 7), (4, 7), (4, 20), (1, 20)])
def test_reassociated_attention_equals_plain_attention(image_batch, tokens):
    from scopeseg.models.sam.heads import Attention

    torch.manual_seed(0)
    attn = Attention(64, num_heads=4, downsample_rate=2)  # internal 32: H*T < 32 only for T = 7
    for p in attn.parameters():  # biases too, so dropping the key bias is really tested
        torch.nn.init.normal_(p, std=0.3)
    n, length = 4, 50
    tok = torch.randn(n, tokens, 64)
    img, img_v = torch.randn(image_batch, length, 64), torch.randn(image_batch, length, 64)
    with torch.no_grad():
        plain = attn(tok, img, img_v)
        fast = attn.tokens_to_image(tok, img, img_v)
        torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5)
        plain = attn(img, tok, tok * 0.5)
        fast = attn.image_to_tokens(img, tok, tok * 0.5)
        assert fast.shape == (n, length, 64)
        torch.testing.assert_close(fast, plain.expand(n, -1, -1), rtol=1e-4, atol=1e-5)


def test_channels_last_upscaling_equals_transposed_convolutions():
    from scopeseg.models.registry import create_model
    from scopeseg.models.sam.model import TINY_ARCH

    torch.manual_seed(0)
    dec = create_model("litemedsam", pretrained=False, **TINY_ARCH).mask_decoder
    for p in dec.output_upscaling.parameters():
        torch.nn.init.normal_(p, std=0.3)
    n, c, h, w = 3, 32, 4, 5
    keys, hyper = torch.randn(n, h * w, c), torch.randn(n, 4, c // 8)
    with torch.no_grad():
        up = dec.output_upscaling(keys.transpose(1, 2).reshape(n, c, h, w))
        plain = (hyper @ up.flatten(2)).view(n, 4, 4 * h, 4 * w)
        fast = dec.upscale_masks(keys, hyper, h, w)
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5)
