import json

import numpy as np
import pytest

from hitchhiker import bench


def test_bench_cli_writes_flat_json_with_preset_and_hardware(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--preset", "smoke", "--only", "world", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["preset"] == "smoke" and isinstance(data["hardware"], str) and data["hardware"]
    figures = {k: v for k, v in data.items() if k not in ("preset", "hardware")}
    assert all("." in k and isinstance(v, float) for k, v in figures.items())
    # what the world promises, measured
    assert data["world.reader_accuracy"] == 1.0
    assert data["world.reader_heading_accuracy"] == 1.0
    assert data["world.reader_validity_real"] == 1.0
    assert data["world.reader_validity_noise"] < 0.2
    assert data["world.steps_per_s"] > 0
    table = capsys.readouterr().out
    assert "| figure | value | goal |" in table and "world.steps_per_s" in table


def test_unknown_stage_is_refused():
    with pytest.raises(ValueError, match="world"):
        bench.run("smoke", only=["nope"])


def test_every_registered_stage1_row_is_measured():
    """Each row the README table promises is produced (smoke-sized models, fresh in CI)."""
    results = bench.run("smoke", only=["stage1"])
    rows = next(rows for stage, _, rows in bench.stages() if stage == "stage1")
    missing = [r.name for r in rows if r.name not in results]
    assert not missing, f"registered but not measured: {missing}"
    assert 0.0 <= results["stage1.tokenizer.codebook_usage"] <= 1.0
    assert results["stage1.ar.ms_per_image_b1"] > 0


def test_runs_of_one_machine_merge_and_others_are_refused(tmp_path, capsys):
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    a.write_text(json.dumps({"preset": "cpu", "hardware": "X", "world.steps_per_s": 5000.0}))
    b.write_text(json.dumps({"preset": "cpu", "hardware": "X", "world.reader_accuracy": 1.0}))
    c.write_text(json.dumps({"preset": "gpu", "hardware": "X", "world.reader_accuracy": 1.0}))
    assert bench.main(["--from-json", str(a), str(b)]) == 0
    table = capsys.readouterr().out
    assert "5,000" in table and "world.reader_accuracy" in table
    with pytest.raises(ValueError, match="preset"):
        bench.merge([str(a), str(c)])


@pytest.mark.parametrize("stage", ["stage2", "stage3", "stage4"])
def test_every_registered_row_of_the_later_stages_is_measured(stage):
    """Smoke-sized models, fresh in CI: the README rows and the recipes' figure names agree."""
    results = bench.run("smoke", only=[stage])
    rows = next(rows for s, _, rows in bench.stages() if s == stage)
    # smoke rollouts are 16 steps long: longer-horizon rows exist from the cpu preset on
    names = [r.name.replace("_32", "_16") for r in rows if not r.name.endswith(("_h32", "_h64"))]
    missing = [name for name in names if name not in results]
    assert not missing, f"registered but not measured: {missing}"


def test_each_stage_package_owns_its_rows_in_table_order():
    """The rows live in the stage packages' benchmark modules; the table order is fixed by
    STAGE_MODULES, whichever stage module was imported first."""
    import hitchhiker.unified.benchmark  # noqa: F401  (imported first on purpose)

    registered = bench.stages()
    assert [s for s, _, _ in registered] == [
        "world",
        "stage1",
        "stage2",
        "stage3",
        "stage4",
        "stage5",
    ]
    for stage, fn, rows in registered:
        assert fn.__module__ == bench.STAGE_MODULES[stage]
        assert rows and all(r.name.startswith(f"{stage}.") for r in rows)
    names = [r.name for _, _, rows in registered for r in rows]
    assert len(names) == len(set(names)), "a figure name is registered twice"


def test_a_stage_cannot_register_twice():
    bench.stages()
    with pytest.raises(ValueError, match="twice"):
        bench.figures("world", bench.Figure("world.x", "x"))(lambda preset: {})


def test_the_command_line_module_uses_the_one_registry(tmp_path):
    """`python -m hitchhiker.bench` runs the file as __main__, a second copy of the module; the
    stage modules register into hitchhiker.bench, and the table must still show their rows."""
    import subprocess
    import sys

    data = tmp_path / "a.json"
    data.write_text(json.dumps({"preset": "cpu", "hardware": "X", "world.steps_per_s": 5000.0}))
    out = subprocess.run(
        [sys.executable, "-m", "hitchhiker.bench", "--from-json", str(data)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "**world**" in out and "`world.steps_per_s`" in out and "5,000" in out


def test_every_registered_stage5_row_is_measured_where_defined():
    """Stage V at smoke size: every row is produced except those a smoke run cannot define (a
    ratio or a precision over a zero return, the temperature its one-entry sweep skips, the dream's
    clearing of picks when the shipped agent picked nothing); the learning curve's snapshots are
    registered at the cpu preset's update counts, and a smoke run has its own (and its own seed
    study's)."""
    results = bench.run("smoke", only=["stage5"])
    rows = next(rows for s, _, rows in bench.stages() if s == "stage5")
    undefined = ("_over_", "_recall", "_precision", ".t0.5.", ".curve.u", ".seeds.")
    undefined += (".untuned_seeds.s2.", ".untuned_seeds.over_")  # smoke: seeds 0, 1; may be 0/0
    for name in ("agent", "agent_walls"):  # the untuned seed study's smoke seeds
        got = [results[f"stage5.{name}.untuned_seeds.s{s}.real_return"] for s in (0, 1)]
        assert min(got) <= results[f"stage5.{name}.untuned_seeds.real_return"] <= max(got)
    for n in (1, 2):  # the smoke preset's curve: a snapshot after each of its 2 updates
        for k in ("real_return", "real_return_ci95", "dream_return", "entropy", "value_loss"):
            assert f"stage5.agent.curve.u{n:03d}.{k}" in results
        seeds = "stage5.agent.seeds"  # and its seed study: seeds 0 and 1, both critics
        for setting in ("shipped", "cleanrl"):
            got = [results[f"{seeds}.{setting}.s{s}.u{n:03d}.real_return"] for s in (0, 1)]
            assert results[f"{seeds}.{setting}.u{n:03d}.mean"] == pytest.approx(np.mean(got))
        curve = results[f"stage5.agent.curve.u{n:03d}.real_return"]  # the recipe's own run
        assert results[f"{seeds}.shipped.s0.u{n:03d}.real_return"] == curve
    assert {"stage5.agent.seeds.s0.real_trained", "stage5.agent.seeds.s1.real_trained"} <= set(
        results
    )
    loss = {
        s: results[f"stage5.agent.seeds.{s}.s1.u002.value_loss"] for s in ("shipped", "cleanrl")
    }
    assert loss["shipped"] != loss["cleanrl"]  # the critic's settings reach the training
    if results["stage5.agent.loop.picks"] == 0:  # no pick to check the dream against
        undefined += ("picks_cleared",)
    missing = [
        r.name for r in rows if r.name not in results and not any(u in r.name for u in undefined)
    ]
    assert not missing, f"registered but not measured: {missing}"
    loop = "stage5.agent.loop"
    assert results[f"{loop}.seeds"] == 2
    for r in (1, 2):
        assert results[f"{loop}.r{r}.seed_min"] <= results[f"{loop}.r{r}.real_return"]
        assert results[f"{loop}.r{r}.real_return"] <= results[f"{loop}.r{r}.seed_max"]
