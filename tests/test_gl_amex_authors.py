"""GL+A-MEx's two readings (inpainting_rows.<row>.amex_reading, issue 23).

ours (default): GL's context discriminator (global trunk + local trunk on a patch around the
hole) plus a separate LSGAN PatchGAN on the full-size maps × the expanded hole masks.
authors (their facade code, `_netlocalD` of net_gl_mex.py): no local patch, no separate A-MEx
discriminator; ONE local trunk shared over j = 0..q on the full-size cat(Ŷ·M^E_j, M^E_j), its
q+1 feature vectors and the global trunk's into one logit, GL's BCE weighted α."""
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from pipeline.training import checkpoints, trainer
from pipeline.config.sections import ParamsError
from pipeline.config.validation import parse_params
from pipeline.models.inpainting import (ContextDiscriminator, ExpandedContextDiscriminator,
                                 ExpandedContextLoss, GlobalLocalLoss, _Trunk,
                                 inpainting_batch)
from pipeline.models.losses import AMExLoss, PatchDiscriminator
from pipeline.kinds import train_row
from pipeline.kinds.inpainting import build_gl, gl_phases
from tiny_project import prepare_tiny_facades, tiny_params

HEIGHT, WIDTH = 22, 24
HOLES = [(5, 4, 9, 8), (0, 0, 4, 3)]  # half-open (x1, y1, x2, y2); the second at the corner
# q = 2 expansions of 2 px horizontally, 1 px vertically; α (GL's adversarial weight) 0.5 and
# λ4 3: no weight is 1, so a weight applied twice or dropped shows.
SETTINGS = dict(n_downsampling=2, local_fraction=0.5, reconstruction="mse", lambda_adv=0.5,
                lambda_amex=3.0, q=2, alpha=2, beta=1)


def params(**inpainting):
    return parse_params(tiny_params(inpainting={**SETTINGS, **inpainting}))


def photos(count=2, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, HEIGHT, WIDTH, 3), dtype=np.uint8)


def batch(holes=HOLES):
    return inpainting_batch(photos(len(holes)), holes, (100, 100, 100), "cpu")


def hand_masks():
    """M^E_j written out by hand for HOLES, q = 2, α = 2 px, β = 1 px, clamped to 24x22:
    hole 0 (5, 4, 9, 8): j=0 rows 4:8 cols 5:9; j=1 rows 3:9 cols 3:11; j=2 rows 2:10 cols 1:13.
    hole 1 (0, 0, 4, 3) at the corner: j=1 rows 0:4 cols 0:6; j=2 rows 0:5 cols 0:8."""
    masks = torch.zeros(3, 2, 1, HEIGHT, WIDTH)
    for j, (rows, cols) in enumerate([((4, 8), (5, 9)), ((3, 9), (3, 11)), ((2, 10), (1, 13))]):
        masks[j, 0, :, rows[0]:rows[1], cols[0]:cols[1]] = 1
    for j, (rows, cols) in enumerate([((0, 3), (0, 4)), ((0, 4), (0, 6)), ((0, 5), (0, 8))]):
        masks[j, 1, :, rows[0]:rows[1], cols[0]:cols[1]] = 1
    return masks


def modules(plugins, kind):
    return [m for p in plugins for m in p.modules() if isinstance(m, kind)]


#---------------------------------------------------------------------------------------------
# (a) the authors' reading: one shared trunk over the expanded-mask images, one logit


def test_the_authors_reading_replaces_the_local_discriminator_and_adds_no_amex_one():
    _, plugins = build_gl("gl_amex", params(), HEIGHT, WIDTH, "authors")
    assert [p.name for p in plugins] == ["reconstruction", "global_amex"]
    assert isinstance(plugins[1], ExpandedContextLoss)
    assert not any(isinstance(p, (GlobalLocalLoss, AMExLoss)) for p in plugins)
    assert not modules(plugins, ContextDiscriminator) and not modules(plugins, PatchDiscriminator)
    d = plugins[1].discriminator
    assert isinstance(d, ExpandedContextDiscriminator)
    trunks = modules(plugins, _Trunk)
    assert trunks == [d.global_trunk, d.local_trunk]  # exactly one local trunk for all j
    assert d.global_trunk.convs[0].in_channels == 3  # the completed photo
    assert d.local_trunk.convs[0].in_channels == 4   # photo × M^E_j, and M^E_j
    ndf = params().inpainting.ndf
    assert d.head.in_features == 16 * ndf * (1 + 3) and d.head.out_features == 1  # global + q+1
    # both readings share GL's phases: the discriminator phase trains the one D
    assert gl_phases(2, 2, plugins)[1].discriminator == ("global_amex",)


def test_the_logit_is_the_head_over_the_global_and_the_shared_trunk_on_each_masked_image():
    torch.manual_seed(0)
    d = ExpandedContextDiscriminator(HEIGHT, WIDTH, q=2, alpha=2, beta=1, ndf=4,
                                     global_layers=2, local_layers=2)
    image = torch.rand(2, 3, HEIGHT, WIDTH) * 2 - 1
    assert torch.equal(d.masks(HOLES, image), hand_masks())
    expected = d.head(torch.cat([d.global_trunk(image)] + [
        d.local_trunk(torch.cat([image * m, m], 1)) for m in hand_masks()], 1))
    logits = d(image, HOLES)
    assert logits.shape == (2, 1)
    torch.testing.assert_close(logits, expected, rtol=0, atol=0)


def test_the_shared_trunk_sees_the_expanded_ring_but_nothing_outside_the_largest_expansion():
    torch.manual_seed(0)
    d = ExpandedContextDiscriminator(HEIGHT, WIDTH, q=2, alpha=2, beta=1, ndf=4,
                                     global_layers=2, local_layers=2).eval()
    image = torch.rand(2, 3, HEIGHT, WIDTH) * 2 - 1

    def local(picture):
        return [d.local_trunk(torch.cat([picture * m, m], 1)) for m in d.masks(HOLES, picture)]

    ring, outside = image.clone(), image.clone()
    ring[0, :, 3, 3] += 1.0       # inside M^E_1 and M^E_2 of hole 0, outside the hole itself
    outside[0, :, 15, 20] += 1.0  # outside every expansion of hole 0
    base, with_ring, with_outside = local(image), local(ring), local(outside)
    assert torch.equal(with_ring[0], base[0])           # j = 0: the hole only
    assert not torch.equal(with_ring[1][0], base[1][0])  # j = 1 sees the ring pixel
    assert not torch.equal(with_ring[2][0], base[2][0])
    for j in range(3):
        assert torch.equal(with_outside[j], base[j])   # the local part never sees it ...
    assert not torch.equal(d(outside, HOLES), d(image, HOLES))  # ... the global trunk does


def test_the_authors_terms_are_gl_bce_on_the_one_logit_weighted_alpha():
    torch.manual_seed(0)
    generator, plugins = build_gl("gl_amex", params(), HEIGHT, WIDTH, "authors")
    b = batch()
    generated = generator(b.condition)
    fused = b.fuse(generated)
    loss = plugins[1]
    with torch.no_grad():
        fake_logit, real_logit = loss.discriminator(fused, HOLES), loss.discriminator(b.target,
                                                                                       HOLES)
    softplus = F.softplus  # BCE from logits: real -> log(1 + e^-x), fake -> log(1 + e^x)
    g_terms = loss.generator_terms(b, generated, fused)
    d_terms = loss.discriminator_terms(b, generated, fused)
    assert set(g_terms) == {"G_adv"} and set(d_terms) == {"D_fake", "D_real"}
    torch.testing.assert_close(g_terms["G_adv"], 0.5 * softplus(-fake_logit).mean())
    torch.testing.assert_close(d_terms["D_fake"], softplus(fake_logit).mean())
    torch.testing.assert_close(d_terms["D_real"], softplus(-real_logit).mean())
    # λ4 does not enter the authors' reading (the expansions are inside the one logit)
    torch.manual_seed(0)
    generator3, plugins3 = build_gl("gl_amex", params(lambda_amex=7.0), HEIGHT, WIDTH, "authors")
    generated3 = generator3(b.condition)
    torch.testing.assert_close(plugins3[1].generator_terms(b, generated3, b.fuse(generated3)),
                               g_terms)


def test_the_authors_discriminator_learns_in_the_discriminator_phase_only_it(tmp_path):
    torch.manual_seed(0)
    generator, plugins = build_gl("gl_amex", params(), HEIGHT, WIDTH, "authors")
    before_g = [p.detach().clone() for p in generator.parameters()]
    before_d = [p.detach().clone() for p in plugins[1].parameters()]

    class Task:
        def __len__(self):
            return 1

        def epoch(self, epoch, device):
            yield batch()

    trainer.train(generator=generator, losses=plugins, task=Task(), epochs=1, lr=1e-2,
                  betas=(0.9, 0.999), device=torch.device("cpu"), out_dir=str(tmp_path),
                  progress=False, phases=(gl_phases(0, 1, plugins)[0],))
    assert all(torch.equal(a, b) for a, b in zip(before_g, generator.parameters()))
    after = dict(plugins[1].named_parameters())
    changed = {name for (name, _), before in zip(plugins[1].named_parameters(), before_d)
               if not torch.equal(before, after[name])}
    assert "discriminator.local_trunk.convs.0.weight" in changed  # the shared trunk learns
    assert "discriminator.global_trunk.convs.0.weight" in changed


#---------------------------------------------------------------------------------------------
# (b) our reading (the default) is what the code gave before the switch


def test_our_reading_is_the_default_and_unchanged():
    # values the code gave before amex_reading existed (commit db1c741), same seed and inputs
    pinned = {"D_amex_fake": 0.2000955194234848, "D_amex_real": 2.3561620712280273,
              "D_fake": 0.6887966990470886, "D_real": 0.6874146461486816,
              "G_adv": 0.3489595949649811, "G_amex": 4.690773963928223,
              "G_rec": 0.4510270655155182}
    p = params()
    assert p.inpainting_rows["gl-amex-facade"].amex_reading == "ours"
    images = photos()
    b = inpainting_batch(images, [(2, 2, 12, 11), (10, 8, 22, 20)], (100, 100, 100), "cpu")
    for reading in ({}, {"reading": "ours"}):
        torch.manual_seed(0)
        generator, plugins = build_gl("gl_amex", p, HEIGHT, WIDTH, **reading)
        assert [x.name for x in plugins] == ["reconstruction", "global_local", "amex"]
        assert plugins[2].lambda_mex == pytest.approx(0.5 * 3.0)
        out = generator(b.condition)
        fused = b.fuse(out)
        terms = {}
        for plugin in plugins:
            terms.update(plugin.generator_terms(b, out, fused))
            terms.update(plugin.discriminator_terms(b, out, fused))
        assert {k: float(v.detach()) for k, v in terms.items()} == pytest.approx(pinned, rel=1e-5)


#---------------------------------------------------------------------------------------------
# (c) params


@pytest.mark.parametrize("row, message", [
    ({"loss": "gl_amex", "amex_reading": "author"}, "'author' not allowed (ours or authors)"),
    ({"loss": "gl_amex", "amex_reading": 1}, "1 is not a string"),
    ({"loss": "gl", "amex_reading": "authors"}, "only gl_amex rows have an A-MEx reading"),
])
def test_a_bad_reading_is_one_error_line_naming_the_key(row, message):
    raw = tiny_params(inpainting_rows={"gl-amex-facade": row})
    with pytest.raises(ParamsError) as error:
        parse_params(raw)
    text = str(error.value)
    assert text.startswith("inpainting_rows.gl-amex-facade.amex_reading: ") and message in text
    assert "\n" not in text


def test_the_shipped_params_have_both_readings():
    for name in ("params.yaml", "params_paper.yaml"):
        with open(os.path.join(os.path.dirname(__file__), "..", name)) as f:
            rows = yaml.safe_load(f)["inpainting_rows"]
        assert rows["gl-amex-facade"] == {"loss": "gl_amex"}  # unchanged: today's reading
        # the authors' reading also divides L_rec as their code does (issue 34)
        assert rows["gl-amex-authors-facade"] == {"loss": "gl_amex", "amex_reading": "authors",
                                                  "rec_divisor": "image"}


def test_a_run_records_the_resolved_reading(tmp_path):
    raw = tiny_params(seeds=[0], train={"checkpoint_every": 1},
                      inpainting={**SETTINGS, "epochs": 1, "completion_epochs": 0,
                                  "discriminator_epochs": 0})
    p = parse_params(raw)
    ip = p.inpainting
    data = prepare_tiny_facades(ip, str(tmp_path / "data"))
    recorded = {}
    for row in ("gl-amex-authors-facade", "gl-facade"):
        out, live = tmp_path / "models" / row, tmp_path / "live" / row
        train_row(p, row, data, str(out), str(live), progress=False)
        summary = json.loads((out / "train_summary.json").read_text())
        logged = yaml.safe_load((live / "params.yaml").read_text())
        assert summary["amex_reading"] == logged["amex_reading"]
        recorded[row] = summary["amex_reading"]
        fingerprint = torch.load(checkpoints.checkpoint_paths(str(out))[0],
                                 weights_only=False)["fingerprint"]
        assert f'"amex_reading": "{recorded[row]}"' in fingerprint  # resumes only its own
    assert recorded == {"gl-amex-authors-facade": "authors", "gl-facade": "none"}


#---------------------------------------------------------------------------------------------
# Table 3's report names each row's reading and compares the readings


def test_table3_names_the_reading_of_each_row_and_pairs_the_readings():
    import pandas as pd

    from pipeline.evaluation.reports.inpainting_tables import inpainting_differences
    from pipeline.evaluation.reports.paper_values import (PAPER_TABLE3, table3_paper,
                                                          table3_readings)
    rows = params().inpainting_rows
    text = table3_readings(rows)
    assert "`gl-amex-facade`: GL+A-MEx, our reading" in text
    assert "`gl-amex-authors-facade`: GL+A-MEx, the authors' code's reading" in text
    assert "`gl-facade`: GL " in text and table3_readings({}) == ""
    paper = table3_paper(rows)
    assert paper["gl-amex-authors-facade"] == PAPER_TABLE3["gl-amex-facade"]  # both readings
    assert paper["gl-facade"] == PAPER_TABLE3["gl-facade"]                    # of one paper row
    l1 = {"gl-facade": [30, 40], "gl-amex-facade": [28, 36], "gl-amex-authors-facade": [25, 33]}
    scores = pd.DataFrame([{"row": row, "seed": 0, "image": f"facade_{i}", "repeat": 0,
                            "ssim": 1 - v / 100, "l1": v} for row, values in l1.items()
                           for i, v in enumerate(values)])
    frame = inpainting_differences(scores, rows, "facade", ("l1",))
    differences = dict(zip(frame["comparison"], frame["difference"]))
    assert differences == pytest.approx({"gl-amex-facade − gl-facade": -3.0,
                                         "gl-amex-authors-facade − gl-facade": -6.0,
                                         "gl-amex-authors-facade − gl-amex-facade": -3.0})
