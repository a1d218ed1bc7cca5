"""JobSettings: one record of what decides an output's bytes, compared in full by --resume and `genaug run`.

Guards: gen_aug/output/settings.py, gen_aug/synthesis/driver.py
"""

import json

import pytest
from click.testing import CliRunner

from gen_aug.cli import main
from gen_aug.errors import GenaugError
from gen_aug.synthesis.driver import synthesize
from gen_aug.output.manifest import MANIFEST
from gen_aug.synthesis.options import SynthesisOptions
from gen_aug.output.plan import make_plan
from gen_aug.output.settings import FilterSettings, JobSettings, VariantSettings

PLAN = make_plan(("cat", "dog"), n=20, shard_size=8, seed=3)


def test_settings_survive_a_round_trip_through_json():
    judge = FilterSettings(0.9, "builtin:digits", "key", "ab" * 32, {"config": {"steps": 10}})
    sources = VariantSettings("builtin:digits?split=train", "train", "ef" * 32, (5, 5), 2, (0.3, 0.5))
    for settings in (JobSettings(PLAN, "png", "cd" * 32, "cpu", 256),
                     JobSettings(PLAN, "raw", "cd" * 32, "cuda", 8192, judge),
                     JobSettings(PLAN, "parquet", "cd" * 32, "cpu", 256, variants=sources)):
        record = json.loads(json.dumps(settings.to_dict()))
        assert JobSettings.from_dict(record, "test") == settings
        assert not settings.differences(JobSettings.from_dict(record, "test"))


def test_differences_name_every_field_that_differs():
    base = JobSettings(PLAN, "parquet", "cd" * 32, "cpu", 256)
    other = JobSettings(make_plan(("cat", "dog"), n=21, shard_size=8, seed=3), "parquet", "cd" * 32, "cuda", 8192)
    assert base.differences(other) == ["plan", "device", "generation_chunk"]
    assert base.differences(base) == []


@pytest.mark.parametrize("variants", [{"data": "x"}, "x", {"data": "x", "split": "train", "data_sha256": "0",
                                                            "source_counts": [], "per_image": 1, "strengths": [0.5]},
                                      {"data": "x", "split": "train", "data_sha256": "0", "source_counts": [3],
                                       "per_image": 1, "strengths": [1.5]}])
def test_a_malformed_variants_record_is_an_error_naming_it(variants):
    record = {**JobSettings(PLAN, "parquet", "cd" * 32, "cpu", 256).to_dict(), "variants": variants}
    with pytest.raises(GenaugError, match="^somewhere: variants .* \\(expected the sources, count and strengths"):
        JobSettings.from_dict(record, "somewhere")


def test_a_record_without_a_plan_is_an_error_naming_it():
    with pytest.raises(GenaugError, match="somewhere: not a genaug plan"):
        JobSettings.from_dict({"format": "parquet"}, "somewhere")


@pytest.mark.ray
def test_resume_refuses_an_output_recorded_on_another_device(ray_local, digits_snapshot, tmp_path):
    out = tmp_path / "out"
    options = SynthesisOptions(digits_snapshot, str(out), n=30, shard_size=10, workers=1, progress=False)
    synthesize(options)
    manifest = json.loads((out / MANIFEST).read_text())
    manifest.update(device="cuda", generation_chunk=8192)  # as a GPU worker would have recorded it
    (out / MANIFEST).write_text(json.dumps(manifest))
    before = sorted(p.name for p in out.iterdir())
    result = CliRunner().invoke(main, ["synthesize", "--model", digits_snapshot, "--out", str(out), "--n", "30",
                                       "--shard-size", "10", "--workers", "1", "--resume"])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "the job there had other device, generation_chunk" in result.output
    assert sorted(p.name for p in out.iterdir()) == before


@pytest.mark.ray
def test_resume_over_a_damaged_shard_list_rewrites_the_shards_and_verifies(ray_local, digits_snapshot, tmp_path):
    from gen_aug.output.verification import verify

    out = tmp_path / "out"
    options = SynthesisOptions(digits_snapshot, str(out), n=30, shard_size=10, workers=1, progress=False)
    first = synthesize(options)
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["shards"] = 5  # edited by hand or cut short: the records are gone, the shards and settings are not
    (out / MANIFEST).write_text(json.dumps(manifest))
    again = synthesize(SynthesisOptions(digits_snapshot, str(out), n=30, shard_size=10, workers=1, progress=False,
                                        resume=True))
    assert again["images_written"] == 30 and verify(str(out)).ok
    assert [s["sha256"] for s in again["shards"]] == [s["sha256"] for s in first["shards"]]
