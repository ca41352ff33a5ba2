"""JSONL reading never crashes on bad lines; writes are atomic."""

import pytest

from synthforge import io


def test_bad_lines_are_reported_with_line_numbers(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n\n{"b": \n[1, 2]\n\xff\xfe\n{"c": 3}\n')
    lines = list(io.read_jsonl(path))
    assert [(l.lineno, l.row, bool(l.error)) for l in lines] == [
        (1, {"a": 1}, False), (3, None, True), (4, None, True), (5, None, True), (6, {"c": 3}, False)]
    assert "invalid JSON" in lines[1].error
    assert "expected a JSON object, got list" in lines[2].error
    assert "invalid UTF-8" in lines[3].error
    assert lines[1].where == f"{path}:3"


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(io.InputError, match="file not found"):
        list(io.read_jsonl(tmp_path / "missing.jsonl"))


def test_read_rows_names_the_bad_line(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"a": 1}\nnot json\n')
    with pytest.raises(io.InputError, match=r"in\.jsonl:2: invalid JSON"):
        io.read_rows(path)


def test_atomic_write_leaves_nothing_on_crash(tmp_path):
    def rows():
        yield {"a": 1}
        raise RuntimeError("boom")

    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        io.write_jsonl(target, rows())
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_file_md5_matches_dvc_style_hash(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"hello\n")
    assert io.file_md5(path) == "b1946ac92492d2347c6235b4d2611184"


def test_outputs_get_the_usual_permissions(tmp_path):
    import os
    import stat

    mask = os.umask(0o022)
    try:
        io.write_jsonl(tmp_path / "rows.jsonl", [{"a": 1}])
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "rows.jsonl").stat().st_mode) == 0o644
