"""The pure side of files: download answers, token masking, names on disk, the manifest, HTTP framing."""
from __future__ import annotations

import datetime as dt

import pytest

from fleetclt.protocol.files import (
    ManifestEntry,
    backup_name,
    default_filename,
    expired,
    merge_manifest,
    parse_download_answer,
    read_manifest,
    render_path,
    safe_name,
)
from fleetclt.protocol.http import BodyEnd, BodyPart, HttpExchange, HttpFailure, ResponseHead
from fleetclt.protocol.redact import mask_tokens, redact_frame

TOKEN = "9WIqYg4jAYEOGQ4g319Bkr64Oj8CZk1VACfyN68M7hgjGTdeSSgZjSf5lJEshS8M"


def test_a_download_answer_is_read_and_its_token_never_shown():
    ticket = parse_download_answer([86, f"/_download/86?auth_token={TOKEN}"])
    assert ticket.job_id == 86 and TOKEN in ticket.path and TOKEN not in repr(ticket)
    for bad in ([86, f"/_download/87?auth_token={TOKEN}"], [True, "/_download/1?x"], {"job": 1}, [1]):
        with pytest.raises(ValueError) as refused:
            parse_download_answer(bad)
        assert TOKEN not in str(refused.value)


def test_tokens_are_masked_in_text_and_in_logged_frames():
    assert mask_tokens(f"GET /_download/1?auth_token={TOKEN}&x=1") == "GET /_download/1?auth_token=********&x=1"
    frame = f'{{"jsonrpc": "2.0", "id": 4, "result": [1, "/_download/1?auth_token={TOKEN}"]}}'
    assert TOKEN not in redact_frame(frame) and "auth_token=********" in redact_frame(frame)


@pytest.mark.parametrize("template, message", [
    ("/{host}", "not a plain relative path"), ("{host}/../x", "not a plain relative path"),
    ("{host}//x", "not a plain relative path"), ("{size}", "unknown field {size}"),
])
def test_a_template_stays_inside_the_directory(template, message):
    with pytest.raises(ValueError, match=message):
        render_path(template, {"host": "nas01", "filename": "f"})


def test_names_from_a_host_lose_their_path():
    assert safe_name("../../etc/passwd") == "_.._etc_passwd"
    assert safe_name("...") == "download" and safe_name("debug.tgz") == "debug.tgz"
    assert default_filename("config.save", [{"secretseed": True}]) == "config.tar"
    assert default_filename("config.save", []) == "freenas-v1.db"


def test_backup_names_sort_by_time_and_retention_keeps_the_newest():
    times = [dt.datetime(2025, 6, 12, 22, 15, 0, ms * 1000, dt.timezone.utc) for ms in (5, 123, 999)]
    names = [backup_name("nas01", t) for t in reversed(times)] + ["nas011-20250612T221500.000Z.tar", "x.part"]
    assert backup_name("nas01", times[1]) == "nas01-20250612T221500.123Z.tar"
    assert expired("nas01", names, 2) == [backup_name("nas01", times[0])]
    assert expired("nas01", names, 5) == []


def test_the_manifest_keeps_one_entry_per_kept_file():
    def entry(host, time):
        return ManifestEntry(host, "25.10.1", time, f"{host}/{host}-{time}.tar", 10, "ab" * 32)
    old = [entry("b", "1"), entry("a", "1")]
    document = merge_manifest(old, [entry("a", "2"), entry("a", "1")], kept=["a/a-1.tar", "a/a-2.tar"])
    assert [(row["host"], row["time"]) for row in document["backups"]] == [("a", "1"), ("a", "2")]
    assert read_manifest(document) == [entry("a", "1"), entry("a", "2")]
    with pytest.raises(ValueError, match="entry 0 lacks"):
        read_manifest({"backups": [{"host": "a"}]})


def test_a_chunked_response_and_one_cut_short():
    exchange = HttpExchange("GET", "nas01", "/_download/1?auth_token=x")
    assert exchange.request().startswith(b"GET /_download/1?auth_token=x HTTP/1.1\r\n")
    events = exchange.receive(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert events == [ResponseHead(200, {"transfer-encoding": "chunked"}), BodyPart(b"hello"), BodyEnd()]
    short = HttpExchange("GET", "nas01", "/")
    short.request()
    short.receive(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
    with pytest.raises(HttpFailure, match="closed before the whole body arrived"):
        short.receive(b"")


def test_an_upload_body_may_not_exceed_its_length():
    exchange = HttpExchange("POST", "nas01", "/_upload", content_length=4)
    assert b"Content-Length: 4" in exchange.request()
    exchange.body(b"abcd")
    with pytest.raises(HttpFailure, match="request body"):
        exchange.body(b"e")
