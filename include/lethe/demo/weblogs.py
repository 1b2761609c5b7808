"""The demo estate's connection logs: a year and some weeks of daily access logs.

One file a day, ``access.log-YYYYMMDD``, from ``days`` days before the as-of up to the day before
it; files more than 7 days old are gzip-compressed, as logrotate leaves them. Each holds a few
hundred lines in the combined log format of ``shared/data/apache_access_sample.log`` (client,
identity, user, ``[time]``, ``"request"``, status, bytes, ``"referrer"``, ``"user agent"``), with
IPv4 and IPv6 clients and, now and then, a client field that is a host name (the web server
resolved it: not an address, kept as is by the anonymiser). The folder also holds the live
``access.log`` and an ``error.log``, which the rules must never touch.

The same as-of and seed always give the same bytes (gzip headers carry no time stamp).
"""

from __future__ import annotations

import gzip
import ipaddress
import os
import random
from datetime import datetime, timedelta
from pathlib import Path

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DEMO_DAYS = 365 + 5 * 7  # a year and five weeks
GZIP_AFTER_DAYS = 7
FILE_MODE = 0o640
OTHER_FILES = ("access.log", "error.log")

# Requests, referrers and agents in the style of the sample log.
PATHS = (
    "/",
    "/favicon.ico",
    "/robots.txt",
    "/style2.css",
    "/reset.css",
    "/images/jordan-80.png",
    "/images/web/2009/banner.png",
    "/blog/tags/puppet?flav=rss20",
    "/blog/geekery/xvfb-firefox.html",
    "/articles/dynamic-dns-with-dhcp/",
    "/projects/xdotool/",
    "/projects/xdotool/xdotool.xhtml",
    "/presentations/logstash-monitorama-2013/",
    "/presentations/logstash-monitorama-2013/css/print/paper.css",
    "/presentations/logstash-monitorama-2013/images/kibana-search.png",
    "/presentations/logstash-monitorama-2013/plugin/highlight/highlight.js",
    "/planning/pricing",
    "/planning/free-trial",
    "/planning/login",
    "/planning/api/v2/resources",
)
REFERRERS = (
    "-",
    "-",
    "-",
    "http://semicomplete.com/",
    "http://semicomplete.com/presentations/logstash-monitorama-2013/",
    "https://www.google.com/",
    "https://www.bing.com/search?q=planning+software",
    "https://www.planningpme.com/",
)
AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/32.0.1700.77 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "UniversalFeedParser/4.2-pre-314-svn +http://feedparser.org/",
    "curl/8.5.0",
)
STATUSES = (200,) * 14 + (304, 304, 301, 404, 206, 500)
HOSTNAMES = ("client.example.net", "proxy-3.example.org", "cache.example.com")


def _public_ipv4(rng: random.Random) -> str:
    while True:
        address = ipaddress.IPv4Address(rng.getrandbits(32))
        if address.is_global:
            return str(address)


def _public_ipv6(rng: random.Random) -> str:
    while True:
        # Global unicast 2000::/3; some clients have random (privacy extension) interface ids,
        # most have small ones, so both the full and the compressed (::) forms occur.
        value = (0b001 << 125) | rng.getrandbits(125)
        if rng.random() < 0.6:
            value = (value >> 64 << 64) | rng.getrandbits(16)
        address = ipaddress.IPv6Address(value)
        if address.is_global:
            return str(address)


def demo_clients(rng: random.Random, n: int = 400) -> list[str]:
    """A pool of client fields: mostly IPv4, some IPv6, a few host names."""
    clients = [_public_ipv4(rng) for _ in range(int(n * 0.8))]
    clients += [_public_ipv6(rng) for _ in range(n - len(clients))]
    return clients


def log_line(rng: random.Random, client: str, when: datetime) -> str:
    stamp = f"{when.day:02d}/{MONTHS[when.month - 1]}/{when.year}:{when:%H:%M:%S} +0000"
    method = "GET" if rng.random() < 0.95 else rng.choice(("POST", "HEAD"))
    status = rng.choice(STATUSES)
    size = "-" if status == 304 else str(rng.randint(200, 250_000))
    return (
        f'{client} - - [{stamp}] "{method} {rng.choice(PATHS)} HTTP/1.1" {status} {size} '
        f'"{rng.choice(REFERRERS)}" "{rng.choice(AGENTS)}"\n'
    )


def day_lines(rng: random.Random, clients: list[str], day: datetime, n: int) -> bytes:
    seconds = sorted(rng.randrange(86_400) for _ in range(n))
    lines = []
    for second in seconds:
        client = rng.choice(HOSTNAMES) if rng.random() < 0.01 else rng.choice(clients)
        lines.append(log_line(rng, client, day + timedelta(seconds=second)))
    return "".join(lines).encode("utf-8")


def log_name(day: datetime, gz: bool) -> str:
    return f"access.log-{day:%Y%m%d}" + (".gz" if gz else "")


def seed_weblogs(
    folder: Path | str, as_of: datetime, seed: int = 44, days: int = DEMO_DAYS, lines: tuple[int, int] = (200, 400)
) -> dict:
    """Write ``days`` daily logs ending the day before ``as_of``; returns what was written.

    Earlier demo logs (and Lethe temporary files) in the folder are removed first; nothing else is.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for entry in folder.iterdir():
        name = entry.name
        if entry.is_file() and (name.startswith("access.log") or name.endswith(".lethe-tmp") or name in OTHER_FILES):
            entry.unlink()
    rng = random.Random(seed)
    clients = demo_clients(rng)
    today = datetime(as_of.year, as_of.month, as_of.day)
    written = []
    total_lines = 0
    for back in range(days, 0, -1):
        day = today - timedelta(days=back)
        n = rng.randint(*lines)
        data = day_lines(rng, clients, day, n)
        gz = back > GZIP_AFTER_DAYS
        path = folder / log_name(day, gz)
        if gz:
            with (
                open(path, "wb") as raw,
                gzip.GzipFile(filename=path.name[:-3], mode="wb", fileobj=raw, compresslevel=6, mtime=0) as out,
            ):
                out.write(data)
        else:
            path.write_bytes(data)
        os.chmod(path, FILE_MODE)
        written.append(path.name)
        total_lines += n
    # The live log (today so far) and another log: not matched by the pattern, never touched.
    (folder / "access.log").write_bytes(day_lines(rng, clients, today, 50))
    (folder / "error.log").write_text(
        f"[{today:%a %b %d %H:%M:%S %Y}] [error] [client {clients[0]}] File does not exist: /srv/www/x.php\n"
    )
    return {"folder": str(folder), "files": written, "lines": total_lines}
