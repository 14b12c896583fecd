"""A worker's metrics directory: its own by default, wiped only by the worker that holds it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from deploy_agent.worker.metrics_dir import MetricsDirInUse, claim_metrics_dir, default_metrics_dir


class TestDefaultDirectory:
    @pytest.mark.parametrize(
        ("a", "b"),
        [
            pytest.param(("w@h", "deploy", 9100), ("w@h", "deploy", 9101), id="another metrics port"),
            pytest.param(("w@h", "deploy", None), ("w@h", "builds", None), id="another queue"),
            pytest.param(("a@h", "deploy", 9100), ("b@h", "deploy", 9100), id="another node name"),
        ],
    )
    def test_workers_that_differ_in_node_queue_or_port_get_different_directories(
        self, a: tuple[str, str, int | None], b: tuple[str, str, int | None], tmp_path: Path
    ) -> None:
        assert default_metrics_dir(*a, root=tmp_path) != default_metrics_dir(*b, root=tmp_path)

    def test_the_directory_is_one_safe_name_under_the_temp_root_with_the_host_name_filled_in(
        self, tmp_path: Path
    ) -> None:
        path = default_metrics_dir("deploy-agent@%h", "de/ploy", 9100, root=tmp_path)
        assert path.parent == tmp_path / "deploy-agent-metrics"
        host = socket.gethostname()
        assert path.name == f"deploy-agent_{host}.de_ploy.9100".replace("@", "_")


class TestClaim:
    def test_a_claim_removes_metric_files_earlier_runs_left_and_keeps_other_files(
        self, tmp_path: Path
    ) -> None:
        (tmp_path / "counter_123.db").write_bytes(b"old")
        (tmp_path / "notes.txt").write_text("kept")
        claim = claim_metrics_dir(tmp_path)
        try:
            assert list(tmp_path.glob("*.db")) == []
            assert (tmp_path / "notes.txt").exists()
        finally:
            claim.release()

    def test_a_held_directory_is_refused_naming_the_holder_and_nothing_is_removed(
        self, tmp_path: Path
    ) -> None:
        """The second claim fails while the first is held; the holder's metric files stay."""
        first = claim_metrics_dir(tmp_path)
        (tmp_path / "counter_1.db").write_bytes(b"live")
        try:
            with pytest.raises(
                MetricsDirInUse, match=rf"in use by a running worker \(pid {first_pid(tmp_path)}\)"
            ):
                claim_metrics_dir(tmp_path)
            assert (tmp_path / "counter_1.db").read_bytes() == b"live"
        finally:
            first.release()

    def test_a_released_directory_can_be_claimed_again(self, tmp_path: Path) -> None:
        """A worker that exited (its lock dropped by the kernel) leaves no stale claim behind."""
        claim_metrics_dir(tmp_path).release()
        (tmp_path / "counter_9.db").write_bytes(b"dead")
        claim = claim_metrics_dir(tmp_path)
        claim.release()
        assert not (tmp_path / "counter_9.db").exists()


def first_pid(path: Path) -> str:
    return (path / ".lock").read_text().strip()
