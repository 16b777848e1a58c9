"""The /_upload body (protocol/multipart.py) and the pieces it passes through h11 (protocol/http.py)."""
from __future__ import annotations

import email.parser
import json

import pytest

from fleetclt.protocol.http import HttpExchange, HttpFailure
from fleetclt.protocol.multipart import (
    MAX_FILES,
    FileContent,
    MultipartUpload,
    UploadFile,
    parse_upload_answer,
)


def assembled(body: MultipartUpload, contents: list[bytes]) -> bytes:
    return b"".join(contents[p.index] if isinstance(p, FileContent) else p for p in body.pieces())


def test_the_body_is_data_then_files_and_its_length_is_known_before_any_byte():
    contents = [b"\x00\x01 image \r\n--not-the-boundary\r\n" * 100, b""]
    body = MultipartUpload("update.file", [{"resume": False}], [UploadFile("img.bin", len(contents[0])),
                                                                UploadFile("empty", 0)])
    stand_ins = [p for p in body.pieces() if isinstance(p, FileContent)]
    assert stand_ins == [FileContent(0, len(contents[0])), FileContent(1, 0)]
    assert [len(s) for s in stand_ins] == [len(contents[0]), 0]
    raw = assembled(body, contents)
    assert len(raw) == body.length
    # An independent reader of multipart/form-data: the standard library's MIME parser.
    message = email.parser.BytesParser().parsebytes(
        f"Content-Type: {body.content_type}\r\n\r\n".encode() + raw)
    parts = message.get_payload()
    assert [p.get_param("name", header="content-disposition") for p in parts] == ["data", "file", "file"]
    assert json.loads(parts[0].get_payload(decode=True)) == {"method": "update.file", "params": [{"resume": False}]}
    assert parts[1].get_filename() == "img.bin" and parts[1].get_payload(decode=True) == contents[0]
    assert parts[2].get_payload(decode=True) == b""


def test_file_count_and_names_are_checked():
    with pytest.raises(ValueError, match="at least one file"):
        MultipartUpload("config.upload", [], [])
    with pytest.raises(ValueError, match=f"at most {MAX_FILES}"):
        MultipartUpload("update.file", [], [UploadFile("f", 1)] * (MAX_FILES + 1))
    body = MultipartUpload("config.upload", [], [UploadFile('a"b\r\nc\\.tar', 0)])
    assert b'filename="a_b__c_.tar"' in assembled(body, [b""])


@pytest.mark.parametrize(("status", "body", "message"), [
    (403, b"Invalid token", "refused with HTTP 403: Invalid token"),
    (200, b"[1]", r"without a job id .*: \[1\]"),
    (200, b'{"job_id": true}', "without a job id"),
    (401, b"", "refused with HTTP 401$"),
])
def test_an_answer_without_a_job_id_is_an_error(status, body, message):
    assert parse_upload_answer(200, b'{"job_id": 42}') == 42
    with pytest.raises(ValueError, match=message):
        parse_upload_answer(status, body)


def test_h11_counts_a_stand_in_against_content_length_and_passes_it_through():
    exchange = HttpExchange("POST", "nas", "/_upload", [], content_length=10)
    assert exchange.request().startswith(b"POST /_upload HTTP/1.1\r\n")
    stand_in = FileContent(0, 7)
    assert exchange.body_passthrough(b"abc") == [b"abc"]
    assert exchange.body_passthrough(stand_in)[0] is stand_in
    with pytest.raises(HttpFailure, match="Too much data"):
        exchange.body_passthrough(b"x")
