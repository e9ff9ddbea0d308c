"""TwoSM rows (Table 2, params `twosm_rows`): the two-stream model of Hong et al. 2018
(pipeline.models.twosm) redraws the box of a label map; TwoSM's objective, plus λ4·L_MEx / λ4·L_A-MEx
(loss mex / amex) on its context stream, the same plug-ins as the structure rows on the label
channels; observation local (TwoSM) | full (TwoSM+Full). Trained and scored like a structure
row (same boxes, test set and floors); its labels come from its streams, not a colour
decode."""
from __future__ import annotations

from pipeline.config.loading import to_dict
from pipeline.config.sections import Params, Row
from pipeline.data.sets import get_spec
from pipeline.data.inputs import condition_channels
from pipeline.evaluation.evaluation import twosm_edited_maps
from pipeline.kinds.parts import expansion_loss, highest_expansion
from pipeline.config.losses import expands
from pipeline.kinds.structure import StructureKind
from pipeline.models.map_edits import twosm_box
from pipeline.models.twosm import TwoStreamGenerator, TwoStreamLoss
from pipeline.models.twosm_views import Observation, TwoStreamTask


class TwoSMKind(StructureKind):
    name = "twosm"
    sections = ("twosm_rows",)
    no_vgg = "none (TwoSM: no perceptual loss)"
    # its labels come from its streams, with no colour round trip
    edited_maps = staticmethod(twosm_edited_maps)
    edit_box = staticmethod(twosm_box)   # at the map's own resolution

    def networks(self, params: Params, row: Row) -> tuple:
        """(two-stream generator with its `observation`, [TwoSM's objective, λ4·L_(A-)MEx on
        the context stream])."""
        spec = get_spec(row.dataset)
        channels, m, t = condition_channels(spec), params.model, params.twosm
        generator = TwoStreamGenerator(channels, spec.num_labels, m.ngf, m.n_downsampling,
                                       m.n_blocks, norm=t.norm, encoder_skips=t.encoder_skips,
                                       label_rule=t.labels)
        plugins = [TwoStreamLoss(channels, spec.num_labels, ndf=m.ndf, n_layers=m.n_layers_d,
                                 num_d=m.num_d, lambda_gan=t.lambda_gan,
                                 lambda_mask=t.lambda_mask, lambda_context=t.lambda_context,
                                 context_loss=t.context_loss, discriminator=t.discriminator,
                                 mask_gate=t.mask_gate)]
        if expands(row.loss):
            top_level = highest_expansion(params.q_of(row), params.profile_of(row))
            if top_level >= 0:
                plugins.append(expansion_loss(row.loss, channels, top_level, params,
                                              image_channels=spec.num_labels,
                                              channels=slice(1, None)))
        generator.observation = Observation(
            row.observation, t.crop_size, background_boxes=t.background_boxes,
            enlarged_boxes=t.context_loss == "enlarged_box" or t.mask_gate,
            crop_jitter=t.crop_jitter)
        return generator, plugins

    def task(self, params: Params, row: Row, split, boxes: dict, seed: int, generator):
        """EditTask's boxes, flips and order, plus the generator's observation windows."""
        return TwoStreamTask(split, get_spec(row.dataset), boxes, generator.observation,
                             batch_size=params.row_batch_size(self.sections[0], row),
                             flip=params.train.flip, seed=seed)

    def settings(self, params: Params) -> dict:
        return to_dict(params.twosm)

    def model_info(self, params: Params, generator) -> dict:
        observation = generator.observation
        return {"model": to_dict(params.model),
                "twosm": {"num_labels": generator.context_stream[-1].out_channels,
                          "observation": observation.kind,
                          "crop_size": observation.crop_size}}

    def network(self, state: dict):
        m, twosm = state["model"], state["twosm"]
        generator = TwoStreamGenerator(state["in_channels"], twosm["num_labels"], m["ngf"],
                                       m["n_downsampling"], m["n_blocks"])
        generator.observation = Observation(twosm["observation"], twosm["crop_size"])
        return generator
