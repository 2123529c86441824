"""CSV carries what JSON carries (but the free-form `extra`), so scripts need not switch formats."""

from __future__ import annotations

import csv
import io
import json

from helpers import write_run

from grokwatch.records import COLUMNS, LayerRecord
from grokwatch.report.text import to_csv, to_json
from grokwatch.scan import scan_folder
from grokwatch.settings import Settings


def test_columns_are_every_field_but_extra():
    fields = set(LayerRecord("c", 1, "l", [2, 3]).to_dict()) - {"extra"}
    assert set(COLUMNS) == fields and len(COLUMNS) == len(fields)


def test_csv_and_json_agree(tmp_path):
    result = scan_folder(write_run(tmp_path / "run"), Settings(traps=True), workers=1, cache=False)
    rows = list(csv.DictReader(io.StringIO(to_csv(result.records))))
    recs = json.loads(to_json(result.records))
    assert len(rows) == len(recs) == 9
    for row, rec in zip(rows, recs):
        assert int(row["N"]) == rec["N"] and int(row["M"]) == rec["M"] and row["fit"] == rec["fit"] == "ww"
        assert int(row["num_evals"]) == rec["num_evals"] and float(row["sigma"]) == rec["sigma"]
        assert row["shape"] == "x".join(map(str, rec["shape"]))
