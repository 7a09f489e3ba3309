"""`POST /api/v1/admin/devices/import` takes the file a spreadsheet wrote, like the CLI."""

from __future__ import annotations

from .conftest import Act, imei


async def test_a_latin1_upload_is_read_and_a_binary_one_refused(act: Act) -> None:
    data = f"Contact;IMEI\r\nmüller@example.de;{imei(900)}\r\n".encode("cp1252")
    answer = await act.admin.post("/api/v1/admin/devices/import",
                                  files={"file": ("devices.csv", data, "text/csv")})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["provisioned"] == 1 and body["errors"] == []
    assert body["note"].startswith("not UTF-8 (line 2: byte 0xFC); read as Windows-1252")
    # The contact was stored as typed: a claim by it sends the code there.
    started = await act.http.post("/api/v1/activations",
                                  json={"imei": imei(900), "contact": "müller@example.de"})
    assert started.status_code == 202
    assert await act.code_for("müller@example.de")

    binary = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"  # a PNG's first bytes: NUL on line 3
    refused = await act.admin.post("/api/v1/admin/devices/import",
                                   files={"file": ("devices.png", binary, "image/png")})
    assert refused.status_code == 422
    assert refused.json()["line"] == 3 and refused.json()["field"] == "file"
    assert "this is not a text CSV file" in refused.json()["detail"]
