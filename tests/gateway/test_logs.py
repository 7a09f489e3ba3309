"""Log lines as text: one line per event, whatever the values of its extras hold."""

from __future__ import annotations

import logging

from gateway.logs import TextFormatter


def test_an_extra_spanning_several_lines_stays_on_the_record_s_line() -> None:
    error = ('(sqlalchemy.dialects.postgresql.asyncpg.Error) database "gw" does not exist\n'
             "(Background on this error at: https://sqlalche.me/e/21/dbapi)")
    record = logging.makeLogRecord({"name": "gateway", "levelname": "WARNING",
                                    "msg": "could not trim the frame rings", "error": error})
    line = TextFormatter().format(record)
    assert "\n" not in line
    assert line.endswith('error=(sqlalchemy.dialects.postgresql.asyncpg.Error) database "gw" '
                         "does not exist (Background on this error at: "
                         "https://sqlalche.me/e/21/dbapi)")
