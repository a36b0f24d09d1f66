"""The CSV loss log across interruptions: a run restarted from step 0 starts a new file, a
run resumed at step k keeps rows up to k, and logs with repeated headers still plot."""

from __future__ import annotations

import csv
from pathlib import Path

from freeaction_gym.training.loop import LossLog, plot_loss, read_log


class Bar:
    def set_postfix(self, **kwargs) -> None:
        self.postfix = kwargs


def write_steps(path: Path, steps: range, start_step: int = 0) -> None:
    log = LossLog(path, every=1, extra=("clip_frames",), start_step=start_step)
    for step in steps:
        log.add(step, 1.0 / step, 1e-4, Bar(), 3)
    log.close()


def rows(path: Path) -> list[list[str]]:
    return list(csv.reader(open(path)))


def test_restart_from_step_zero_replaces_the_old_rows(tmp_path):
    path = tmp_path / "log.csv"
    write_steps(path, range(1, 6))
    write_steps(path, range(1, 4))  # interrupted before the first checkpoint, run again
    got = rows(path)
    assert got[0] == ["step", "loss", "lr", "sec_per_step", "clip_frames"]
    assert [r[0] for r in got[1:]] == ["1", "2", "3"]


def test_resume_keeps_rows_up_to_the_checkpoint_and_drops_repeated_steps(tmp_path):
    path = tmp_path / "log.csv"
    write_steps(path, range(1, 8))  # checkpoint at 4, interrupted after step 7
    write_steps(path, range(5, 10), start_step=4)
    got = rows(path)
    assert sum(r[0] == "step" for r in got) == 1
    assert [int(r[0]) for r in got[1:]] == list(range(1, 10))
    assert float(got[3][1]) == 1.0 / 3  # kept rows keep their values
    assert got[3][4] == "3"


def test_logs_with_repeated_headers_are_read_and_plotted(tmp_path):
    (tmp_path / "log.csv").write_text(
        "step,loss,lr,sec_per_step\n20,0.5,1e-4,2.0\nstep,loss,lr,sec_per_step\n"
        "20,0.4,1e-4,2.1\n40,0.3,1e-4,2.2\n"
    )
    assert [(r["step"], r["loss"]) for r in read_log(tmp_path / "log.csv")] == [
        ("20", "0.5"),
        ("20", "0.4"),
        ("40", "0.3"),
    ]
    plot_loss(tmp_path)
    assert (tmp_path / "loss.png").stat().st_size > 1000
    assert read_log(tmp_path / "missing.csv") == []
