"""The trainer's joint step (one discriminator pass per plug-in for its generator and
discriminator terms, two backward passes restricted by `inputs`) trains the same networks as the
plain step: generator terms with the discriminators frozen, G's update, then the discriminator
terms on the detached output and D's update."""
import pytest
import torch

from pipeline.training import trainer
from pipeline.data.sets import get_spec
from pipeline.data.inputs import EditBox, EditTask, condition_channels
from pipeline.models.losses import AMExLoss, MExLoss, Pix2PixHDLoss
from pipeline.models.networks import GlobalGenerator, VGG19Features
from pipeline.data.preparation import box_rows
from pipeline.data.synthetic import generate_split

CPU = torch.device("cpu")
STEPS = 4


def _task():
    spec = get_spec("cityscapes")
    split = generate_split("cityscapes", "train", STEPS, 16, 32, seed=2)
    boxes = {}
    for row in box_rows("train", split, spec, 0.02):
        boxes.setdefault(row[1], []).append(EditBox(row[1], row[2], tuple(row[3:7])))
    return EditTask(split, spec, boxes, batch_size=1, flip=True, seed=3), condition_channels(spec)


def _models(expansion):
    task, channels = _task()
    torch.manual_seed(0)
    generator = GlobalGenerator(channels, 3, ngf=4, n_downsampling=1, n_blocks=1)
    basic = Pix2PixHDLoss(channels, VGG19Features(), ndf=4, n_layers=2, num_d=2,
                          lambda_adv=0.7, lambda_feat=1.9, lambda_perc=2.3)
    if expansion == "amex":
        plugin = AMExLoss(channels, top_level=2, alpha=3, beta=2, ndf=4, n_layers=2, lambda_mex=1.3)
    else:   # mex_canvas: the D_j as one grouped network on a crop canvas (train.mex_crop_canvas)
        plugin = MExLoss(channels, top_level=2, alpha=3, beta=2, ndf=4, n_layers=2, lambda_mex=1.3,
                         crop_canvas=8 if expansion == "mex_canvas" else 0)
    return task, generator, [basic, plugin]


def _plain_training(task, generator, losses, lr, betas):
    """The reference step, written out: G terms (Ds frozen), G update, D terms, D update."""
    d_params = trainer.discriminator_parameters(losses)
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(d_params, lr=lr, betas=betas)
    generator.train()
    for batch in task.epoch(0, CPU):
        generated = generator(batch.condition)
        fused = batch.fuse(generated)
        g_terms = {k: v for loss in losses
                   for k, v in loss.generator_terms(batch, generated, fused).items()}
        opt_g.zero_grad(set_to_none=True)
        sum(g_terms.values()).backward()
        opt_g.step()
        d_terms = {k: v for loss in losses
                   for k, v in loss.discriminator_terms(batch, generated, fused).items()}
        opt_d.zero_grad(set_to_none=True)
        sum(d_terms.values()).backward()
        opt_d.step()


def _outputs(generator, losses, condition, image):
    """What the trained networks compute on a fixed input: G's output and every D's score."""
    with torch.no_grad():
        pair = torch.cat([condition, image], 1)
        scores = [scale[-1].flatten() for scale in losses[0].discriminator(pair)]
        if isinstance(losses[1], MExLoss):
            scores += [D(pair)[-1].flatten() for D in losses[1].discriminators]
        else:
            scores.append(losses[1].discriminator(pair)[-1].flatten())
        return torch.cat([generator(condition).flatten(), *scores])


@pytest.mark.parametrize("expansion", ["mex", "amex", "mex_canvas"])
def test_joint_step_trains_what_the_plain_step_trains(tmp_path, expansion):
    """The trainer's joint step against the plain step written out (mex_canvas: against the
    plain step of MEx with one call per crop size)."""
    lr, betas = 1e-3, (0.5, 0.999)
    task, generator, losses = _models(expansion)
    torch.manual_seed(7)
    condition = torch.rand(1, generator.model[1].in_channels, 16, 32)
    image = torch.rand(1, 3, 16, 32) * 2 - 1
    before = _outputs(generator, losses, condition, image)
    trainer.train(generator=generator, losses=losses, task=task, epochs=1, lr=lr, betas=betas,
                  device=CPU, out_dir=str(tmp_path), progress=False)
    joint = _outputs(generator, losses, condition, image)
    task, generator, losses = _models("mex" if expansion == "mex_canvas" else expansion)
    _plain_training(task, generator, losses, lr, betas)
    plain = _outputs(generator, losses, condition, image)
    moved = (plain - before).abs().max()
    difference = (joint - plain).abs().max()
    # rounding only: a gradient of ~0 (a conv bias before an instance norm) can turn into a
    # full Adam step either way, so the outputs are compared, not the weights
    assert difference < 1e-3 * moved, (difference, moved)
