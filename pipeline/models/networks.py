"""Networks of pix2pixHD (Wang et al. 2018), written from the paper's description:
the global generator, the PatchGAN discriminator with intermediate features, the multiscale
discriminator, and the VGG19 feature extractor of the perceptual loss (Eq 4)."""
from __future__ import annotations

import logging
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

log = logging.getLogger(__name__)

#---------------------------------------------------------------------------------------------
# Generator


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels))

    def forward(self, x):
        return x + self.body(x)


def encoder_layers(in_channels: int, ngf: int, n_downsampling: int, n_blocks: int) -> list:
    """pix2pixHD G1's front half: c7s1-ngf, n_downsampling stride-2 convs, n_blocks residual
    blocks (the output has ngf * 2**n_downsampling channels)."""
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7), nn.InstanceNorm2d(ngf),
              nn.ReLU(True)]
    width = ngf
    for _ in range(n_downsampling):
        layers += [nn.Conv2d(width, width * 2, 3, stride=2, padding=1),
                   nn.InstanceNorm2d(width * 2), nn.ReLU(True)]
        width *= 2
    return layers + [ResidualBlock(width) for _ in range(n_blocks)]


def decoder_layers(width: int, n_upsampling: int, out_channels: int) -> list:
    """pix2pixHD G1's back half: n_upsampling transposed convs, c7s1-out (no activation)."""
    layers = []
    for _ in range(n_upsampling):
        layers += [nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1,
                                      output_padding=1),
                   nn.InstanceNorm2d(width // 2), nn.ReLU(True)]
        width //= 2
    return layers + [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7)]


class GlobalGenerator(nn.Module):
    """pix2pixHD G1: c7s1-ngf, n_downsampling stride-2 convs, n_blocks residual blocks,
    n_downsampling transposed convs, c7s1-out, tanh.

    x: (N, in_channels, H, W) with H, W multiples of 2**n_downsampling -> (N, out, H, W) in [-1, 1].
    """

    def __init__(self, in_channels: int, out_channels: int = 3, ngf: int = 64,
                 n_downsampling: int = 4, n_blocks: int = 9):
        super().__init__()
        self.multiple = 2 ** n_downsampling
        self.model = nn.Sequential(
            *encoder_layers(in_channels, ngf, n_downsampling, n_blocks),
            *decoder_layers(ngf * 2 ** n_downsampling, n_downsampling, out_channels), nn.Tanh())

    def forward(self, x):
        if x.shape[-1] % self.multiple or x.shape[-2] % self.multiple:
            raise ValueError(f"generator input {tuple(x.shape[-2:])} (H, W) is not a multiple "
                             f"of {self.multiple} (2**n_downsampling)")
        return self.model(x)


#---------------------------------------------------------------------------------------------
# Discriminators


class PatchDiscriminator(nn.Module):
    """pix2pix/pix2pixHD N-layer PatchGAN (kernel 4, padding 2, LeakyReLU 0.2, instance norm,
    no sigmoid: LSGAN). Fully convolutional, so it accepts the variable-size MEx crops.

    forward returns the list of every layer's output (the last one is the patch score map), for
    the feature-matching loss (Eq 3).
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        blocks = [nn.Sequential(nn.Conv2d(in_channels, ndf, 4, stride=2, padding=2),
                                nn.LeakyReLU(0.2, True))]
        width = ndf
        for n in range(1, n_layers + 1):
            previous, width = width, min(width * 2, 512)
            stride = 2 if n < n_layers else 1
            blocks.append(nn.Sequential(nn.Conv2d(previous, width, 4, stride=stride, padding=2),
                                        nn.InstanceNorm2d(width), nn.LeakyReLU(0.2, True)))
        blocks.append(nn.Sequential(nn.Conv2d(width, 1, 4, stride=1, padding=2)))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x):
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features


def valid_mask(heights, widths, canvas_height: int, canvas_width: int) -> torch.Tensor:
    """(..., 1, Hc, Wc) float: 1 at the positions of a canvas that a crop of (heights, widths)
    (..., long) covers from the top left, 0 elsewhere."""
    rows = torch.arange(canvas_height, device=heights.device) < heights[..., None]
    columns = torch.arange(canvas_width, device=widths.device) < widths[..., None]
    return (rows[..., :, None] & columns[..., None, :]).unsqueeze(-3).float()


def masked_instance_norm(x: torch.Tensor, valid: torch.Tensor, eps: float) -> torch.Tensor:
    """Instance norm without affine (nn.InstanceNorm2d) of x (..., C, H, W) over the positions
    where valid (..., 1, H, W) is 1: (x - mean) / sqrt(biased var + eps) there, 0 elsewhere."""
    count = valid.sum((-2, -1), keepdim=True)
    x = x.float()
    mean = (x * valid).sum((-2, -1), keepdim=True) / count
    centered = (x - mean) * valid
    variance = centered.square().sum((-2, -1), keepdim=True) / count
    return centered * torch.rsqrt(variance + eps)


class CanvasDiscriminators(nn.Module):
    """Same-architecture PatchGANs D_0..D_G-1 run as one network of grouped convolutions (their
    weights concatenated, groups = G) on crops placed at the top left of a zero canvas (group j
    sees D_j's crop). It computes what each D_j computes on its crop alone: a convolution's
    outputs over the crop, plus its padding, read only the crop and zeros; after every layer the
    positions past the crop's output size are zeroed again, and instance norm takes its
    statistics over the crop's positions (masked_instance_norm). No parameters of its own: the
    discriminators are an argument, and the benchmark can time this module apart."""

    def forward(self, discriminators, canvas, heights, widths) -> tuple:
        """canvas (B, G·C, Hc, Wc) with B = images x N, crop sizes heights / widths (N, G) long.
        Returns (scores (B, G, 1, h, w) zero past each crop's score map, valid (N, G, 1, h, w))."""
        groups = len(discriminators)
        x = canvas
        for blocks in zip(*(D.blocks for D in discriminators)):
            conv = blocks[0][0]
            x = F.conv2d(x, torch.cat([block[0].weight for block in blocks]),
                         torch.cat([block[0].bias for block in blocks]), conv.stride,
                         conv.padding, groups=groups)
            (kernel_h, kernel_w), (stride_h, stride_w), (pad_h, pad_w) = \
                conv.kernel_size, conv.stride, conv.padding
            heights = (heights + 2 * pad_h - kernel_h) // stride_h + 1
            widths = (widths + 2 * pad_w - kernel_w) // stride_w + 1
            valid = valid_mask(heights, widths, *x.shape[-2:])
            x = x.unflatten(1, (groups, -1)).unflatten(0, (-1, len(heights)))  # (I,N,G,C,h,w)
            for layer in blocks[0][1:]:
                if isinstance(layer, nn.InstanceNorm2d):
                    x = masked_instance_norm(x, valid, layer.eps)
                elif isinstance(layer, nn.LeakyReLU):
                    x = F.leaky_relu(x, layer.negative_slope)
                else:
                    raise TypeError(f"CanvasDiscriminators: no masked form of {layer}")
            x = (x * valid).flatten(0, 1).flatten(1, 2)
        return x.unflatten(1, (groups, -1)), valid


class MultiscaleDiscriminator(nn.Module):
    """num_d PatchGANs on the input downsampled 1x, 2x, 4x ... (3x3 average pooling, stride 2).
    forward returns one feature list per scale."""

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, num_d: int = 2):
        super().__init__()
        self.scales = nn.ModuleList(PatchDiscriminator(in_channels, ndf, n_layers)
                                    for _ in range(num_d))

    def forward(self, x):
        outputs = []
        for index, scale in enumerate(self.scales):
            if index:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(scale(x))
        return outputs


#---------------------------------------------------------------------------------------------
# VGG19 features for the perceptual loss

VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's IMAGENET1K_V1 weights
# Slice ends (exclusive) in torchvision's vgg19().features: relu1_1, relu2_1, relu3_1, relu4_1,
# relu5_1 -- the r = 5 layers of pix2pixHD.
VGG19_SLICES = (2, 7, 12, 21, 30)


def find_weights(explicit_path: str, filename: str) -> str | None:
    """An explicit path, else the torch hub checkpoint cache; None when neither has the file."""
    if explicit_path:
        if not os.path.exists(explicit_path):
            raise FileNotFoundError(f"weights file {explicit_path} does not exist")
        return explicit_path
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", filename)
    return cached if os.path.exists(cached) else None


VGG_INPUTS = ("imagenet", "raw")


class VGG19Features(nn.Module):
    """Frozen VGG19 returning the 5 relu_x_1 activations of an image in [-1, 1].

    ``vgg_input`` (a profile setting): "imagenet" maps [-1, 1] to [0, 1] and normalises with the
    ImageNet mean / std that torchvision's weights were trained with (the paper is silent);
    "raw" feeds [-1, 1] as is, as pix2pixHD (and the authors' code) do.
    ``pretrained`` tells whether ImageNet weights were found; without them the network keeps a
    fixed random initialisation (a stand-in that callers must report as such).
    """

    def __init__(self, weights_path: str = "", vgg_input: str = "imagenet"):
        super().__init__()
        if vgg_input not in VGG_INPUTS:
            raise ValueError(f"vgg_input {vgg_input!r}: imagenet or raw")
        self.vgg_input = vgg_input
        from torchvision.models.vgg import cfgs, make_layers
        # Only the convolutional trunk: the 100M-parameter classifier is never used.
        features = make_layers(cfgs["E"], batch_norm=False)
        path = find_weights(weights_path, VGG19_FILE)
        self.pretrained = path is not None
        if self.pretrained:
            state = torch.load(path, map_location="cpu", weights_only=True)
            features.load_state_dict({k[len("features."):]: v for k, v in state.items()
                                      if k.startswith("features.")})
            self.source = path
        else:
            for module in features.modules():  # torchvision's VGG initialisation
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.constant_(module.bias, 0)
            self.source = "STAND-IN: random-init VGG19 (no vgg19-dcbb9e9d.pth found)"
            log.warning("VGG19 weights %s not found (give loss.vgg_weights_path or put it in %s):"
                        " the perceptual loss uses a RANDOMLY INITIALISED VGG19 stand-in",
                        VGG19_FILE, os.path.join(torch.hub.get_dir(), "checkpoints"))
        layers = list(features.children())
        starts = (0,) + VGG19_SLICES[:-1]
        self.slices = nn.ModuleList(nn.Sequential(*layers[a:b])
                                    for a, b in zip(starts, VGG19_SLICES))
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)  # always frozen

    def forward(self, image):
        x = ((image + 1) / 2 - self.mean) / self.std if self.vgg_input == "imagenet" else image
        features = []
        for block in self.slices:
            x = block(x)
            features.append(x)
        return features


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
