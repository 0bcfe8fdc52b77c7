"""Results kept on disk until the server takes them."""

from kolejka.foreman.spool import Spool


def result_dir(path, text):
    path.mkdir()
    (path / "kolejka_result.json").write_text(text)
    return path


def test_it_keeps_results_until_removed_and_across_restarts(tmp_path):
    spool = Spool(tmp_path / "spool")
    first = spool.put("lease-1", "t-1", result_dir(tmp_path / "r1", "{}"))
    spool.put("lease-2", "t-2", result_dir(tmp_path / "r2", "{}"))
    assert not (tmp_path / "r1").exists()
    again = Spool(tmp_path / "spool")
    assert [(s.lease_id, s.task_key) for s in again.pending()] == [
        ("lease-1", "t-1"),
        ("lease-2", "t-2"),
    ]
    assert (first.result_dir / "kolejka_result.json").read_text() == "{}"
    again.remove(first)
    assert [s.lease_id for s in again.pending()] == ["lease-2"]


def test_it_skips_an_entry_a_crash_left_half_written(tmp_path):
    spool = Spool(tmp_path / "spool")
    (tmp_path / "spool" / "lease-9").mkdir()
    assert spool.pending() == []
