#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The S3 front of the mlfs tests: a gateway between clients and s3rver.

s3rver speaks S3 well enough for the tests but never checks a SigV4
signature (a wrong secret gets 200), so every request through this gateway
is verified first: its signature is recomputed from the request as
received, with botocore's own signer (Debian's python3-botocore), and a
mismatch gets S3's 403 SignatureDoesNotMatch. The canonical URI and query
are rebuilt from the decoded path and parameters the way S3 does, so a
client that encodes '+', '=' or spaces differently from what it signed is
refused, as real S3 refuses it. Verified requests go on to s3rver
unsigned (s3rver knows only its own account), with their bodies streamed;
a body declared by its SHA-256 is checked against it first.

Where s3rver lacks an S3 behaviour, the gateway answers as the S3
documentation says: If-Match on GET/HEAD/PUT gives 412 when the ETag
differs, suffix ranges (bytes=-N) and bytes=0-0 return what was asked, and
ListObjects with encoding-type=url returns URL-encoded keys with
<EncodingType>url</EncodingType>.

Multipart uploads in progress.  s3rver answers ListMultipartUploads with
501, and AbortMultipartUpload with 405, keeping the aborted parts on disk.
Given --data (s3rver's -d directory), the gateway serves both from the
directory where s3rver 3.7.1 keeps uploads in progress:

  DATA/<bucket>/._S3rver_uploads/<UploadId>/key        the object key
  DATA/<bucket>/._S3rver_uploads/<UploadId>/metadata   its metadata (JSON)
  DATA/<bucket>/._S3rver_uploads/<UploadId>/<N>, <N>.md5  part N

(CompleteMultipartUpload removes the folder.)  ListMultipartUploads
(GET /<bucket>?uploads) lists those folders: prefix, delimiter,
max-uploads, key-marker, upload-id-marker and encoding-type=url as S3
takes them, sorted by key and then by upload id (S3 sorts one key's
uploads by initiation time), with Initiated the mtime of the key file.
AbortMultipartUpload (DELETE /<bucket>/<key>?uploadId=ID) removes the
folder and its parts and answers 204, or 404 NoSuchUpload for an upload
that is not there (or is another key's).  Without --data, AbortMultipart-
Upload answers 204 and leaves the parts, and ListMultipartUploads goes to
s3rver (501).

Conditional writes are atomic, as on S3 since 2024: a PUT or a
CompleteMultipartUpload with If-Match: <etag> gets 412 unless the object
has that ETag (404 if it is missing), one with If-None-Match: * gets 412
if the object exists.  s3rver checks neither, so the gateway checks them
itself, holding a lock of the key from the check until s3rver has
answered the write; every plain PUT, DELETE and complete of the key takes
the same lock, so no write of the key lands between a check and the
write it guards (the mlfs lease, and version claims, rely on this).
Parts of a multipart upload take no lock: they change no object.

The gateway listens on two ports. The plain one only verifies and
forwards. The fault one does the same but first applies fault rules set
through its control endpoint, /_mlfs_fault on that port:
  POST   {"rules": [RULE, ...], "append": false}   set (or append) rules
  GET                                               rules with hit counts
  DELETE                                            clear all rules
RULE: {"match": "substring of the request target (path?query)",
       "method": "GET" (optional), "times": N (-1: forever; default 1),
       "action": "status" | "reset" | "close" | "delay" | "slow" | "truncate",
       "status": 503, "code": "SlowDown",      for "status"
       "delay_ms": 2000}                        for "delay" and "slow"
"status" answers with an S3 error, "reset" resets the connection (RST),
"close" closes it without an answer, "delay" waits then serves, "slow"
trickles the response body, "truncate" sends half the body then resets.
The first rule that matches and has times left is used.

Usage: gateway.py --upstream HOST:PORT --port-file FILE [--data DIR]
         [--listen HOST:PORT] [--fault-listen HOST:PORT]
         [--cred KEY:SECRET[:TOKEN]]... [--region us-east-1] [--log FILE]
"""

import argparse
import contextlib
import datetime
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote_from_bytes, quote_plus, unquote_to_bytes
from xml.sax.saxutils import escape

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

CHUNK = 1 << 20
SPOOL_IN_MEMORY = 8 << 20
MAX_SKEW = 15 * 60
UPSTREAM_IDLE = 2.0          # s3rver (Node) drops idle keep-alives at 5 s
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-connection", "transfer-encoding",
    "te", "trailer", "upgrade", "expect",
}
AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*"
    r"SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9a-f]{64})\s*$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class S3Error(Exception):
    def __init__(self, status, code, message, **extra):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


class ExactSigner(S3SigV4Auth):
    """botocore's S3 signer, signing exactly the headers the client
    named (botocore itself would leave out Expect and User-Agent)."""

    def headers_to_sign(self, request):
        hm = HTTPHeaders()
        for name, value in request.headers.items():
            hm[name.lower()] = value
        return hm


class KeyLocks:
    """One lock per object key, made on first use and dropped when its
    last user is done."""

    def __init__(self):
        self.lock = threading.Lock()
        self.locks = {}         # key -> [Lock, users]

    @contextlib.contextmanager
    def held(self, key):
        with self.lock:
            ent = self.locks.setdefault(key, [threading.Lock(), 0])
            ent[1] += 1
        ent[0].acquire()
        try:
            yield
        finally:
            ent[0].release()
            with self.lock:
                ent[1] -= 1
                if ent[1] == 0:
                    del self.locks[key]


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []

    def set(self, rules, append):
        clean = []
        for r in rules:
            r = dict(r)
            r.setdefault("match", "")
            r.setdefault("times", 1)
            r.setdefault("action", "status")
            r["hits"] = 0
            clean.append(r)
        with self.lock:
            self.rules = (self.rules if append else []) + clean

    def take(self, method, target):
        with self.lock:
            for r in self.rules:
                if r["times"] == 0:
                    continue
                if r.get("method") and r["method"] != method:
                    continue
                if r["match"] not in target:
                    continue
                if r["times"] > 0:
                    r["times"] -= 1
                r["hits"] += 1
                return dict(r)
        return None

    def state(self):
        with self.lock:
            return [dict(r) for r in self.rules]


def error_xml(code, message, extra):
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<Error>',
             f"<Code>{escape(code)}</Code>",
             f"<Message>{escape(message)}</Message>"]
    for k, v in extra.items():
        parts.append(f"<{k}>{escape(str(v))}</{k}>")
    parts.append(f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId>")
    parts.append("</Error>")
    return "".join(parts).encode()


def decode_query(query):
    """The query's pairs, percent-decoded ('+' stays '+', as S3 reads it)."""
    pairs = []
    for part in query.split("&") if query else []:
        if not part:
            continue
        k, _, v = part.partition("=")
        try:
            pairs.append((unquote_to_bytes(k).decode("utf-8"),
                          unquote_to_bytes(v).decode("utf-8")))
        except UnicodeDecodeError:
            raise S3Error(400, "InvalidURI",
                          "Couldn't parse the specified URI.")
    return pairs


XML_ENTITY = re.compile(r"&(amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);")
XML_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


def xml_unescape(text):
    def one(m):
        name = m.group(1)
        if name.startswith("#x"):
            return chr(int(name[2:], 16))
        if name.startswith("#"):
            return chr(int(name[1:]))
        return XML_NAMED[name]
    return XML_ENTITY.sub(one, text)


def url_encode_list(body):
    """encoding-type=url as S3 does it: keys and prefixes form-encoded."""
    text = body.decode("utf-8")

    def enc(m):
        raw = xml_unescape(m.group(2))
        return (f"<{m.group(1)}>"
                f"{escape(quote_plus(raw.encode('utf-8'), safe=''))}"
                f"</{m.group(1)}>")

    text = re.sub(r"<(Key|Prefix|StartAfter|Delimiter)>(.*?)</\1>", enc,
                  text, flags=re.S)
    text = re.sub(r"(<ListBucketResult[^>]*>)",
                  r"\1<EncodingType>url</EncodingType>", text, count=1)
    return text.encode("utf-8")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mlfs-s3-gateway"
    timeout = 300

    def setup(self):
        super().setup()
        self.upstream = None
        self.upstream_used = 0.0

    def finish(self):
        self.drop_upstream()
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, fmt, *args):
        log = self.server.gw.log
        if log:
            with self.server.gw.log_lock:
                log.write("%s %s %s\n" % (self.server.label,
                                          self.log_date_time_string(),
                                          fmt % args))
                log.flush()

    def do_GET(self):
        self.serve()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    # -- upstream ------------------------------------------------------

    def drop_upstream(self):
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None

    def get_upstream(self):
        if (self.upstream is not None and
                time.monotonic() - self.upstream_used > UPSTREAM_IDLE):
            self.drop_upstream()
        if self.upstream is None:
            host, port = self.server.gw.upstream
            self.upstream = http.client.HTTPConnection(host, port,
                                                       timeout=300)
        return self.upstream

    def upstream_request(self, method, target, headers, body=None,
                         length=0, retry=True):
        """Send a request upstream; body is a file (read length bytes)
        or None. Returns the http.client response."""
        conn = self.get_upstream()
        start = body.tell() if body is not None and body is not self.rfile \
            else None
        try:
            conn.putrequest(method, target, skip_host=True,
                            skip_accept_encoding=True)
            for k, v in headers:
                conn.putheader(k, v)
            conn.endheaders()
            left = length
            if body is self.rfile and length:
                self.body_state = "partial"
            while left > 0:
                chunk = body.read(min(CHUNK, left))
                if not chunk:
                    self.drop_upstream()
                    raise S3Error(400, "IncompleteBody",
                                  "You did not provide the number of bytes "
                                  "specified by the Content-Length HTTP "
                                  "header")
                conn.send(chunk)
                left -= len(chunk)
            if body is self.rfile:
                self.body_state = "consumed"
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException):
            self.drop_upstream()
            if retry and (length == 0 or start is not None):
                if start is not None:
                    body.seek(start)
                return self.upstream_request(method, target, headers, body,
                                             length, retry=False)
            raise S3Error(503, "ServiceUnavailable",
                          "The upstream server did not answer.")
        self.upstream_used = time.monotonic()
        return resp

    # -- answers -------------------------------------------------------

    def send_error_xml(self, e):
        body = error_xml(e.code, e.message, e.extra)
        self.send_response(e.status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("x-amz-request-id", uuid.uuid4().hex[:16].upper())
        if self.command == "HEAD":
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_simple(self, status, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def reset_connection(self):
        """Make the connection end with a TCP RST, answering nothing."""
        self.close_connection = True
        self.server.rst.add(self.connection)

    def drain_body(self):
        """Read and drop an unread body, so the connection stays usable;
        a body read in part makes the connection close instead."""
        if self.body_state == "partial":
            self.close_connection = True
            return
        if self.body_state != "untouched":
            return
        self.body_state = "consumed"
        left = int(self.headers.get("Content-Length") or 0)
        while left > 0:
            chunk = self.rfile.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)

    def relay(self, resp, fault=None, trim_end=None, rewrite=None):
        """Send resp to the client; trim_end cuts a 206 at that offset;
        rewrite(body) -> body changes a fully read body."""
        headers = [(k, v) for k, v in resp.getheaders()
                   if k.lower() not in HOP_BY_HOP and
                   k.lower() not in ("date", "server", "content-length")]
        no_body = self.command == "HEAD" or resp.status in (204, 304) or \
            100 <= resp.status < 200
        length = resp.getheader("Content-Length")
        body = None
        if not no_body and (length is None or rewrite is not None):
            body = resp.read()
            if rewrite is not None and resp.status == 200:
                body = rewrite(body)
            length = len(body)
        elif length is not None:
            length = int(length)
        discard_rest = False
        if resp.status == 206 and not no_body:
            m = CONTENT_RANGE_RE.match(resp.getheader("Content-Range", ""))
            # s3rver answers a range of an empty object with a 206 that
            # promises one byte and sends none; S3 answers 416.
            if m and m.group(3) == "0":
                self.drop_upstream()
                raise S3Error(416, "InvalidRange",
                              "The requested range is not satisfiable",
                              RangeRequested=self.headers.get("Range", ""),
                              ActualObjectSize=0)
        if trim_end is not None and resp.status == 206 and not no_body:
            m = CONTENT_RANGE_RE.match(resp.getheader("Content-Range", ""))
            if m and int(m.group(2)) > trim_end:
                start, total = int(m.group(1)), m.group(3)
                headers = [(k, v) for k, v in headers
                           if k.lower() != "content-range"]
                headers.append(("Content-Range",
                                f"bytes {start}-{trim_end}/{total}"))
                length = trim_end - start + 1
                discard_rest = True
        self.send_response(resp.status, resp.reason)
        for k, v in headers:
            self.send_header(k, v)
        if self.command == "HEAD":
            cl = resp.getheader("Content-Length")
            if cl is not None:
                self.send_header("Content-Length", cl)
        else:
            self.send_header("Content-Length", str(length or 0))
        self.end_headers()
        if no_body:
            resp.read()
            return
        action = fault["action"] if fault else None
        if action == "truncate":
            half = (length or 0) // 2
            self.copy_body(resp, body, half, None)
            self.drop_upstream()
            self.wfile.flush()
            self.reset_connection()
            return
        delay = fault.get("delay_ms", 200) / 1000 if action == "slow" \
            else None
        self.copy_body(resp, body, length or 0, delay)
        if discard_rest:
            # The rest of the upstream body is never read.
            self.drop_upstream()

    def copy_body(self, resp, body, length, delay):
        step = 1024 if delay is not None else CHUNK
        off = 0
        while off < length:
            n = min(step, length - off)
            if body is not None:
                chunk = body[off:off + n]
            else:
                chunk = resp.read(n)
            if not chunk:
                raise OSError("upstream body ended early")
            self.wfile.write(chunk)
            off += len(chunk)
            if delay is not None:
                self.wfile.flush()
                time.sleep(delay)

    # -- the request ---------------------------------------------------

    def serve(self):
        self.body_state = "untouched"
        try:
            if self.server.faults is not None and \
                    self.path.startswith("/_mlfs_fault"):
                self.control()
                return
            fault = None
            if self.server.faults is not None:
                fault = self.server.faults.take(self.command, self.path)
            if fault and self.apply_fault(fault):
                return
            try:
                self.handle_s3(fault)
            except S3Error as e:
                self.drain_body()
                self.send_error_xml(e)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True
            self.drop_upstream()
        except OSError:
            self.close_connection = True
            self.drop_upstream()

    def apply_fault(self, fault):
        """True if the fault answered the request (or killed it)."""
        action = fault["action"]
        if action == "delay":
            time.sleep(fault.get("delay_ms", 1000) / 1000)
            return False
        if action == "status":
            self.drain_body()
            status = int(fault.get("status", 503))
            code = fault.get("code") or {
                500: "InternalError", 503: "SlowDown", 429: "SlowDown",
                412: "PreconditionFailed", 403: "AccessDenied",
            }.get(status, "InternalError")
            self.send_error_xml(S3Error(status, code,
                                        "injected by the fault proxy"))
            return True
        if action == "reset":
            self.reset_connection()
            return True
        if action == "close":
            self.close_connection = True
            return True
        return False    # "slow" and "truncate" act on the response

    def control(self):
        faults = self.server.faults
        if self.command == "GET":
            body = json.dumps({"rules": faults.state()}).encode()
        elif self.command in ("POST", "PUT"):
            n = int(self.headers.get("Content-Length") or 0)
            req = json.loads(self.rfile.read(n) or b"{}")
            faults.set(req.get("rules", []), bool(req.get("append")))
            body = b'{"ok": true}'
        elif self.command == "DELETE":
            faults.set([], False)
            body = b'{"ok": true}'
        else:
            self.send_simple(405)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def verify(self, params):
        """Check the request's SigV4 signature as S3 does, or raise."""
        h = self.headers
        auth = h.get("Authorization")
        if auth is None:
            raise S3Error(403, "AccessDenied", "Access Denied")
        m = AUTH_RE.match(auth)
        if not m:
            raise S3Error(400, "AuthorizationHeaderMalformed",
                          "The authorization header is malformed")
        cred = m.group(1).split("/")
        if len(cred) != 5 or cred[3] != "s3" or cred[4] != "aws4_request":
            raise S3Error(400, "AuthorizationHeaderMalformed",
                          "The authorization header is malformed; the "
                          "Credential is mal-formed")
        key_id, date, region = cred[0], cred[1], cred[2]
        if region != self.server.gw.region:
            raise S3Error(400, "AuthorizationHeaderMalformed",
                          f"The authorization header is malformed; the "
                          f"region '{region}' is wrong; expecting "
                          f"'{self.server.gw.region}'",
                          Region=self.server.gw.region)
        creds = self.server.gw.creds.get(key_id)
        if creds is None:
            raise S3Error(403, "InvalidAccessKeyId",
                          "The AWS Access Key Id you provided does not "
                          "exist in our records.")
        secret, token = creds
        amz_date = h.get("x-amz-date")
        try:
            when = datetime.datetime.strptime(amz_date or "",
                                              "%Y%m%dT%H%M%SZ")
        except ValueError:
            raise S3Error(403, "AccessDenied",
                          "AWS authentication requires a valid Date or "
                          "x-amz-date header")
        if date != amz_date[:8]:
            raise S3Error(400, "AuthorizationHeaderMalformed",
                          "The authorization header is malformed; "
                          "Invalid credential date.")
        now = datetime.datetime.utcnow()
        if abs((now - when).total_seconds()) > MAX_SKEW:
            raise S3Error(403, "RequestTimeTooSkewed",
                          "The difference between the request time and "
                          "the current time is too large.")
        sha = h.get("x-amz-content-sha256")
        if sha is None:
            raise S3Error(400, "InvalidRequest",
                          "Missing required header for this request: "
                          "x-amz-content-sha256")
        if sha.startswith("STREAMING-"):
            raise S3Error(501, "NotImplemented",
                          "aws-chunked uploads are not supported here")
        if sha != "UNSIGNED-PAYLOAD" and not HEX64.match(sha):
            raise S3Error(400, "InvalidArgument",
                          "x-amz-content-sha256 must be UNSIGNED-PAYLOAD "
                          "or a SHA-256 in hex")
        signed = m.group(2).split(";")
        if "host" not in signed:
            raise S3Error(403, "AccessDenied",
                          "The host header must be signed")
        for name in h.keys():
            if name.lower().startswith("x-amz-") and \
                    name.lower() not in signed:
                raise S3Error(403, "AccessDenied",
                              "There were headers present in the request "
                              "which were not signed",
                              HeadersNotSigned=name.lower())
        got_token = h.get("x-amz-security-token")
        if (token or got_token) and got_token != token:
            raise S3Error(403, "InvalidToken",
                          "The provided token is malformed or otherwise "
                          "invalid.")
        headers = {}
        for name in signed:
            values = h.get_all(name)
            if values is None:
                raise S3Error(403, "SignatureDoesNotMatch",
                              f"The signed header {name} is missing")
            headers[name] = ",".join(values)
        raw_path = self.path.partition("?")[0]
        # S3 signs the decoded key re-encoded per the SigV4 rules, not
        # the bytes the client happened to send.
        path = quote_from_bytes(unquote_to_bytes(raw_path), safe="/~")
        req = AWSRequest(method=self.command,
                         url="http://" + headers["host"] + path,
                         headers=headers, params=params)
        req.context["timestamp"] = amz_date
        signer = ExactSigner(Credentials(key_id, secret, token), "s3",
                             region)
        canonical = signer.canonical_request(req)
        sts = signer.string_to_sign(req, canonical)
        want = signer.signature(sts, req)
        if not hmac.compare_digest(want, m.group(3)):
            raise S3Error(403, "SignatureDoesNotMatch",
                          "The request signature we calculated does not "
                          "match the signature you provided. Check your "
                          "key and signing method.",
                          AWSAccessKeyId=key_id, StringToSign=sts,
                          CanonicalRequest=canonical)
        return sha

    def read_checked_body(self, sha):
        """The body spooled and checked against its declared SHA-256."""
        length = int(self.headers.get("Content-Length") or 0)
        self.body_state = "partial"
        spool = tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY)
        digest = hashlib.sha256()
        left = length
        while left > 0:
            chunk = self.rfile.read(min(CHUNK, left))
            if not chunk:
                raise S3Error(400, "IncompleteBody",
                              "You did not provide the number of bytes "
                              "specified by the Content-Length HTTP header")
            digest.update(chunk)
            spool.write(chunk)
            left -= len(chunk)
        self.body_state = "consumed"
        if digest.hexdigest() != sha:
            raise S3Error(400, "XAmzContentSHA256Mismatch",
                          "The provided 'x-amz-content-sha256' header does "
                          "not match what was computed.",
                          ClientComputedContentSHA256=sha,
                          S3ComputedContentSHA256=digest.hexdigest())
        spool.seek(0)
        return spool, length

    def forward_headers(self, drop=()):
        drop = set(drop) | HOP_BY_HOP | {"authorization",
                                         "x-amz-security-token"}
        return [(k, v) for k, v in self.headers.items()
                if k.lower() not in drop]

    def head_upstream(self, target):
        """The ETag and size of the object, or None if it is missing."""
        headers = self.forward_headers(
            drop=("range", "if-match", "if-none-match", "content-length",
                  "content-type", "content-md5"))
        resp = self.upstream_request("HEAD", target.partition("?")[0],
                                     headers)
        resp.read()
        if resp.status != 200:
            return None
        return (resp.getheader("ETag", ""),
                int(resp.getheader("Content-Length", "0")))

    def handle_s3(self, fault):
        raw_path, _, query = self.path.partition("?")
        params = decode_query(query)
        names = {k for k, _ in params}
        sha = self.verify(params)
        has_body = self.command in ("PUT", "POST")
        if has_body and "Content-Length" not in self.headers:
            raise S3Error(411, "MissingContentLength",
                          "You must provide the Content-Length HTTP header.")
        body, length = None, 0
        if has_body:
            if sha != "UNSIGNED-PAYLOAD":
                body, length = self.read_checked_body(sha)
            else:
                body = self.rfile
                length = int(self.headers.get("Content-Length") or 0)
        is_object = raw_path.strip("/").count("/") >= 1
        # AbortMultipartUpload: s3rver answers 405; S3 answers 204.
        if self.command == "DELETE" and "uploadId" in names:
            if self.server.gw.data is None:
                self.send_simple(204)
            else:
                self.abort_upload(raw_path, dict(params)["uploadId"])
            return
        # ListMultipartUploads: s3rver answers 501.
        if self.command == "GET" and not is_object and "uploads" in names \
                and self.server.gw.data is not None:
            self.list_uploads(raw_path, dict(params))
            return
        # a write of the object itself (not of one part of an upload)
        writes = is_object and (
            (self.command in ("PUT", "DELETE") and "uploadId" not in names)
            or (self.command == "POST" and "uploadId" in names))
        with (self.server.gw.keylocks.held(raw_path) if writes
              else contextlib.nullcontext()):
            resp = self.forward_s3(fault, is_object, params, body, length)
            if writes and resp is not None:
                self.wait_visible(resp)

    def wait_visible(self, resp):
        """Hold the key's lock until s3rver shows the write just answered:
        it answers a PUT before its files hold the object, so a HEAD right
        after (the next writer's If-Match check) could see the old one and
        two conditional writes would both pass.  S3 is strongly
        consistent; this makes the test server so for the writers."""
        if self.command == "PUT" and resp.status == 200:
            want = resp.getheader("ETag")
            done = lambda f: f is not None and f[0] == want
        elif self.command == "DELETE" and resp.status in (200, 204):
            done = lambda f: f is None
        else:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if done(self.head_upstream(self.path)):
                return
            time.sleep(0.005)

    def forward_s3(self, fault, is_object, params, body, length):
        drop = []
        target = self.path
        # conditions apply to reads and to writes of the whole object
        conditional = self.command in ("GET", "HEAD", "PUT") or (
            self.command == "POST" and any(k == "uploadId"
                                           for k, _ in params))
        if is_object and "If-Match" in self.headers and conditional:
            self.check_if_match()
            drop.append("if-match")
        if is_object and "If-None-Match" in self.headers and \
                self.command in ("PUT", "POST") and conditional:
            self.check_if_none_match()
            drop.append("if-none-match")
        trim_end = None
        if self.command == "GET" and is_object and "Range" in self.headers:
            new_range, trim_end = self.fix_range()
            if new_range is not None:
                drop.append("range")
        else:
            new_range = None
        headers = self.forward_headers(drop=drop)
        if new_range:
            headers.append(("Range", new_range))
        rewrite = None
        if self.command == "GET" and not is_object and \
                ("encoding-type", "url") in params:
            rewrite = url_encode_list
        resp = self.upstream_request(self.command, target, headers, body,
                                     length)
        self.relay(resp, fault=fault, trim_end=trim_end, rewrite=rewrite)
        return resp

    def check_if_none_match(self):
        """If-None-Match: * on a write: 412 if the object exists."""
        if self.headers["If-None-Match"].strip() != "*":
            raise S3Error(501, "NotImplemented", "A header you provided "
                          "implies functionality that is not implemented",
                          Header="If-None-Match")
        if self.head_upstream(self.path) is not None:
            raise S3Error(412, "PreconditionFailed",
                          "At least one of the pre-conditions you "
                          "specified did not hold",
                          Condition="If-None-Match")

    # -- multipart uploads in progress, from s3rver's directory ----------

    def uploads_dir(self, bucket):
        d = os.path.join(self.server.gw.data, bucket)
        if not bucket or "/" in bucket or bucket in (".", "..") or \
                not os.path.isdir(d):
            raise S3Error(404, "NoSuchBucket",
                          "The specified bucket does not exist",
                          BucketName=bucket)
        return os.path.join(d, "._S3rver_uploads")

    def uploads(self, bucket):
        """[(key, upload id, initiated)] of the bucket's uploads in
        progress, sorted by key, then id."""
        top = self.uploads_dir(bucket)
        out = []
        try:
            ids = os.listdir(top)
        except FileNotFoundError:
            ids = []
        for uid in ids:
            kf = os.path.join(top, uid, "key")
            try:
                with open(kf, "rb") as f:
                    key = f.read().decode("utf-8")
                when = os.stat(kf).st_mtime
            except (OSError, UnicodeDecodeError):
                continue    # being created or removed
            out.append((key, uid, when))
        out.sort(key=lambda u: (u[0], u[1]))
        return out

    def abort_upload(self, raw_path, upload_id):
        bucket, _, key = raw_path.lstrip("/").partition("/")
        bucket = unquote_to_bytes(bucket).decode("utf-8")
        key = unquote_to_bytes(key).decode("utf-8")
        top = self.uploads_dir(bucket)
        d = os.path.join(top, upload_id)
        try:
            if not re.fullmatch(r"[0-9A-Za-z_.-]+", upload_id) or \
                    upload_id in (".", ".."):
                raise FileNotFoundError
            with open(os.path.join(d, "key"), "rb") as f:
                if f.read().decode("utf-8") != key:
                    raise FileNotFoundError
            shutil.rmtree(d)
        except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
            raise S3Error(404, "NoSuchUpload",
                          "The specified upload does not exist. The upload "
                          "ID may be invalid, or the upload may have been "
                          "aborted or completed.", UploadId=upload_id)
        self.send_simple(204)

    def list_uploads(self, raw_path, params):
        bucket = unquote_to_bytes(raw_path.strip("/")).decode("utf-8")
        prefix = params.get("prefix", "")
        delim = params.get("delimiter", "")
        kmark = params.get("key-marker", "")
        imark = params.get("upload-id-marker", "") if kmark else ""
        url = params.get("encoding-type") == "url"
        try:
            most = int(params.get("max-uploads", "1000"))
        except ValueError:
            most = -1
        if not 0 <= most <= 2147483647:
            raise S3Error(400, "InvalidArgument",
                          "Argument max-uploads must be an integer between "
                          "0 and 2147483647", ArgumentName="max-uploads")
        most = min(most, 1000)

        def enc(s):
            s = quote_plus(s.encode("utf-8"), safe="") if url else s
            return escape(s)

        rows, seen = [], set()
        truncated = False
        for key, uid, when in self.uploads(bucket):
            if not key.startswith(prefix):
                continue
            if kmark and (key < kmark or (key == kmark and
                                          (not imark or uid <= imark))):
                continue
            cut = key.find(delim, len(prefix)) if delim else -1
            common = key[:cut + len(delim)] if cut >= 0 else None
            if common is not None and common in seen:
                continue
            if len(rows) == most:
                truncated = True
                break
            if common is not None:
                seen.add(common)
            rows.append((key, uid, when, common))
        parts = ['<?xml version="1.0" encoding="UTF-8"?>\n'
                 '<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com'
                 '/doc/2006-03-01/">',
                 f"<Bucket>{escape(bucket)}</Bucket>",
                 f"<KeyMarker>{enc(kmark)}</KeyMarker>",
                 f"<UploadIdMarker>{escape(imark)}</UploadIdMarker>"]
        if truncated and rows:
            parts.append(f"<NextKeyMarker>{enc(rows[-1][0])}"
                         "</NextKeyMarker>")
            parts.append(f"<NextUploadIdMarker>{escape(rows[-1][1])}"
                         "</NextUploadIdMarker>")
        if url:
            parts.append("<EncodingType>url</EncodingType>")
        parts.append(f"<Prefix>{enc(prefix)}</Prefix>")
        if delim:
            parts.append(f"<Delimiter>{enc(delim)}</Delimiter>")
        parts.append(f"<MaxUploads>{most}</MaxUploads>")
        parts.append("<IsTruncated>%s</IsTruncated>" %
                     ("true" if truncated else "false"))
        owner = "<ID>S3RVER</ID><DisplayName>S3RVER</DisplayName>"
        for key, uid, when, common in rows:
            if common is not None:
                continue
            t = datetime.datetime.fromtimestamp(when, datetime.timezone.utc)
            parts.append(
                f"<Upload><Key>{enc(key)}</Key>"
                f"<UploadId>{escape(uid)}</UploadId>"
                f"<Initiator>{owner}</Initiator><Owner>{owner}</Owner>"
                "<StorageClass>STANDARD</StorageClass>"
                f"<Initiated>{t.strftime('%Y-%m-%dT%H:%M:%S')}."
                f"{t.microsecond // 1000:03d}Z</Initiated></Upload>")
        for key, uid, when, common in rows:
            if common is not None:
                parts.append(f"<CommonPrefixes><Prefix>{enc(common)}"
                             "</Prefix></CommonPrefixes>")
        parts.append("</ListMultipartUploadsResult>")
        body = "".join(parts).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("x-amz-request-id", uuid.uuid4().hex[:16].upper())
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def check_if_match(self):
        want = [t.strip() for t in self.headers["If-Match"].split(",")]
        found = self.head_upstream(self.path)
        if found is None:
            if self.command in ("PUT", "POST"):
                raise S3Error(404, "NoSuchKey",
                              "The specified key does not exist.")
            return      # the forwarded request answers 404
        if "*" in want or found[0] in want:
            return
        raise S3Error(412, "PreconditionFailed",
                      "At least one of the pre-conditions you specified "
                      "did not hold", Condition="If-Match")

    def fix_range(self):
        """(Range to send, end to trim the answer at) for s3rver, which
        reads bytes=-N as 0-N and bytes=0-0 as the whole object."""
        m = RANGE_RE.match(self.headers["Range"].strip())
        if not m or (m.group(1) == "" and m.group(2) == ""):
            return None, None
        a, b = m.group(1), m.group(2)
        if a == "":
            found = self.head_upstream(self.path)
            if found is None:
                return None, None
            n, size = int(b), found[1]
            if n == 0 or size == 0:
                raise S3Error(416, "InvalidRange",
                              "The requested range is not satisfiable",
                              RangeRequested=self.headers["Range"],
                              ActualObjectSize=size)
            a, b = max(0, size - n), size - 1
            return f"bytes={a}-{b}", b
        a = int(a)
        if b == "":
            return None, None
        b = int(b)
        if b < a:
            return None, None   # S3 ignores an invalid range
        if b == 0:
            return "bytes=0-", 0
        return None, b


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, gw, label, faults):
        self.gw = gw
        self.label = label
        self.faults = faults
        self.rst = set()
        self.rst_lock = threading.Lock()
        super().__init__(addr, Handler)

    def shutdown_request(self, request):
        # A connection marked for reset is closed with SO_LINGER 0 and no
        # shutdown() first, so the peer gets an RST rather than a FIN.
        if request in self.rst:
            self.rst.discard(request)
            try:
                request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   struct.pack("ii", 1, 0))
            except OSError:
                pass
            self.close_request(request)
            return
        super().shutdown_request(request)


class Gateway:
    def __init__(self, args):
        host, port = args.upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.region = args.region
        self.creds = {}
        for c in args.cred or ["S3RVER:S3RVER"]:
            parts = c.split(":")
            self.creds[parts[0]] = (parts[1], parts[2] if len(parts) > 2
                                    else None)
        self.log = open(args.log, "a") if args.log else None
        self.log_lock = threading.Lock()
        self.keylocks = KeyLocks()
        self.data = args.data   # s3rver's -d directory, or None


def split_addr(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--fault-listen", default="127.0.0.1:0")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--cred", action="append")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--log")
    ap.add_argument("--data", help="s3rver's -d directory: serve "
                    "ListMultipartUploads and AbortMultipartUpload from it")
    args = ap.parse_args()
    gw = Gateway(args)
    plain = Server(split_addr(args.listen), gw, "gw", None)
    fault = Server(split_addr(args.fault_listen), gw, "fault", Faults())
    for srv in (plain, fault):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"gateway": plain.server_address[1],
                   "fault": fault.server_address[1],
                   "pid": os.getpid()}, f)
    os.rename(tmp, args.port_file)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
