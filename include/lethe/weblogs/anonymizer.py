"""Streaming IP-address anonymiser for web-server logs, with anonip 1.1.0's semantics.

The masking rules are those of `anonip <https://github.com/DigitaleGesellschaft/Anonip>`_ 1.1.0
(``anonip --input FILE``): the same fields are recognised as addresses, they are truncated the
same way and printed the way Python's :mod:`ipaddress` prints them, so for valid UTF-8 input with
``\\n`` line ends and no trailing white space the output is byte-identical to anonip's. anonip is
not imported here; the tests use it as an oracle.

What differs from anonip, on purpose:

* Work is on bytes: input is decoded with ``surrogateescape`` so invalid UTF-8 travels through
  byte for byte (anonip stops with a ``UnicodeDecodeError``).
* Line ends (``\\n``, ``\\r\\n``, a lone ``\\r``) and trailing white space are written back as they
  were and a last line without a line end stays without one; anonip strips trailing white space
  and ends every line with ``\\n``. Lines are found as anonip finds them when it reads a file
  (universal newlines), and each line is matched after stripping trailing white space, as anonip
  does, so what gets masked is the same.
* A CIDR network whose prefix is shorter than the one the mask asks for (``10.0.0.0/8`` with the
  default IPv4 mask) makes anonip stop with ``ValueError``; here it becomes its network address.
* With ``regex``, anonip replaces the matched groups in the order of a ``set`` (which changes from
  run to run with hash randomisation); here the longest group comes first, so one address that is
  a prefix of another (``1.2.3.4`` and ``1.2.3.45``) cannot leave part of the longer one unmasked.
* An upper-case IPv6 address in brackets (``[2001:DB8::1]:443``) is masked; anonip lower-cases
  the host while parsing, then cannot find it in the line and leaves the address in clear.
* Nothing logged or printed here contains an address; anonip logs the fields it could not parse.

Speed comes from working on large chunks in C, with no Python code per line. For the default
layout (address in the first column) and ``\\n`` line ends, a chunk is handled as bytes: the
first column of each line is looked up in the addresses already truncated (real logs repeat the
same few thousand clients), and those not seen before are truncated together, by one compiled
pattern per IP version, when the masks are on an octet or hextet boundary as the defaults 8 and
80 are (see "the fast path" below): a log where every client is new needs no Python code per
line either. Python code runs only for fields in other forms (ports, brackets, upper case,
garbage), once per distinct field, and for the rare line that needs a closer look. Other
layouts, options and line ends go through the general path, which decodes the chunk, splits it
in C and remembers the result for every address field seen.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import ipaddress
import logging
import os
import re
import stat
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import compress, repeat
from operator import add, is_, itemgetter
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from lethe.files import atomic_rewrite

__all__ = [
    "AnonymiseStats",
    "IpMasker",
    "add_arguments",
    "anonymise_stream",
    "main",
    "run_from_args",
]

logger = logging.getLogger(__name__)

# What happened to one address field; small ints so a chunk's outcomes can be counted with
# ``list.count`` in C.
_MASKED = 0  # an address, truncated
_PRIVATE = 1  # an address left as is because of ``skip_private``
_BAD = 2  # not an address (kept, or replaced by ``replace``), or an address anonip leaves in clear
_SKIP = 3  # nothing to look at: empty field, blank line
_SLOW = 4  # the fast path cannot decide alone; the line goes through the general path

# Fields longer than this are not remembered: an address with port and brackets is < 64
# characters, and caching multi-megabyte garbage fields would defeat the memory bound.
_CACHEABLE_FIELD_LEN = 256

# The line ends anonip recognises when it reads a file (universal newlines).
_NEWLINES = re.compile(r"(\r\n|\r|\n)")

# A dotted quad that ipaddress accepts as is: ASCII digits, no leading zeros, each <= 255.
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_PLAIN_IPV4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")

_first = itemgetter(0)
_second = itemgetter(1)

# -- the fast path for address fields not seen before ------------------------------------------
#
# When the masks are on an octet (IPv4) or hextet (IPv6) boundary, as the default 8 and 80 are,
# the truncated address is the kept part of its text followed by a constant ("0" octets, or
# "::"), so fields not seen before can be resolved together without Python code per field: they
# are joined with "\n", and ``re.split`` with one compiled pattern per IP version cuts every
# field in the form below out of the batch, with its kept part, in C. Fields in neither form are
# what is left between the matches; they are resolved in Python, one at a time. The forms:
#
# * IPv4: a dotted quad that ipaddress accepts as is (no leading zeros, each octet <= 255);
# * IPv6: lower case, no embedded IPv4 or zone, the hextets that are kept written out (not
#   inside "::"), non-zero and without leading zeros (then Python prints exactly them, then
#   "::"), and the rest any valid form: what servers log (inet_ntop) for global addresses.
#
# The patterns are written so that the engine never has to go back (an octet is chosen by its
# first digit; IPv6 decides at each ":" between one more hextet and "::"), which makes them
# about twice as fast as the plain alternations.

_FAST_OCTET = rb"(?:1[0-9]{0,2}|2(?:[0-4][0-9]?|5[0-5]?|[6-9])?|[3-9][0-9]?|0)"
_FAST_KEPT_HEXTET = rb"[1-9a-f][0-9a-f]{0,3}"  # non-zero, no leading zero, lower case
_FAST_HEXTET = rb"[0-9a-f]{1,4}"
_FAST_END = rb"(?=\n|\Z)"  # the whole field


def _ipv4_fast_form(kept: int) -> tuple[bytes, bytes, bytes]:
    """The pattern of the first ``kept`` (0-4) octets and of the rest; the new text of the rest."""
    octets = [_FAST_OCTET] * 4
    if kept == 0:
        return b"", rb"\.".join(octets), b"0.0.0.0"
    rest = rb"\." + rb"\.".join(octets[kept:]) if kept < 4 else b""
    return rb"\.".join(octets[:kept]), rest, b".0" * (4 - kept)


def _ipv6_fast_form(kept: int) -> tuple[bytes, bytes, bytes]:
    """Like :func:`_ipv4_fast_form` for an IPv6 address whose first ``kept`` (1-7) hextets stay."""
    hextet = _FAST_HEXTET

    def after(written: int) -> bytes:
        # ``written`` hextets after the kept ones so far; the next ":" starts either one more
        # hextet or "::", which stands for at least one zero hextet (so at most 7 are written).
        if kept + written == 8:
            return b""
        more = 7 - kept - written  # hextets that may follow "::"
        compressed = rb"::(?:%s(?::%s){0,%d})?" % (hextet, hextet, more - 1) if more else b"::"
        return rb"(?:%s|:%s%s)" % (compressed, hextet, after(written + 1))

    # Python writes "::" only for a run of two or more zero hextets.
    return rb":".join([_FAST_KEPT_HEXTET] * kept), after(0), b"::" if kept < 7 else b":0"


@dataclass(frozen=True)
class _FastPath:
    """The compiled patterns of the fast path for one masker (see above)."""

    # "\n", then the field (group 1) made of the kept part (group 2) and the rest of an address.
    ipv4: re.Pattern[bytes]
    ipv4_tail: bytes  # the new text of the rest
    ipv6: re.Pattern[bytes]
    ipv6_tail: bytes

    @classmethod
    def for_masker(cls, masker: IpMasker) -> _FastPath | None:
        """The fast path for ``masker``, or None when its options need Python for every field."""
        if (
            masker.skip_private
            or masker.increment
            or masker.ipv4_mask % 8
            or masker.ipv6_mask % 16
            or not 16 <= masker.ipv6_mask <= 112
        ):
            return None
        kept4, rest4, tail4 = _ipv4_fast_form(4 - masker.ipv4_mask // 8)
        kept6, rest6, tail6 = _ipv6_fast_form(8 - masker.ipv6_mask // 16)
        return cls(
            re.compile(rb"\n((%s)%s)%s" % (kept4, rest4, _FAST_END)),
            tail4,
            re.compile(rb"\n((%s)%s)%s" % (kept6, rest6, _FAST_END)),
            tail6,
        )


@dataclass
class AnonymiseStats:
    """Counts for one anonymised stream.

    ``unparseable_lines`` counts the non-blank lines where an address field was expected but was
    not an IP address (or a column was missing, or an address is one anonip leaves in clear).
    Those lines are written unchanged, except that ``replace`` (when given) replaces the field.
    """

    lines: int = 0
    addresses_truncated: int = 0
    unparseable_lines: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


class IpMasker:
    """Truncates the IP addresses of log lines the way anonip 1.1.0 does.

    :param ipv4_mask: number of low bits of an IPv4 address to zero (0-32).
    :param ipv6_mask: number of low bits of an IPv6 address to zero (0-128).
    :param column: 1-based column(s) holding an address, as anonip's ``--column``.
    :param regex: patterns whose groups are addresses, as anonip's ``--regex``; several patterns
        are joined with ``|``. The pattern must match at the start of the line (``re.match``).
        When given, ``column`` and ``delimiter`` are ignored, as in anonip.
    :param replace: text put in place of a field that is not an address (empty means none).
    :param delimiter: column separator.
    :param increment: added to each truncated address (left out when it would overflow).
    :param skip_private: leave addresses in private ranges as they are.
    :param cache_size: how many distinct address fields to remember.
    """

    def __init__(
        self,
        ipv4_mask: int = 8,
        ipv6_mask: int = 80,
        column: int | Sequence[int] = 1,
        regex: Sequence[re.Pattern[str] | str] | re.Pattern[str] | str | None = None,
        replace: str | None = None,
        delimiter: str = " ",
        increment: int = 0,
        skip_private: bool = False,
        cache_size: int = 1 << 16,
    ) -> None:
        self.ipv4_mask = _check_int("ipv4_mask", ipv4_mask, 0, 32)
        self.ipv6_mask = _check_int("ipv6_mask", ipv6_mask, 0, 128)
        self.increment = _check_int("increment", increment, 0, None)
        columns = [column] if isinstance(column, int) else list(column)
        if not columns:
            raise ValueError("column: at least one column is needed")
        # 0-based internally, duplicates kept: anonip processes a repeated column twice.
        self.columns = [_check_int("column", c, 1, None) - 1 for c in columns]
        if not isinstance(delimiter, str) or not delimiter:
            raise ValueError("delimiter must be a non-empty string")
        self.delimiter = delimiter
        if replace is not None and not isinstance(replace, str):
            raise TypeError("replace must be a string or None")
        self.replace = replace
        self.skip_private = bool(skip_private)
        self.regex = _compile_regex(regex)
        # The new prefix length of a truncated address, per IP version.
        self._prefixlen = {4: 32 - self.ipv4_mask, 6: 128 - self.ipv6_mask}
        self._ipv4_keep = (0xFFFFFFFF << self.ipv4_mask) & 0xFFFFFFFF

        # lru_cache is implemented in C: a hit costs about as much as a dict lookup, so a chunk
        # can be mapped through it without running Python code per line.
        self._token_cached = functools.lru_cache(maxsize=cache_size)(self._resolve_token)
        self._field_cached = functools.lru_cache(maxsize=cache_size)(self._classify_field)
        self._head_cached = functools.lru_cache(maxsize=cache_size)(self._classify_head)
        self._fast_columns = self.regex is None and self.columns == [0]
        # Blocks with "\n" line ends and the address in column 1 are handled as bytes: the
        # delimiter as bytes, the first columns truncated so far (head -> new head; at most
        # cache_size of them) and the fast path for those not seen before.
        self._first_column_bytes = _utf8(self.delimiter) if self._fast_columns else None
        self._truncated_heads: dict[bytes, bytes] = {}
        self._cache_size = cache_size
        self._fast = _FastPath.for_masker(self)

    # -- public API --------------------------------------------------------------------------

    def process_line(self, line: bytes) -> tuple[bytes, int]:
        """Anonymise one line (with or without its line end); return it and the truncation count."""
        out, _lines, truncated, _bad = self._process_block(bytes(line))
        return out, truncated

    # -- one address field -------------------------------------------------------------------

    def _resolve_token(self, token: str) -> tuple[str | None, str | None, int]:
        """Find the address in ``token`` as anonip's ``extract_ip`` does and mask it.

        Returns ``(text of the address as found, its replacement, outcome)``, or
        ``(None, None, _BAD)`` when ``token`` holds no address.
        """
        if not self.skip_private:
            quad = _PLAIN_IPV4.fullmatch(token)
            if quad is not None:
                # The common case done with integers: same result as the ipaddress route below.
                a, b, c, d = (int(x) for x in quad.groups())
                return token, self._mask_ipv4_int((a << 24) | (b << 16) | (c << 8) | d), _MASKED
        try:
            network = ipaddress.ip_network(token)
            found = token
        except ValueError:
            try:
                # A port and/or a trailing "]" (Apache's "[client 1.2.3.4:80]"): strip one "]"
                # unless it closes an IPv6 bracket, then let urlparse find the host, as anonip.
                host = token
                if (host.startswith("[") and host.endswith("]]")) or (not host.startswith("[") and host.endswith("]")):
                    host = host[:-1]
                found = urlparse("//" + host).hostname
                network = ipaddress.ip_network(found)  # type: ignore[arg-type]
            except Exception:  # anonip treats any failure here as "not an address"
                return None, None, _BAD
        return found, *self._mask_network(network)

    def _mask_network(self, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[str, int]:
        first = network[0]
        if self.skip_private and first.is_private:
            return str(first), _PRIVATE
        # anonip raises ValueError when a CIDR prefix is already shorter than the new one; the
        # network address of such a prefix hides at least as many bits as asked for.
        prefixlen = min(self._prefixlen[network.version], network.prefixlen)
        truncated = network.supernet(new_prefix=prefixlen)[0]
        if self.increment:
            try:
                truncated = truncated + self.increment
            except ipaddress.AddressValueError:
                logger.warning(
                    "increment %d runs past the end of the address space for one address; "
                    "that address is left un-incremented",
                    self.increment,
                )
        return str(truncated), _MASKED

    def _mask_ipv4_int(self, value: int) -> str:
        value &= self._ipv4_keep
        if self.increment:
            if value + self.increment > 0xFFFFFFFF:
                logger.warning(
                    "increment %d runs past the end of the address space for one address; "
                    "that address is left un-incremented",
                    self.increment,
                )
            else:
                value += self.increment
        return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"

    def _classify_field(self, field: str) -> tuple[str, int]:
        """The new text of a non-empty column and what happened to it."""
        found, new, outcome = self._token(field)
        if found is None:
            return (self.replace or field), _BAD
        if found not in field:
            # urlparse lower-cases the host, so "[2001:DB8::1]:80" is found as "2001:db8::1";
            # anonip then fails to replace it and leaves the address in clear. An address must
            # not stay in clear, so it is found again ignoring case (the one place we differ).
            return _replace_ignoring_case(field, found, new), outcome  # type: ignore[arg-type]
        return field.replace(found, new), outcome  # type: ignore[arg-type]

    def _classify_head(self, head: str) -> tuple[str, int]:
        """Like :meth:`_classify_field` for the first column as cut by the fast path."""
        if not head:
            return head, _SKIP
        if head[-1].isspace():
            # anonip strips trailing white space from the line before splitting it; when the
            # first column runs into that white space, only the whole line can tell.
            return head, _SLOW
        return self._classify_field(head)

    def _token(self, token: str) -> tuple[str | None, str | None, int]:
        if len(token) <= _CACHEABLE_FIELD_LEN:
            return self._token_cached(token)
        return self._resolve_token(token)

    def _field(self, field: str) -> tuple[str, int]:
        if len(field) <= _CACHEABLE_FIELD_LEN:
            return self._field_cached(field)
        return self._classify_field(field)

    # -- lines ---------------------------------------------------------------------------------

    def _process_block(self, block: bytes) -> tuple[bytes, int, int, int]:
        """Anonymise complete lines of bytes.

        Returns the new bytes, the number of lines, of addresses truncated, of unparseable lines.
        """
        if self._first_column_bytes and block and b"\r" not in block:
            return self._block_first_column(block)
        out, lines, truncated, bad = self._process_text(block.decode("utf-8", "surrogateescape"))
        return out.encode("utf-8", "surrogateescape"), lines, truncated, bad

    def _block_first_column(self, block: bytes) -> tuple[bytes, int, int, int]:
        """Address in column 1, ``\\n`` line ends: the block goes through C-level ``map`` calls as bytes.

        The first column of each line is looked up in the addresses already truncated; those
        not found are resolved together (:meth:`_resolve_heads`) and the lines put together again.
        """
        lines = block.split(b"\n")
        ends_with_newline = not lines[-1]
        if ends_with_newline:
            lines.pop()  # the empty piece after the last line end
        heads = list(map(_first, map(bytes.partition, lines, repeat(self._first_column_bytes))))
        new_heads = list(map(self._truncated_heads.get, heads))
        others: dict[bytes, tuple[bytes, int]] = {}
        if None in new_heads:
            truncated, others = self._resolve_heads(
                list(dict.fromkeys(compress(heads, map(is_, new_heads, repeat(None)))))
            )
            # dict.get(head, default): the new text of a head truncated now, else what was found.
            new_heads = list(map(truncated.get, heads, new_heads))
        count = len(lines)
        n_truncated, n_bad, whole_lines = count, 0, []
        if others:  # fields that are not plain addresses: their lines still have None
            i = -1
            try:
                while True:
                    i = new_heads.index(None, i + 1)
                    new_heads[i], outcome = others[heads[i]]
                    if outcome == _MASKED:
                        continue
                    n_truncated -= 1
                    if outcome == _BAD:
                        n_bad += 1
                    elif outcome == _SLOW:
                        new_heads[i] = heads[i]
                        line, t, b = self._line_columns(lines[i].decode("utf-8", "surrogateescape"))
                        whole_lines.append((i, line.encode("utf-8", "surrogateescape")))
                        n_truncated += t
                        n_bad += b
            except ValueError:  # no None left
                pass
        # The head is a prefix of its line, so replacing its first occurrence rewrites column 1.
        new_lines = list(map(bytes.replace, lines, heads, new_heads, repeat(1)))
        for i, line in whole_lines:
            new_lines[i] = line
        if ends_with_newline:
            new_lines.append(b"")
        return b"\n".join(new_lines), count, n_truncated, n_bad

    def _resolve_heads(self, heads: list[bytes]) -> tuple[dict[bytes, bytes], dict[bytes, tuple[bytes, int]]]:
        """New text of ``heads`` (distinct first columns not seen before): truncated addresses, and others.

        The truncated ones go straight into the memory of addresses truncated, unless there are
        more than it holds. The fast path (above) takes the plain IPv4 addresses, then the IPv6
        ones among what is left; Python resolves the rest, one field at a time.
        """
        known = self._truncated_heads
        if len(known) + len(heads) > self._cache_size:
            known.clear()  # a simple bound: what repeats is learnt again at once
        truncated = known if len(heads) <= self._cache_size else {}
        rest = b"\n" + b"\n".join(heads)
        fast = self._fast
        if fast is not None:
            for pattern, tail in ((fast.ipv4, fast.ipv4_tail), (fast.ipv6, fast.ipv6_tail)):
                parts = pattern.split(rest)  # text, field, kept part, text, field, kept part, ..., text
                if len(parts) > 1:
                    truncated.update(zip(parts[1::3], map(add, parts[2::3], repeat(tail)), strict=True))
                    # Between two matches there is nothing: fields in neither form are what is.
                    rest = b"".join(parts[0::3])
                if not rest:
                    break
        others = {}
        for head in rest[1:].split(b"\n") if rest else ():
            text, outcome = self._classify_head(head.decode("utf-8", "surrogateescape"))
            if outcome == _MASKED and len(head) <= _CACHEABLE_FIELD_LEN:
                truncated[head] = text.encode("utf-8", "surrogateescape")
            else:
                others[head] = text.encode("utf-8", "surrogateescape"), outcome
        return truncated, others

    def _process_text(self, text: str) -> tuple[str, int, int, int]:
        """Anonymise complete lines.

        Returns the new text, the number of lines, of addresses truncated, of unparseable lines.
        """
        if "\r" in text:
            parts = _NEWLINES.split(text)  # line, end, line, end, ..., rest after the last end
            lines = parts[0::2]
        else:
            parts = None
            lines = text.split("\n")
        # The piece after the last line end is a line only when it is not empty.
        n_lines = len(lines) - (lines[-1] == "")
        if self.regex is not None:
            new_lines, truncated, bad = self._lines_general(lines, self._line_regex)
        elif self._fast_columns:
            new_lines, truncated, bad = self._lines_first_column(lines)
        else:
            new_lines, truncated, bad = self._lines_general(lines, self._line_columns)
        if parts is None:
            return "\n".join(new_lines), n_lines, truncated, bad
        parts[0::2] = new_lines
        return "".join(parts), n_lines, truncated, bad

    def _lines_first_column(self, lines: list[str]) -> tuple[list[str], int, int]:
        """Address in column 1: the whole chunk goes through C-level ``map`` calls."""
        delimiter = self.delimiter
        heads = list(map(_first, map(str.partition, lines, repeat(delimiter))))
        if max(map(len, heads)) > _CACHEABLE_FIELD_LEN:
            return self._lines_general(lines, self._line_columns)
        outcomes = list(map(self._head_cached, heads))
        kinds = list(map(_second, outcomes))
        # The head is a prefix of its line, so replacing its first occurrence rewrites column 1.
        new_lines = list(map(str.replace, lines, heads, map(_first, outcomes), repeat(1)))
        truncated = kinds.count(_MASKED)
        bad = kinds.count(_BAD)
        if _SLOW in kinds:
            for i, kind in enumerate(kinds):
                if kind == _SLOW:
                    new_lines[i], t, b = self._line_columns(lines[i])
                    truncated += t
                    bad += b
        return new_lines, truncated, bad

    @staticmethod
    def _lines_general(lines: list[str], one_line: Callable[[str], tuple[str, int, int]]) -> tuple[list[str], int, int]:
        new_lines = []
        truncated = bad = 0
        append = new_lines.append
        for line in lines:
            new, t, b = one_line(line)
            append(new)
            truncated += t
            bad += b
        return new_lines, truncated, bad

    def _line_columns(self, line: str) -> tuple[str, int, int]:
        """One line, column mode: anonip's ``process_line_column`` on the stripped line."""
        content = line.rstrip()
        if not content:
            return line, 0, 0
        fields = content.split(self.delimiter)
        n_fields = len(fields)
        truncated = bad = 0
        for index in self.columns:
            if index >= n_fields:
                bad = 1
                continue
            field = fields[index]
            if not field:
                continue
            fields[index], outcome = self._field(field)
            if outcome == _MASKED:
                truncated += 1
            elif outcome == _BAD:
                bad = 1
        return self.delimiter.join(fields) + line[len(content) :], truncated, bad

    def _line_regex(self, line: str) -> tuple[str, int, int]:
        """One line, regex mode: anonip's ``process_line_regex`` on the stripped line."""
        content = line.rstrip()
        if not content:
            return line, 0, 0
        match = self.regex.match(content)  # type: ignore[union-attr]
        if match is None:
            return line, 0, 0
        # Distinct non-empty groups, longest first (see the module docstring).
        groups = sorted({g: None for g in match.groups() if g}, key=len, reverse=True)
        truncated = bad = 0
        for group in groups:
            found, new, outcome = self._token(group)
            if found is None:
                bad = 1
                if self.replace:
                    content = content.replace(group, self.replace)
                continue
            if outcome == _MASKED:
                truncated += 1
            if found in content:
                content = content.replace(found, new)  # type: ignore[arg-type]
            else:  # the lower-cased host of an upper-case IPv6 address: see _classify_field
                content = _replace_ignoring_case(content, found, new)  # type: ignore[arg-type]
        return _rejoin(line, content), truncated, bad


def _utf8(text: str) -> bytes | None:
    """``text`` as UTF-8, or None when it holds a lone surrogate (a byte that is not UTF-8)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return None


def _replace_ignoring_case(text: str, found: str, new: str) -> str:
    return re.compile(re.escape(found), re.IGNORECASE).sub(lambda _: new, text)


def _rejoin(line: str, new_content: str) -> str:
    """``new_content`` followed by the trailing white space of the original ``line``."""
    return new_content + line[len(line.rstrip()) :]


def _check_int(name: str, value: int, low: int, high: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be {bounds}")
    return value


def _compile_regex(
    regex: Sequence[re.Pattern[str] | str] | re.Pattern[str] | str | None,
) -> re.Pattern[str] | None:
    """One pattern from anonip-style ``--regex`` arguments (several are joined with ``|``)."""
    if regex is None:
        return None
    if isinstance(regex, (str, re.Pattern)):
        regex = [regex]
    patterns = list(regex)
    if not patterns:
        return None
    for pattern in patterns:
        source = pattern.pattern if isinstance(pattern, re.Pattern) else pattern
        if not isinstance(source, str):
            raise TypeError("regex patterns must be str patterns (lines are matched as text)")
    if len(patterns) == 1:
        only = patterns[0]
        return only if isinstance(only, re.Pattern) else re.compile(only)
    flags = 0
    sources = []
    for pattern in patterns:
        if isinstance(pattern, re.Pattern):
            flags |= pattern.flags
            sources.append(pattern.pattern)
        else:
            sources.append(pattern)
    return re.compile("|".join(sources), flags)


# -- streams -----------------------------------------------------------------------------------


def anonymise_stream(src: BinaryIO, dst: BinaryIO, masker: IpMasker, chunk_size: int = 1 << 20) -> AnonymiseStats:
    """Copy ``src`` to ``dst`` with every address truncated by ``masker``.

    Reads ``chunk_size`` bytes at a time and processes whole lines; a line longer than a chunk
    is gathered until its end, so memory grows only with the longest line.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    stats = AnonymiseStats()
    # From a pipe or a terminal (a live log), take what has arrived instead of waiting for a
    # full chunk, and pass each batch on at once; from a file, read and write whole chunks.
    live = _is_live(src)
    read = src.read1 if live and hasattr(src, "read1") else src.read
    pending: list[bytes] = []

    def emit(block: bytes) -> None:
        data, lines, truncated, bad = masker._process_block(block)
        dst.write(data)
        stats.lines += lines
        stats.addresses_truncated += truncated
        stats.unparseable_lines += bad
        stats.bytes_out += len(data)

    while True:
        piece = read(chunk_size)
        if not piece:
            break
        stats.bytes_in += len(piece)
        # Cut after the last complete line end. A "\r" as the very last byte may be the first
        # half of "\r\n", so it waits for the next piece.
        cut = max(piece.rfind(b"\n"), piece.rfind(b"\r", 0, len(piece) - 1)) + 1
        if cut == 0:
            pending.append(piece)
            continue
        pending.append(piece if cut == len(piece) else piece[:cut])
        block = pending[0] if len(pending) == 1 else b"".join(pending)
        pending = [] if cut == len(piece) else [piece[cut:]]
        emit(block)
        if live:
            dst.flush()
    if pending:
        emit(b"".join(pending))
    return stats


def _is_live(stream: BinaryIO) -> bool:
    """Whether ``stream`` is a pipe, socket or terminal rather than a file or a buffer."""
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (AttributeError, OSError, ValueError):  # io.BytesIO and friends have no descriptor
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


# -- command line ------------------------------------------------------------------------------


def _mask_bits(bits: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            mask = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer between 1 and {bits}") from None
        if not 0 < mask <= bits:
            raise argparse.ArgumentTypeError(f"must be an integer between 1 and {bits}")
        return mask

    return parse


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a positive integer") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return number


def _regex_arg(value: str) -> str:
    try:
        re.compile(value)
    except re.error as err:
        raise argparse.ArgumentTypeError(f"must be a valid regex. Error: {err.msg}") from None
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the anonymiser's options (anonip's, plus ``--quiet``) to ``parser``."""
    parser.add_argument(
        "-4",
        "--ipv4mask",
        "--ipv4-mask",
        dest="ipv4mask",
        metavar="BITS",
        type=_mask_bits(32),
        default=8,
        help="truncate the last BITS bits of IPv4 addresses (default: %(default)s)",
    )
    parser.add_argument(
        "-6",
        "--ipv6mask",
        "--ipv6-mask",
        dest="ipv6mask",
        metavar="BITS",
        type=_mask_bits(128),
        default=80,
        help="truncate the last BITS bits of IPv6 addresses (default: %(default)s)",
    )
    parser.add_argument(
        "-c",
        "--column",
        dest="columns",
        metavar="N",
        nargs="+",
        type=_positive_int,
        help="the address is in column N (1-based; default: 1)",
    )
    parser.add_argument(
        "--regex",
        metavar="PATTERN",
        nargs="+",
        type=_regex_arg,
        help="regex whose groups are addresses, matched at the start of each line "
        "(instead of --column; several are joined with |)",
    )
    parser.add_argument(
        "-r",
        "--replace",
        metavar="STR",
        help="put STR in place of an address field that is not an IP address",
    )
    parser.add_argument("-l", "--delimiter", metavar="STR", help='column delimiter (default: " ")')
    parser.add_argument(
        "-i",
        "--increment",
        metavar="N",
        type=_positive_int,
        default=0,
        help="add N to each truncated address (default: 0)",
    )
    parser.add_argument(
        "-p",
        "--skip-private",
        dest="skip_private",
        action="store_true",
        help="leave addresses in private ranges unmasked",
    )
    parser.add_argument(
        "--input",
        metavar="FILE",
        help="log to read (default: standard input; a .gz file is decompressed)",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="file to write, replaced once complete (default: standard output; a .gz file is compressed)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="do not print the summary to standard error")


def run_from_args(args: argparse.Namespace) -> int:
    """Run the anonymiser for options parsed by a parser set up with :func:`add_arguments`."""
    prog = "lethe anonymise-log"
    if args.regex and (args.columns is not None or args.delimiter is not None):
        print(
            f"{prog}: error: --regex cannot be combined with --column or --delimiter",
            file=sys.stderr,
        )
        return 2
    masker = IpMasker(
        ipv4_mask=args.ipv4mask,
        ipv6_mask=args.ipv6mask,
        column=args.columns or [1],
        regex=args.regex,
        replace=args.replace,
        delimiter=" " if args.delimiter is None else args.delimiter,
        increment=args.increment,
        skip_private=args.skip_private,
    )
    try:
        with _open_input(args.input) as src, _open_output(args.output) as dst:
            stats = anonymise_stream(src, dst, masker)
    except gzip.BadGzipFile:
        # Its message quotes the first bytes of the file, which may be part of an address.
        print(f"{prog}: error: the input is not a gzip file", file=sys.stderr)
        return 1
    except (EOFError, zlib.error):
        print(f"{prog}: error: the gzip input is truncated or corrupt", file=sys.stderr)
        return 1
    except OSError as err:
        # These messages name files, never log content.
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if not args.quiet:
        print(
            f"{prog}: {stats.lines} lines, {stats.addresses_truncated} addresses truncated, "
            f"{stats.unparseable_lines} unparseable lines, "
            f"{stats.bytes_in} bytes in, {stats.bytes_out} bytes out",
            file=sys.stderr,
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="lethe anonymise-log",
        description="Truncate the IP addresses of a web-server log (anonip 1.1.0 semantics).",
    )
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


@contextmanager
def _open_input(path: str | None) -> Iterator[BinaryIO]:
    if path is None or path == "-":
        yield sys.stdin.buffer
        return
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as src:  # type: ignore[operator]
        yield src  # type: ignore[misc]


@contextmanager
def _open_output(path: str | None) -> Iterator[BinaryIO]:
    """Standard output, or ``path`` written to a temporary file renamed into place at the end.

    The rename means a failed run never leaves a half-anonymised file behind, and ``--input``
    and ``--output`` may name the same file.
    """
    if path is None or path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    compress = target.name.endswith(".gz")
    if target.exists() and not target.is_file():
        # A FIFO or a device cannot be replaced; write to it directly.
        with open(target, "wb") as raw:
            if compress:
                with gzip.GzipFile(filename=target.name, mode="wb", fileobj=raw, compresslevel=6) as gz:
                    yield gz  # type: ignore[misc]
            else:
                yield raw
        return
    mode = target.stat().st_mode & 0o7777 if target.exists() else _default_file_mode()
    with atomic_rewrite(target) as new:
        if compress:
            # filename= puts the final name, not the temporary one, in the gzip header.
            with gzip.GzipFile(filename=target.name, mode="wb", fileobj=new.raw, compresslevel=6) as gz:
                yield gz  # type: ignore[misc]
        else:
            yield new.raw
        new.close(mode)
        new.replace(sync_folder=False)


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


if __name__ == "__main__":
    sys.exit(main())
