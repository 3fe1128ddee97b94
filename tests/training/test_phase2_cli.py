"""`gwm train phase2`: every option documented; a whole run on a tiny local diffusers folder, then a resume."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from tests.training.phase2_tiny import (
    save_tiny_pipeline,
    tiny_watermark_model,
    write_subject_images,
)
from training.phase2.cli import build_parser, main, parse_args
from training.phase2.pipeline import Phase2Config, Phase2Run, split_prompts


def test_help_documents_every_option(capsys):
    parser = build_parser()
    assert parser.prog == "gwm train phase2"
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    for action in options:
        assert action.help and len(action.help) > 10, action.option_strings
        assert action.option_strings[0] in text
    reachable = {a.dest for a in options} | {"method_overrides"}  # --override fills method_overrides
    missing = {f.name for f in fields(Phase2Config)} - reachable
    assert not missing, f"Phase2Config fields without an option: {missing}"


def test_parse_args_maps_options_and_overrides():
    config, _ = parse_args(["--base", "org/model", "--images", "x", "--methods", "lora", "dreambooth",
                            "--override", "lora.train_steps=300", "--override", "dreambooth.learning_rate=2e-6",
                            "--watermark-fraction", "0.25"])
    assert config.methods == ("lora", "dreambooth")
    assert config.personalize_config("lora").resolved_steps() == 300
    assert config.personalize_config("dreambooth").resolved_learning_rate() == 2e-6
    assert config.personalize_config("dreambooth").resolved_steps() == 400
    assert config.tag == "_wf0.25"
    augmented = config.personalize_config("lora")
    assert augmented.random_flip and not augmented.center_crop and not config.paired_seeds  # the defaults
    before, _ = parse_args(["--base", "b", "--images", "x", "--no-random-flip", "--center-crop", "--paired-seeds"])
    plain = before.personalize_config("textual_inversion")
    assert not plain.random_flip and plain.center_crop and before.paired_seeds  # what runs before issue 14 did
    # X_w at another budget is other images: its models, images and detectors get their own folders.
    assert Phase2Config(base="b", images_dir="x").tag == ""
    assert Phase2Config(base="b", images_dir="x", p=0.01).tag == "_p0.01"
    with pytest.raises(SystemExit):
        parse_args(["--base", "b", "--images", "x", "--override", "nonsense"])


def test_split_prompts_are_disjoint_and_seeded():
    prompts = [f"p{i}" for i in range(24)]
    train, heldout, validation = split_prompts(prompts, 12, 8, seed=0, n_validation=4)
    assert (len(train), len(heldout), len(validation)) == (12, 8, 4)
    assert len(set(train) | set(heldout) | set(validation)) == 24
    assert split_prompts(prompts, 12, 8, seed=0, n_validation=4) == (train, heldout, validation)
    assert split_prompts(prompts, 12, 8, seed=0)[:2] == (train, heldout)  # validation does not move the others
    with pytest.raises(ValueError):
        split_prompts(prompts, 15, 8, seed=0, n_validation=4)


def test_a_split_reads_only_this_runs_prompts_and_seeds(tmp_path):
    """Images an earlier run left in a synth folder (other prompts or seeds) are neither trained on nor scored."""
    from training.phase2.synthesize import RECORDS_FILE

    write_subject_images(tmp_path / "X", n=2, size=32)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(f"prompt {i} of <sks>" for i in range(6)) + "\n")
    config = Phase2Config(base="b", images_dir=str(tmp_path / "X"), out=str(tmp_path / "run"), prompts=str(prompts),
                          n_train_prompts=2, n_validation_prompts=1, n_heldout_prompts=2, images_per_prompt=2)
    run = Phase2Run(config)
    folder = run.synth_dir("lora", "clean", "train")
    folder.mkdir(parents=True)
    mine = [(prompt, seed) for prompt, own in zip(run.train_prompts, run.train_seeds, strict=True) for seed in own]
    stale = [(run.train_prompts[0], 999), (run.heldout_prompts[0], run.train_seeds[0][0])]
    with open(folder / RECORDS_FILE, "w") as records:
        for index, (prompt, seed) in enumerate(mine + stale):
            (folder / f"img{index}.png").write_bytes(b"png")
            records.write(json.dumps({"file": f"img{index}.png", "prompt": prompt, "seed": seed, "steps": 2,
                                      "guidance": 1.0, "resolution": 32}) + "\n")
    (folder / "untracked.png").write_bytes(b"png")
    assert sorted(p.name for p in run.split_images("lora", "clean", "train")) == [f"img{i}.png" for i in range(4)]
    clean, marked = run.sets_of(["lora"], "train")
    assert len(clean) == 4 and marked == []  # nothing synthesized for the watermarked model yet


@pytest.mark.slow
def test_whole_run_on_a_local_diffusers_folder_then_resume(tmp_path, capsys):
    base = save_tiny_pipeline(tmp_path / "base")
    write_subject_images(tmp_path / "X", n=3, size=40)
    model = tiny_watermark_model(tmp_path / "wm")
    (tmp_path / "key.bin").write_bytes(bytes(range(32)))
    argv = ["--base", str(base), "--images", str(tmp_path / "X"), "--out", str(tmp_path / "run"),
            "--methods", "lora", "textual_inversion", "--model", str(model), "--key-file", str(tmp_path / "key.bin"),
            "--resolution", "32", "--train-steps", "2", "--synth-steps", "2", "--n-train-prompts", "2",
            "--n-heldout-prompts", "2", "--n-validation-prompts", "1", "--images-per-prompt", "2",
            "--heldout-images-per-prompt", "2",
            "--finetune-steps", "4", "--finetune-batch-size", "4", "--device", "cpu", "--checkpoint-every", "0",
            "--override", "textual_inversion.learning_rate=0.01", "--override", "lora.validation_images=0",
            "--override", "textual_inversion.validation_images=0"]
    assert main(argv) == 0
    out = tmp_path / "run"
    report = json.loads((out / "report.json").read_text())
    assert set(report["phase1_detector"]) == set(report["phase2_detector"]) == {"lora", "textual_inversion"}
    assert set(report["cross_method"]) == {"lora", "textual_inversion", "joint"}
    assert report["cross_method"]["lora"]["textual_inversion"]["n"] == 8  # 2 held-out prompts x 2 seeds x S, S_w
    assert report["subject"]["n_watermarked"] == 3 and report["subject"]["mean_lpips"] <= 0.05
    assert report["personalizations"]["lora"]["marked"]["steps_done"] == 2
    assert "key" not in json.dumps(report["config"]).lower().replace("key_file", "")
    assert bytes(range(32)).hex() not in (out / "report.json").read_text()
    assert "Phase 1 detector vs Phase 2 detector" in (out / "report.md").read_text()
    heldout = {json.loads(line)["prompt"] for line in
               (out / "synth" / "lora" / "marked" / "heldout" / "records.jsonl").read_text().splitlines()}
    assert heldout == set(report["prompts"]["heldout"]) and not heldout & set(report["prompts"]["train"])
    validation = {json.loads(line)["prompt"] for line in
                  (out / "synth" / "lora" / "clean" / "validation" / "records.jsonl").read_text().splitlines()}
    assert validation == set(report["prompts"]["validation"]) and len(validation) == 1
    assert not validation & (heldout | set(report["prompts"]["train"]))
    seeds = [json.loads(line)["seed"] for split in ("train", "validation", "heldout") for line in
             (out / "synth" / "lora" / "clean" / split / "records.jsonl").read_text().splitlines()]
    assert len(seeds) == 2 * 2 + 1 * 2 + 2 * 2 and len(set(seeds)) == len(seeds)  # no seed used twice
    marked_seeds = {json.loads(line)["seed"] for split in ("train", "validation", "heldout") for line in
                    (out / "synth" / "lora" / "marked" / split / "records.jsonl").read_text().splitlines()}
    assert len(marked_seeds) == len(seeds) and not marked_seeds & set(seeds)  # S_w unpaired with S
    for method in ("lora", "textual_inversion"):
        verdict = report["verdict"][method]
        assert verdict["marked"]["n"] == verdict["clean"]["n"] == 4          # each model's held-out images
        assert all(0 < v["p_value"] <= 1 and v["alpha"] == 0.001 for v in verdict.values())
    assert "Model-level verdict" in (out / "report.md").read_text()
    assert set(report["selection"]) == {"lora", "textual_inversion", "joint"}
    assert all(0 <= s["chosen_step"] <= 4 for s in report["selection"].values())
    assert "Validation: 1 more prompt with seeds of their own" in (out / "report.md").read_text()
    assert "Phase 2 report" in capsys.readouterr().out

    config, _ = parse_args(argv)
    stages = [p.payload["stage"] for p in Phase2Run(config).run() if p.payload and "sub" in p.payload]
    assert not [s for s in stages if s.startswith(("personalize", "synthesize", "fine-tune"))]  # all cached


    # --install: the joint detector goes into the profile only if it beats the current one on held-out images.
    from gwm_desktop.core.profiles import ProfileStore
    from training.phase2.cli import install_into_profile

    profile = ProfileStore(tmp_path / "home").create("subject", key=bytes(range(32)))
    lines = install_into_profile(Phase2Run(config), profile)
    scores = [None if "cannot be evaluated" in line else float(line.split()[3]) for line in lines[:2]]
    better = scores[1] is not None and (scores[0] is None or scores[1] > scores[0])
    assert lines[-1].startswith("installed the joint detector" if better else "did not install the joint")
    assert (profile.detector_folder is not None) == better and not profile.can_roll_back_detector()
    if better:  # the same detector again is not better than itself: nothing changes
        assert install_into_profile(Phase2Run(config), profile)[-1].startswith("did not install")
