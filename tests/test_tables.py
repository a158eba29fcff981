from voxlm.train.core.tables import format_cell, render_table


def test_text_tables_align_columns_under_a_rule():
    table = render_table(["system", "WER"], [["VoxLM", 0.0791234], ["cascade", None]])
    assert table.splitlines() == ["system   WER", "-------  -------", "VoxLM    0.07912", "cascade  -"]


def test_markdown_tables_format_floats_as_asked():
    table = render_table(["step", "seconds"], [["fit", 2.0], ["bag", 12]], markdown=True, float_format=".2f")
    assert table == "| step | seconds |\n|---|---|\n| fit | 2.00 |\n| bag | 12 |"
    assert format_cell("0.5 ± 0.1") == "0.5 ± 0.1" and format_cell(None) == "-"
