"""rollout.decoding_steps_sweep: quality and speed per number of decoding steps, exactly."""

import pytest

from hitchhiker.interactive import rollout
from hitchhiker.interactive.truth import CopyLastFrame, SimulatorRollout, truth_set


class StepsEngine(SimulatorRollout):
    """Perfect at two or more decoding steps; at one it freezes the last frame it was given."""

    def __init__(self):
        super().__init__()
        self.decode_steps = 3
        self.seen_steps = []

    def rollout(self, context_frames, context_actions, actions, seeds=None):
        self.seen_steps.append(self.decode_steps)
        if self.decode_steps == 1:
            return CopyLastFrame().rollout(context_frames, context_actions, actions)
        return super().rollout(context_frames, context_actions, actions, seeds=seeds)


def test_sweep_scores_each_setting_and_restores_the_engine():
    truth = truth_set("test", episodes=2, context=2, horizon=3)
    engine = StepsEngine()
    table = rollout.decoding_steps_sweep(engine, truth, steps=(1, 2))
    assert engine.decode_steps == 3 and set(engine.seen_steps) == {1, 2}
    assert table["steps"].tolist() == [1, 2]
    # one step freezes frame a as the prediction of frame a+1: exactly the share of unchanged tiles
    frozen = float((truth.tiles[:, :-1] == truth.tiles[:, 1:]).mean())
    assert table["tile_accuracy"][0] == pytest.approx(frozen)
    assert table["tile_accuracy"][1] == 1.0
    assert table["psnr"][1] == pytest.approx(100.0)  # identical frames: the clipped maximum
    assert table["psnr"][0] < table["psnr"][1]
    assert (table["fps"] > 0).all() and all(len(v) == 2 for v in table.values())


def test_sweep_refuses_engines_without_decoding_steps():
    truth = truth_set("test", episodes=2, context=2, horizon=3)
    with pytest.raises(ValueError, match="decode_steps"):
        rollout.decoding_steps_sweep(CopyLastFrame(), truth)
    with pytest.raises(ValueError, match="steps"):
        rollout.decoding_steps_sweep(StepsEngine(), truth, steps=(0,))
