"""MAE: a masked autoencoder on world views (He et al. 2022, "Masked Autoencoders Are Scalable
Vision Learners", https://arxiv.org/abs/2111.06377).

Cut the 64x64 view into N = (64 / 8)^2 = 64 patches of 8x8 pixels — exactly one patch per tile —
hide a random 75% of them, and train a network to paint the hidden ones back. Two asymmetries make
it cheap and make it work:

* the **encoder** (a ViT on :class:`~hitchhiker.masks.core.TransformerCore`) sees only the visible
  quarter: no mask tokens enter it, so it costs a quarter of the attention and never learns to
  rely on a "blank" token that does not exist at test time;
* a **light decoder** (fewer, narrower blocks) gets the encoded visible patches plus one learned
  mask token per hidden patch, each with its position, and predicts the pixels of every patch.

The loss is the mean squared error on the *masked* patches only (the visible ones would be free):

    L = 1 / |M| * sum_{i in M} || x_hat_i - t_i ||^2,   t_i = x_i  or  (x_i - mean(x_i)) / std(x_i)

where the second target ("norm_pix_loss", per-patch normalised) is an option. Pictures are always
shown in pixel space: a normalised prediction is mapped back with the true patch statistics, as the
paper's own visualisations do.

After pre-training the decoder is thrown away; the encoder, fed every patch, mean-pooled, gives the
features that :mod:`.probe` scores with a linear probe against a randomly initialised twin. The
recipe that trains and scores it (Config with presets, build, fit, evaluate) is :mod:`.mae_recipe`.

Shapes: B batch, N patches (64), K kept (visible) patches = N - round(ratio * N), P patch side in
pixels (8), D encoder width, E decoder width, H = W image side (64).
"""

from __future__ import annotations

import torch
from torch import nn

from hitchhiker.masks.core import TransformerCore, init_weights

# ----------------------------------------------------------------------------- patches and masks


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, 3, H, W) -> (B, N, P*P*3), patches in raster order, pixels (row, col, channel) inside."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images shaped (B, 3, H, W); got {tuple(images.shape)}")
    b, c, h, w = images.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"image side {h}x{w} is not a multiple of patch_size={p}")
    x = images.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(patches: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, N, P*P*3) -> (B, 3, H, W) for a square grid of N patches; inverse of :func:`patchify`."""
    b, n, _ = patches.shape
    side, p = int(round(n**0.5)), patch_size
    if side * side != n or patches.shape[2] != p * p * 3:
        raise ValueError(f"expected (B, side^2, {p * p * 3}) patches; got {tuple(patches.shape)}")
    x = patches.reshape(b, side, side, p, p, 3)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, 3, side * p, side * p)


def num_masked(n: int, ratio: float) -> int:
    """How many of ``n`` patches a ``ratio`` hides: exactly round(ratio * n) (at most n - 1)."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must lie in [0, 1); got {ratio}")
    return min(int(round(ratio * n)), n - 1)


def random_mask(
    batch: int, n: int, ratio: float, device=None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """(B, N) bool, True = hidden: every row hides exactly round(ratio * N) uniformly chosen patches.

    MAE's trick: rank uniform noise and hide the patches of the highest ranks.
    """
    noise = torch.rand(batch, n, device=device, generator=generator)
    ranks = noise.argsort(dim=1).argsort(dim=1)
    return ranks >= n - num_masked(n, ratio)


# ----------------------------------------------------------------------------- the model


class MAE(nn.Module):
    """Encoder on visible patches, light decoder on all of them: images -> per-patch pixels.

    ``cfg`` is the recipe's :class:`~hitchhiker.masks.mae_recipe.Config` (sizes, patch, mask ratio).
    """

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        n, d, e = cfg.num_patches, cfg.dim, cfg.decoder_dim
        patch_dim = cfg.patch_size**2 * 3
        # A linear map of the flattened patch = a stride-P convolution, as in ViT.
        self.patch_embed = nn.Linear(patch_dim, d)
        self.pos = nn.Parameter(torch.zeros(1, n, d))
        self.encoder = TransformerCore(d, cfg.depth, cfg.heads, cfg.mlp_ratio)
        self.to_decoder = nn.Linear(d, e)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, e))
        self.decoder_pos = nn.Parameter(torch.zeros(1, n, e))
        self.decoder = TransformerCore(e, cfg.decoder_depth, cfg.decoder_heads, cfg.mlp_ratio)
        self.to_pixels = nn.Linear(e, patch_dim)
        self.apply(init_weights)
        for p in (self.pos, self.mask_token, self.decoder_pos):
            nn.init.normal_(p, std=0.02)

    # --- checks

    def _check_images(self, images: torch.Tensor) -> None:
        s = self.cfg.image_size
        if not torch.is_tensor(images) or images.shape[1:] != (3, s, s) or images.ndim != 4:
            shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
            raise ValueError(
                f"expected float images shaped (B, 3, {s}, {s}) in [0, 1]; got {shape}"
            )
        if not images.is_floating_point():
            raise TypeError(f"expected float images in [0, 1]; got dtype {images.dtype}")

    def _check_mask(self, mask: torch.Tensor, batch: int) -> int:
        n = self.cfg.num_patches
        if mask.shape != (batch, n) or mask.dtype != torch.bool:
            raise ValueError(
                f"mask must be bool shaped (B, N) = ({batch}, {n}); got {mask.dtype} {tuple(mask.shape)}"
            )
        counts = mask.sum(1)
        if (counts != counts[0]).any() or int(counts[0]) >= n:
            raise ValueError(
                f"every row of the mask must hide the same number of patches, fewer than {n}; "
                f"got counts {counts.tolist()}"
            )
        return int(counts[0])

    # --- the two halves

    def encode(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder tokens of the visible patches: (B, K, D), in raster order of the visible ones.

        ``mask`` (B, N) bool, True = hidden; None = every patch visible (K = N). Hidden patches never
        enter the computation, so their content cannot change the output.
        """
        self._check_images(images)
        x = self.patch_embed(patchify(images, self.cfg.patch_size)) + self.pos
        if mask is not None:
            hidden = self._check_mask(mask, images.shape[0])
            b, n, d = x.shape
            keep = (~mask).nonzero()[:, 1].view(b, n - hidden)  # raster order within each row
            x = x.gather(1, keep[..., None].expand(-1, -1, d))
        return self.encoder(x)

    def decode(self, latent: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, K, D) visible tokens + mask tokens at the hidden places -> (B, N, P*P*3) pixels."""
        b, n = mask.shape
        y = self.to_decoder(latent)
        full = self.mask_token.to(y.dtype).expand(b, n, -1).clone()
        full[~mask] = y.reshape(-1, y.shape[-1])  # row-major: the same order encode() kept them in
        return self.to_pixels(self.decoder(full + self.decoder_pos))

    def forward(
        self,
        images: torch.Tensor,
        mask: torch.Tensor | None = None,
        mask_ratio: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted patches (B, N, P*P*3), mask (B, N)); a random mask at ``mask_ratio`` (default:
        the config's) unless ``mask`` is given."""
        self._check_images(images)
        if mask is None:
            ratio = self.cfg.mask_ratio if mask_ratio is None else mask_ratio
            mask = random_mask(images.shape[0], self.cfg.num_patches, ratio, images.device)
        return self.decode(self.encode(images, mask), mask), mask

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, D): mean-pooled encoder tokens with every patch visible (what the probe sees)."""
        return self.encode(images).mean(1)

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1], pixel space: the prediction with the visible patches pasted back."""
        pred, mask = self(images, mask=mask)
        target = patchify(images, self.cfg.patch_size)
        if self.cfg.norm_pix_loss:  # map back with the true patch statistics, as MAE's figures do
            mean, std = patch_stats(target)
            pred = pred * std + mean
        out = torch.where(mask[..., None], pred.clamp(0, 1), target)
        return unpatchify(out, self.cfg.patch_size)


def patch_stats(patches: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-patch mean and standard deviation, (B, N, 1) each."""
    mean = patches.mean(-1, keepdim=True)
    var = patches.var(-1, keepdim=True)
    return mean, (var + eps).sqrt()


def mae_loss(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
    """Mean squared error on the masked patches only (trainer ``loss_fn``)."""
    images = batch["frame"]
    pred, mask = model(images)
    cfg = model.module.cfg if hasattr(model, "module") else model.cfg
    target = patchify(images, cfg.patch_size)
    if cfg.norm_pix_loss:
        mean, std = patch_stats(target)
        target = (target - mean) / std
    per_patch = (pred.float() - target).pow(2).mean(-1)  # (B, N)
    loss = (per_patch * mask).sum() / mask.sum()
    return loss, {"visible_mse": (per_patch * ~mask).sum() / (~mask).sum().clamp_min(1)}


@torch.no_grad()
def masked_psnr(
    model: MAE, images: torch.Tensor, ratio: float = 0.75, seed: int = 0, batch: int = 256
) -> float:
    """Mean over views of the PSNR (dB) on the hidden patches only, predictions clamped to [0, 1]."""
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    values = []
    for i in range(0, len(images), batch):
        x = images[i : i + batch].to(device)
        mask = random_mask(x.shape[0], model.cfg.num_patches, ratio, generator=gen).to(device)
        recon = patchify(model.reconstruct(x, mask), model.cfg.patch_size)
        err = (recon - patchify(x, model.cfg.patch_size)).pow(2).mean(-1)  # (B, N)
        mse = (err * mask).sum(1) / mask.sum(1)
        values.append(10 * torch.log10(1.0 / mse.clamp_min(1e-10)))
    return float(torch.cat(values).mean())
