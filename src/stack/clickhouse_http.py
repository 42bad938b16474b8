"""ClickHouse HTTP interface over the chDB engine (the local stack's ClickHouse).

Spindle's local stack has no ClickHouse server package to install, so it runs the ClickHouse
engine in-process through the `chdb-core` wheel and serves the subset of the ClickHouse HTTP
interface that clients use: `/ping`, queries in the `query` parameter and/or the request body,
`database`, `default_format`, settings and `param_*` query parameters, streaming `INSERT ...
FORMAT X` bodies (chunked or not, optionally gzip/deflate encoded), basic-auth and
`X-ClickHouse-User`/`X-ClickHouse-Key` credentials, and ClickHouse-style errors
(`Code: N. DB::Exception: ...`, `X-ClickHouse-Exception-Code`, a non-200 status).

Insert bodies are staged in a temporary file and read with `FROM INFILE`, because chDB's
streaming inserter silently drops a block the engine refuses; `FROM INFILE` reports it.

Every request runs on its own chDB connection taken from a pool: the current database and the
request's settings are per connection, so concurrent requests never see each other's state.
A pooled connection remembers the database and settings it was left with, and the next request
changes only what differs (most clients send the same ones every time: each `USE` or `SET` is a
query of its own for the engine, four of them around every read before). A request whose own
statement is a `USE` or `SET` leaves its connection in an unknown state, so that connection is
closed, not pooled.
ClickHouse's native block compression (`compress=1`, `decompress=1`) is not supported; clients
must turn it off (the `clickhouse` crate: `Compression::None`).

Started by `spindle up`; not meant to be run by hand, though `--help` works.
"""

import argparse
import base64
import hmac
import json
import os
import queue
import re
import signal
import sys
import tempfile
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from chdb import state as chdb_state

VERSION_SUFFIX = ""
MAX_POOL = 16
READ_CHUNK = 1 << 20

# URL parameters that belong to the HTTP interface itself, not to query settings.
HTTP_PARAMS = {
    "query",
    "database",
    "default_format",
    "user",
    "password",
    "query_id",
    "session_id",
    "session_timeout",
    "session_check",
    "compress",
    "decompress",
    "buffer_size",
    "wait_end_of_query",
    "enable_http_compression",
    "http_zlib_compression_level",
    "send_progress_in_http_headers",
    "http_headers_progress_interval_ms",
}

# Statements a GET request may run (ClickHouse runs GET requests in readonly mode).
READ_ONLY_STATEMENTS = {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "CHECK"}

# ClickHouse's own mapping of exception codes to HTTP statuses (src/Server/HTTPHandler.cpp).
STATUS_BY_CODE = {
    194: 401,  # REQUIRED_PASSWORD
    192: 403,  # UNKNOWN_USER
    193: 403,  # WRONG_PASSWORD
    516: 403,  # AUTHENTICATION_FAILED
    497: 403,  # ACCESS_DENIED
    164: 403,  # READONLY
    26: 400,  # CANNOT_PARSE_QUOTED_STRING
    27: 400,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    33: 400,  # CANNOT_READ_ALL_DATA
    38: 400,  # CANNOT_PARSE_DATE
    41: 400,  # CANNOT_PARSE_DATETIME
    6: 400,  # CANNOT_PARSE_TEXT
    69: 400,  # ARGUMENT_OUT_OF_BOUND
    72: 400,  # CANNOT_PARSE_NUMBER
    36: 400,  # BAD_ARGUMENTS
    42: 400,  # NUMBER_OF_ARGUMENTS_DOESNT_MATCH
    43: 400,  # ILLEGAL_TYPE_OF_ARGUMENT
    47: 400,  # UNKNOWN_IDENTIFIER
    53: 400,  # TYPE_MISMATCH
    62: 400,  # SYNTAX_ERROR
    73: 400,  # UNKNOWN_FORMAT
    115: 400,  # UNKNOWN_SETTING
    117: 400,  # INCORRECT_DATA
    456: 400,  # UNKNOWN_QUERY_PARAMETER
    457: 400,  # BAD_QUERY_PARAMETER
    46: 404,  # UNKNOWN_FUNCTION
    60: 404,  # UNKNOWN_TABLE
    81: 404,  # UNKNOWN_DATABASE
    16: 404,  # NO_SUCH_COLUMN_IN_TABLE
    48: 501,  # NOT_IMPLEMENTED
    159: 408,  # TIMEOUT_EXCEEDED
}

CODE_RE = re.compile(r"Code: (\d+)\. ")
FORMAT_TAIL_RE = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.IGNORECASE)


class ClickHouseError(Exception):
    """An error to answer in ClickHouse's own shape."""

    def __init__(self, code, name, message):
        super().__init__(message)
        self.code = code
        self.text = f"Code: {code}. DB::Exception: {message}. ({name})"


def from_engine(exc):
    """Turns a chDB exception into the text and code ClickHouse would have sent."""
    text = str(exc)
    match = CODE_RE.search(text)
    if match is None:
        err = ClickHouseError(1001, "STD_EXCEPTION", text.strip() or type(exc).__name__)
        return err
    err = ClickHouseError(int(match.group(1)), "", "")
    err.text = text[match.start():].strip()
    return err


class Session:
    """A chDB connection and the database and settings it is in."""

    def __init__(self, conn):
        self.conn = conn
        self.database = "default"
        self.settings = {}

    def prepare(self, database, settings):
        """Switches to `database` with exactly `settings` (the others back to their defaults),
        running only the `USE` and `SET` statements that change something."""
        if self.database != database:
            self.conn.query(f"USE {quote_identifier(database)}")
            self.database = database
        for key in [k for k in self.settings if k not in settings]:
            self.conn.query(f"SET {quote_identifier(key)} = DEFAULT")
            del self.settings[key]
        for key, value in settings.items():
            if self.settings.get(key) != value:
                self.conn.query(f"SET {quote_identifier(key)} = {quote_literal(value)}")
                self.settings[key] = value


class Pool:
    """chDB connections to one data directory; each request borrows one."""

    def __init__(self, path):
        self.path = path
        self.idle = queue.LifoQueue()
        # Keeps the engine open for the server's lifetime.
        self.anchor = chdb_state.connect(path)

    def take(self):
        try:
            return self.idle.get_nowait()
        except queue.Empty:
            return Session(chdb_state.connect(self.path))

    def give_back(self, session):
        if self.idle.qsize() < MAX_POOL:
            self.idle.put(session)
        else:
            session.conn.close()


def split_statement(text):
    """Splits `INSERT ... FORMAT X <data>` into (head, format, data offset).

    Returns None when the text is not an INSERT with inline data in a named format (VALUES
    and INSERT ... SELECT are plain SQL and run as they are).
    """
    i, n = skip_space(text, 0), len(text)
    if not text[i:i + 6].upper() == "INSERT":
        return None
    depth = 0
    while i < n:
        ch = text[i]
        if ch in "'\"`":
            i = skip_quoted(text, i)
            continue
        if text.startswith("--", i) or text.startswith("#", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and ch.isalpha():
            j = i
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            word = text[i:j].upper()
            if word in ("VALUES", "SELECT", "WITH"):
                return None
            if word == "FORMAT":
                k = skip_space(text, j)
                m = k
                while m < n and (text[m].isalnum() or text[m] == "_"):
                    m += 1
                fmt = text[k:m]
                if not fmt:
                    raise ClickHouseError(62, "SYNTAX_ERROR", "Syntax error: expected a format name after FORMAT")
                # Data starts after one run of whitespace following the format name.
                if fmt.upper() == "VALUES":
                    return None
                data_at = m
                if data_at < n and text[data_at] in " \t\r\n":
                    data_at = skip_line_space(text, data_at)
                return text[:i].rstrip(), fmt, data_at
            i = j
            continue
        i += 1
    return None


def split_settings(statement):
    """Splits `INSERT INTO t (c) SETTINGS a = 1` into the target and the SETTINGS clause.

    FROM INFILE must come before SETTINGS, so the clause is moved after it.
    """
    i, n, depth = 0, len(statement), 0
    while i < n:
        ch = statement[i]
        if ch in "'\"`":
            i = skip_quoted(statement, i)
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and statement[i:i + 8].upper() == "SETTINGS" and (i == 0 or not statement[i - 1].isalnum()):
            return statement[:i].rstrip(), statement[i:]
        i += 1
    return statement, ""


def skip_space(text, i):
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def skip_line_space(text, i):
    # ClickHouse skips whitespace up to and including the first line break.
    while i < len(text) and text[i] in " \t\r":
        i += 1
    if i < len(text) and text[i] == "\n":
        i += 1
    return i


def skip_quoted(text, i):
    quote, i = text[i], i + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return i


def first_keyword(text):
    i = 0
    while True:
        i = skip_space(text, i)
        if text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
        else:
            break
    m = re.match(r"[A-Za-z]+", text[i:])
    return m.group(0).upper() if m else ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "spindle-chdb"

    def log_message(self, fmt, *args):  # noqa: N802 - BaseHTTPRequestHandler API
        if self.server.verbose:
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def do_GET(self):  # noqa: N802
        self.handle_request(read_only=True)

    def do_POST(self):  # noqa: N802
        self.handle_request(read_only=False)

    def do_HEAD(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def handle_request(self, read_only):
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        query_id = params.get("query_id") or str(uuid.uuid4())
        started = time.monotonic()
        body = BodyReader(self)
        try:
            if url.path in ("/ping", "/replicas_status") or (url.path == "/" and "query" not in params and read_only):
                body.drain()
                return self.answer(200, b"Ok.\n", query_id, content_type="text/plain; charset=UTF-8")
            if url.path != "/":
                body.drain()
                raise ClickHouseError(
                    48, "NOT_IMPLEMENTED", f"There is no handle {url.path} (the local engine serves / and /ping)"
                )
            self.authenticate(params)
            if params.get("compress") == "1" or params.get("decompress") == "1":
                body.drain()
                raise ClickHouseError(
                    48,
                    "NOT_IMPLEMENTED",
                    "ClickHouse native compression (compress/decompress) is not supported by the local engine; "
                    "turn compression off in the client",
                )
            self.run(params, body, read_only, query_id, started)
        except ClickHouseError as err:
            body.drain()
            self.fail(err, query_id)
        except Exception as exc:  # engine errors arrive as plain exceptions
            body.drain()
            self.fail(from_engine(exc), query_id)

    def authenticate(self, params):
        user, password = "default", ""
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                raise ClickHouseError(516, "AUTHENTICATION_FAILED", "malformed basic authorization header")
        elif self.headers.get("X-ClickHouse-User") is not None or self.headers.get("X-ClickHouse-Key") is not None:
            user = self.headers.get("X-ClickHouse-User", "default")
            password = self.headers.get("X-ClickHouse-Key", "")
        elif "user" in params or "password" in params:
            user = params.get("user", "default")
            password = params.get("password", "")
        ok_user = hmac.compare_digest(user.encode(), self.server.user.encode())
        ok_password = hmac.compare_digest(password.encode(), self.server.password.encode())
        if not (ok_user and ok_password):
            raise ClickHouseError(
                516,
                "AUTHENTICATION_FAILED",
                f"{user}: Authentication failed: password is incorrect, or there is no user with such name",
            )

    def run(self, params, body, read_only, query_id, started):
        sql_param = params.get("query")
        settings = {k: v for k, v in params.items() if k not in HTTP_PARAMS and not k.startswith("param_")}
        query_params = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        fmt = params.get("default_format") or self.headers.get("X-ClickHouse-Format") or "TabSeparated"
        database = params.get("database") or self.headers.get("X-ClickHouse-Database")

        # ClickHouse reads the query from the `query` parameter followed by the request body.
        if sql_param is not None:
            head = split_statement(sql_param)
            if head is not None and head[2] >= len(sql_param.rstrip()):
                text, stream_body = sql_param, True
            else:
                text, stream_body = sql_param + ("\n" + body.read_all().decode() if body.has_body() else ""), False
                head = split_statement(text)
        else:
            if body.has_body() and not read_only:
                text = read_until_data(body)
                head = split_statement(text)
                stream_body = head is not None
                if head is None:
                    text += body.read_all().decode()
            else:
                text, head, stream_body = "", None, False
        if not text.strip():
            raise ClickHouseError(62, "SYNTAX_ERROR", "Empty query")
        if read_only and first_keyword(text) not in READ_ONLY_STATEMENTS:
            raise ClickHouseError(164, "READONLY", "Cannot execute query in readonly mode: use POST for statements that change data")

        session = self.server.pool.take()
        conn = session.conn
        # Only a statement of the request can leave the connection in a state `prepare` does not
        # know of; an engine error in `prepare` itself leaves it half changed.
        reusable = first_keyword(text) not in ("USE", "SET")
        try:
            try:
                session.prepare(database or "default", settings)
            except Exception:
                reusable = False
                raise
            if head is not None:
                statement, in_fmt, data_at = head
                # The body goes to a file the engine reads with FROM INFILE: chDB's streaming
                # inserter drops blocks it refuses without reporting an error, FROM INFILE runs
                # the normal insert path and raises ClickHouse's own error.
                fd, path = tempfile.mkstemp(prefix="insert-", suffix=".data", dir=self.server.tmp_dir)
                try:
                    with os.fdopen(fd, "wb") as out:
                        inline = text[data_at:].encode() if not stream_body or sql_param is None else b""
                        if inline.strip():
                            out.write(inline)
                        if stream_body:
                            for chunk in body.chunks():
                                out.write(chunk)
                    target, settings_clause = split_settings(statement)
                    sql = f"{target} FROM INFILE {quote_literal(path)} COMPRESSION 'none' {settings_clause} FORMAT {in_fmt}"
                    result = conn.query(sql)
                finally:
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
                written = result.rows_written() if result is not None and callable(getattr(result, "rows_written", None)) else 0
                summary = {"written_rows": str(written)}
                self.answer(200, b"", query_id, summary=summary, started=started)
            else:
                if query_params:
                    result = conn.query(text, fmt, params=query_params)
                else:
                    result = conn.query(text, fmt)
                payload = result.bytes() if result is not None else b""
                tail = FORMAT_TAIL_RE.search(text)
                out_fmt = tail.group(1) if tail else fmt
                summary = {
                    "read_rows": str(result.rows_read() if result is not None and callable(getattr(result, "rows_read", None)) else 0),
                    "result_bytes": str(len(payload)),
                }
                self.answer(200, payload, query_id, summary=summary, started=started, fmt=out_fmt)
        finally:
            if reusable:
                self.server.pool.give_back(session)
            else:
                conn.close()

    def answer(self, status, payload, query_id, content_type=None, summary=None, started=None, fmt=None):
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Content-Type", content_type or content_type_for(fmt))
        self.send_header("X-ClickHouse-Query-Id", query_id)
        self.send_header("X-ClickHouse-Server-Display-Name", "spindle-local")
        self.send_header("X-ClickHouse-Timezone", "UTC")
        if fmt:
            self.send_header("X-ClickHouse-Format", fmt)
        if summary is not None:
            if started is not None:
                summary["elapsed_ns"] = str(int((time.monotonic() - started) * 1e9))
            self.send_header("X-ClickHouse-Summary", json.dumps(summary))
        self.end_headers()
        self.wfile.write(payload)

    def fail(self, err, query_id):
        payload = (err.text.rstrip() + "\n").encode()
        sys.stderr.write(f"query {query_id} failed: {err.text}\n")
        self.send_response(STATUS_BY_CODE.get(err.code, 500))
        self.send_header("Content-Type", "text/plain; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-ClickHouse-Exception-Code", str(err.code))
        self.send_header("X-ClickHouse-Query-Id", query_id)
        self.end_headers()
        self.wfile.write(payload)


def read_until_data(body):
    """Reads the body's statement part (up to and including `FORMAT name` and its line break).

    The rest of the body stays in the reader to be streamed into the insert.
    """
    buffered = b""
    while True:
        text = buffered.decode(errors="replace")
        head = split_statement(text)
        if head is not None and head[2] < len(text):
            consumed = len(text[: head[2]].encode())
            body.push_back(buffered[consumed:])
            return text[: head[2]]
        chunk = body.read_some()
        if not chunk:
            return text
        buffered += chunk
        if len(buffered) > (256 << 20) and head is None:
            raise ClickHouseError(202, "QUERY_IS_TOO_LARGE", "Query is too large")


def content_type_for(fmt):
    if not fmt:
        return "text/plain; charset=UTF-8"
    upper = fmt.upper()
    if upper.startswith("JSON"):
        return "application/json; charset=UTF-8"
    if upper.startswith("TABSEPARATED") or upper.startswith("TSV") or upper.startswith("CSV"):
        return "text/tab-separated-values; charset=UTF-8"
    if upper.startswith("ROWBINARY") or upper in ("NATIVE", "PARQUET", "ARROW", "ARROWSTREAM"):
        return "application/octet-stream"
    return "text/plain; charset=UTF-8"


def quote_identifier(name):
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_literal(value):
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class BodyReader:
    """The request body as chunks: Content-Length or chunked, then gzip/deflate decoding."""

    def __init__(self, handler):
        self.rfile = handler.rfile
        self.chunked = "chunked" in handler.headers.get("Transfer-Encoding", "").lower()
        self.remaining = int(handler.headers.get("Content-Length") or 0)
        encoding = handler.headers.get("Content-Encoding", "").lower().strip()
        if encoding in ("", "identity"):
            self.decoder = None
        elif encoding == "gzip":
            self.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self.decoder = zlib.decompressobj()
        else:
            self.decoder = None
            self.bad_encoding = encoding
        self.pending = b""
        self.done = not self.chunked and self.remaining == 0

    def has_body(self):
        return not self.done or bool(self.pending)

    def raw_chunk(self):
        if self.done:
            return b""
        if self.chunked:
            line = self.rfile.readline(65537)
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                self.done = True
                return b""
            data = self.rfile.read(size)
            self.rfile.readline(3)
            return data
        data = self.rfile.read(min(self.remaining, READ_CHUNK))
        self.remaining -= len(data)
        if self.remaining <= 0 or not data:
            self.done = True
        return data

    def read_some(self):
        if self.pending:
            data, self.pending = self.pending, b""
            return data
        if getattr(self, "bad_encoding", None):
            raise ClickHouseError(36, "BAD_ARGUMENTS", f"Unknown Content-Encoding `{self.bad_encoding}`")
        while not self.done:
            raw = self.raw_chunk()
            if self.decoder is None:
                if raw:
                    return raw
                continue
            try:
                data = self.decoder.decompress(raw) if raw else self.decoder.flush()
            except zlib.error as exc:
                raise ClickHouseError(354, "CANNOT_DECOMPRESS", f"cannot decompress the request body: {exc}")
            if data:
                return data
        return b""

    def push_back(self, data):
        self.pending = data + self.pending

    def chunks(self):
        while True:
            data = self.read_some()
            if not data:
                return
            yield data

    def read_all(self):
        return b"".join(self.chunks())

    def drain(self):
        try:
            while not self.done:
                self.raw_chunk()
        except Exception:
            pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--data-dir", required=True, help="where the engine keeps its databases")
    parser.add_argument("--user", default="default")
    parser.add_argument("--password-file", help="file holding the password (empty password when absent)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    parser.add_argument("--tmp-dir", help="where insert bodies are staged (default: <data-dir>/../tmp)")
    args = parser.parse_args()

    password = ""
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as f:
            password = f.read().strip()

    pool = Pool(f"file:{args.data_dir}")
    version = pool.anchor.query("SELECT version()", "TabSeparated").bytes().decode().strip()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.pool = pool
    server.user = args.user
    server.password = password
    server.verbose = args.verbose
    server.tmp_dir = args.tmp_dir or os.path.join(os.path.dirname(os.path.abspath(args.data_dir)), "tmp")
    os.makedirs(server.tmp_dir, exist_ok=True)

    def stop(signum, _frame):
        sys.stderr.write(f"signal {signum}: shutting down\n")
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stderr.write(f"ClickHouse engine {version} (chDB) serving HTTP on {args.host}:{args.port}, data in {args.data_dir}\n")
    sys.stderr.flush()
    server.serve_forever()
    server.server_close()
    pool.anchor.close()
    sys.stderr.write("stopped\n")


if __name__ == "__main__":
    main()
