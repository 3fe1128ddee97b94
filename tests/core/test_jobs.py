"""The one progress-bar loop every command line uses (core.jobs.with_progress)."""

from gwm_desktop.core.jobs import Progress, with_progress


def _staged_job(log: list[str]):
    try:
        for done in range(1, 4):
            yield Progress(done, 3, f"exporting {done}")
        for done in range(1, 3):
            yield Progress(done, 2, f"tuning {done}", {"acc": 0.5 + done / 10})
    finally:
        log.append("cleaned up")


def test_every_record_passes_through_and_the_bar_follows_each_stage(capsys):
    log: list[str] = []
    seen = list(with_progress(_staged_job(log), "job", "it", describe=lambda p: p.message.split()[0],
                              postfix=lambda p: p.payload and {"acc": f"{p.payload['acc']:.2f}"},
                              hide_when_piped=False))
    assert [(p.done, p.total) for p in seen] == [(1, 3), (2, 3), (3, 3), (1, 2), (2, 2)]
    bars = capsys.readouterr().err
    assert "exporting: 100%" in bars and "3/3" in bars
    assert "tuning: 100%" in bars and "2/2" in bars and "acc=0.70" in bars
    assert log == ["cleaned up"]


def test_stopping_early_lets_the_job_clean_up_and_a_pipe_gets_no_bar(capsys):
    log: list[str] = []
    for progress in with_progress(_staged_job(log), "job", "it"):
        if progress.done == 2:
            break
    assert log == ["cleaned up"]
    assert capsys.readouterr().err == ""  # stderr is captured, not a terminal
