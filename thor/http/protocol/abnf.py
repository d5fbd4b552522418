"""RFC 9110 / RFC 9112 grammar as compiled regular expressions.

Every pattern is written so that it cannot backtrack catastrophically: each
repetition is followed by a character it cannot itself match, so matching is
linear in the input (Appendix B54, CVE-2020-5236). Patterns are used with
``fullmatch`` (optionally with ``pos``/``endpos`` so the buffer is not copied).
"""

from __future__ import annotations

import re

# RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
#                          "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA ; token = 1*tchar
TCHAR = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]"
TOKEN = TCHAR + rb"+"
token_re = re.compile(TOKEN)

# RFC 9110 §5.5: field-value = *field-content ; field-vchar = VCHAR / obs-text; SP and HTAB
# allowed inside. Anything else (NUL, CR, LF and the other CTLs, DEL) is invalid.
FIELD_CHAR = rb"[\t\x20-\x7e\x80-\xff]"
bad_value_re = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

# RFC 9112 §5: field-line = field-name ":" OWS field-value OWS, each ended by CRLF. This
# validates a whole field section (without the empty line) in one call; values are stripped
# of OWS afterwards with bytes.strip, which is linear where a regex would not be.
fields_re = re.compile(rb"(?:" + TOKEN + rb":" + FIELD_CHAR + rb"*\r\n)*")
# Extracts (name, value with trailing OWS) from a field section fields_re has validated.
field_pairs_re = re.compile(rb"(" + TOKEN + rb"):[ \t]*([^\r]*)\r\n")
# RFC 9112 §3: request-line = method SP request-target SP HTTP-version. The target is checked
# for shape separately (origin/absolute/authority/asterisk form, RFC 9112 §3.2); its
# characters are visible ASCII (RFC 3986's, a subset, is what a writer must produce).
TARGET_CHAR = rb"[\x21-\x7e]"
target_re = re.compile(TARGET_CHAR + rb"+")
request_line_re = re.compile(rb"(" + TOKEN + rb") (" + TARGET_CHAR + rb"+) HTTP/([0-9])\.([0-9])")

# Fast path for the common case: an origin-form target (no "#") and HTTP/1.0 or 1.1.
request_line_fast_re = re.compile(rb"(" + TOKEN + rb") (/[\x21\x22\x24-\x7e]*) HTTP/(1\.[01])")

# The whole head of a common request in one call (request parser fast path): the fast request
# line, CRLF, the field section exactly as fields_re has it, and the empty line. No line in it
# is empty or holds a CR or LF, so a match ends at the first CRLFCRLF, where the scanner would
# have ended the block. Groups: method, target, version.
request_head_fast_re = re.compile(
    rb"(" + TOKEN + rb") (/[\x21\x22\x24-\x7e]*) HTTP/(1\.[01])\r\n"
    rb"(?:" + TOKEN + rb":" + FIELD_CHAR + rb"*\r\n)*\r\n"
)

# RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
# reason-phrase = 1*( HTAB / SP / VCHAR / obs-text )
status_line_re = re.compile(rb"HTTP/([0-9])\.([0-9]) ([0-9]{3}) (" + FIELD_CHAR + rb"*)")
# A status line without the SP before an empty reason, which RFC 9112 §4 does not allow but
# which old servers send; accepted on the client side (see docs/http-protocol.md).
status_line_bare_re = re.compile(rb"HTTP/([0-9])\.([0-9]) ([0-9]{3})")
# Well-formed HTTP-version of an unsupported version (RFC 9110 §2.5 / §15.6.6 -> 505).
version_re = re.compile(rb"HTTP/[0-9]\.[0-9]")

# RFC 9112 §3.2.1 origin-form = absolute-path [ "?" query ]; §3.2.2 absolute-form (http/https
# only: we are an HTTP intermediary); §3.2.3 authority-form = uri-host ":" port;
# §3.2.4 asterisk-form = "*". The fragment ("#") is never sent (RFC 9110 §4.2.4 / RFC 3986 §3.5).
# An http(s) URI with an empty host MUST be rejected (RFC 9110 §4.2.1), and one with userinfo
# SHOULD be (§4.2.4: it is a known phishing vector): the authority is 1*( not / ? # @ ).
absolute_form_re = re.compile(rb"[hH][tT][tT][pP][sS]?://[^/?#@]+(?:[/?][^#]*)?")
_HOST = rb"(?:\[[0-9A-Fa-f:.vV]+\]|[-A-Za-z0-9._~!$&'()*+,;=%]*)"
authority_form_re = re.compile(_HOST + rb":[0-9]{1,5}")
# RFC 9110 §7.2: Host = uri-host [ ":" port ]
host_re = re.compile(_HOST + rb"(?::[0-9]*)?")

# RFC 9112 §6.1 / RFC 9110 §10.1.4: transfer-coding = token *( OWS ";" OWS transfer-parameter )
# transfer-parameter = token BWS "=" BWS ( token / quoted-string )
QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_PARAM_VALUE = rb"(?:" + TOKEN + rb"|" + QUOTED + rb")"
transfer_coding_re = re.compile(
    TOKEN + rb"(?:[ \t]*;[ \t]*" + TOKEN + rb"[ \t]*=[ \t]*" + _PARAM_VALUE + rb")*"
)

# RFC 9112 §6.2: Content-Length = 1*DIGIT
content_length_re = re.compile(rb"[0-9]+")

# RFC 9112 §7.1: chunk-size = 1*HEXDIG; §7.1.1: chunk-ext = *( BWS ";" BWS chunk-ext-name
# [ BWS "=" BWS chunk-ext-val ] ); chunk-ext-val = token / quoted-string
chunk_line_re = re.compile(
    rb"([0-9A-Fa-f]+)(?:[ \t]*;[ \t]*" + TOKEN + rb"(?:[ \t]*=[ \t]*" + _PARAM_VALUE + rb")?)*"
)
