import os

from cnmflow.movies.native_output import captured_native, with_detail


def test_native_lines_are_kept_and_other_output_written_back(capfd):
    with captured_native() as native:
        os.write(2, b"isxMosaicMovieFile.cpp:604: Exception - Error reading movie frame: m.isxd\n")
        os.write(2, b"progress 50%\n")
    err = capfd.readouterr().err
    assert native.lines == ["isxMosaicMovieFile.cpp:604: Exception - Error reading movie frame: m.isxd"]
    assert "progress 50%" in err and ".cpp" not in err
    assert native.detail() == "Error reading movie frame: m.isxd"
    assert with_detail("cannot read frame 3", native) == "cannot read frame 3 (Error reading movie frame: m.isxd)"
    assert with_detail("x: Error reading movie frame: m.isxd", native) == "x: Error reading movie frame: m.isxd"


def test_stderr_restored_after_an_exception(capfd):
    try:
        with captured_native():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    os.write(2, b"after\n")
    assert "after" in capfd.readouterr().err


def test_assertion_and_prefix_variants_are_caught(capfd):
    with captured_native() as native:
        os.write(2, b"isxJsonUtils.cpp:646 Error while seeking to beginning of JSON header at end.\n")
        os.write(2, b"python: /src/isxMovie.cpp:88: void f(): Assertion `n > 0' failed.\n")
    assert len(native.lines) == 2 and capfd.readouterr().err == ""
    assert native.detail().startswith("Error while seeking to beginning of JSON header at end.")


def test_native_lines_on_standard_output_are_kept_too(capfd):
    """isx prints some diagnostics (a file that is not an isxd at all) to fd 1, where they would land in a command's
    output above its clean error."""
    with captured_native() as native:
        os.write(1, b"isxJsonUtils.cpp:646: Exception - Error while seeking to beginning of JSON header at end.\n")
        os.write(1, b"table row\n")
    out = capfd.readouterr().out
    assert native.detail() == "Error while seeking to beginning of JSON header at end."
    assert out == "table row\n"
