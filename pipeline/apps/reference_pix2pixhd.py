"""NVIDIA's pix2pixHD networks, timed with their training step beside ours (not vendored: a
checkout of NVlabs' repository)."""
from __future__ import annotations

import importlib.util
import os
from unittest import mock

import torch
import torch.nn as nn

from pipeline.training import trainer
from pipeline.config.sections import Params
from pipeline.data.sets import get_spec
from pipeline.data.inputs import EditTask, condition_channels
from pipeline.models.networks import count_parameters
from pipeline.training.runlog import StepMemory
from pipeline.data.synthetic import generate_split
from pipeline.apps.step_timing import (StepTimer, TimedTask, configure_process, measured_steps,
                                       process_record, rss_bytes, train_boxes)


def _load_reference_networks(checkout: str):
    path = os.path.join(checkout, "models", "networks.py")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist: --reference must be a checkout of "
                                "https://github.com/NVIDIA/pix2pixHD")
    spec = importlib.util.spec_from_file_location("reference_pix2pixhd_networks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _ReferenceStep(nn.Module):
    """pix2pixHD's Pix2PixHDModel.forward + its train.py updates, on its own networks: one
    generator pass, D on (fake.detach(), real, fake), LSGAN, feature matching and VGG loss at
    λ_feat = 10 with its weights, then G's and D's Adam steps (its D also gets gradients from
    the generator loss, which its optimiser clears)."""

    def __init__(self, networks, in_channels: int, m, device):
        super().__init__()
        norm = networks.get_norm_layer("instance")
        self.netG = networks.GlobalGenerator(in_channels, 3, m.ngf, m.n_downsampling,
                                             m.n_blocks, norm)
        self.netD = networks.MultiscaleDiscriminator(in_channels + 3, m.ndf, m.n_layers_d, norm,
                                                     False, m.num_d, True)
        self.netG.apply(networks.weights_init)
        self.netD.apply(networks.weights_init)
        tensor = torch.cuda.FloatTensor if device.type == "cuda" else torch.FloatTensor
        self.gan = networks.GANLoss(use_lsgan=True, tensor=tensor)
        # random-init VGG19 (no weights can be downloaded; the same cost)
        import torchvision
        vgg19 = torchvision.models.vgg19
        with mock.patch.object(torchvision.models, "vgg19",
                               lambda pretrained=False, **_: vgg19(weights=None)):
            self.vgg = networks.Vgg19()
        self.vgg_weights = [1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0]
        self.num_d, self.n_layers = m.num_d, m.n_layers_d

    def step(self, label, real, opt_g, opt_d):
        fake = self.netG(label)
        pred_fake_pool = self.netD(torch.cat((label, fake.detach()), dim=1))
        loss_d_fake = self.gan(pred_fake_pool, False)
        pred_real = self.netD(torch.cat((label, real.detach()), dim=1))
        loss_d_real = self.gan(pred_real, True)
        pred_fake = self.netD(torch.cat((label, fake), dim=1))
        loss_g_gan = self.gan(pred_fake, True)
        feat_weights, d_weights = 4.0 / (self.n_layers + 1), 1.0 / self.num_d
        loss_g_feat = sum(d_weights * feat_weights * 10.0
                          * nn.functional.l1_loss(pred_fake[i][j], pred_real[i][j].detach())
                          for i in range(self.num_d) for j in range(len(pred_fake[i]) - 1))
        x_vgg, y_vgg = self.vgg(fake), self.vgg(real)
        loss_g_vgg = 10.0 * sum(w * nn.functional.l1_loss(x, y.detach())
                                for w, x, y in zip(self.vgg_weights, x_vgg, y_vgg))
        loss_d = (loss_d_fake + loss_d_real) * 0.5
        loss_g = loss_g_gan + loss_g_feat + loss_g_vgg
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()


def reference_pix2pixhd(checkout: str, params: Params, dataset: str, width: int, height: int,
                        steps: int, images: int, count_flops: bool = True) -> dict:
    """Median step seconds and peak memory of NVIDIA's pix2pixHD networks and training step at
    our model sizes, on the same synthetic maps (our conditioning, batch 1)."""
    configure_process(params)
    device = trainer.pick_device(params.train.device)
    networks = _load_reference_networks(checkout)
    trainer.make_deterministic(params.train.seed, params.train.cpu_threads,
                               params.train.deterministic)
    spec = get_spec(dataset)
    split = generate_split(dataset, "train", images, height, width, params.data.seed)
    boxes = train_boxes(params, dataset, split, spec)
    task = TimedTask(EditTask(split, spec, boxes, batch_size=1, flip=True, seed=0), steps)
    model = _ReferenceStep(networks, condition_channels(spec), params.model, device).to(device)
    t = params.train
    opt_g = torch.optim.Adam(model.netG.parameters(), lr=t.lr, betas=(t.beta1, t.beta2))
    opt_d = torch.optim.Adam(model.netD.parameters(), lr=t.lr, betas=(t.beta1, t.beta2))
    memory = StepMemory(device)
    rss_before = rss_bytes() if device.type == "cpu" else None
    clock = StepTimer(device, parts=False, count_flops=count_flops)
    for batch in task.epoch(0, device):
        memory.start_step()
        model.step(batch.condition, batch.target, opt_g, opt_d)
        memory.end_step()
        clock.step_done()
    return {**measured_steps(clock, memory.summary(), rss_before),
            "generator_parameters": count_parameters(model.netG),
            "discriminator_parameters": count_parameters(model.netD),
            "source": os.path.abspath(checkout), **process_record()}
