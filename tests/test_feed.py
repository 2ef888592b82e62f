"""The feed source against real-world feeds (tests/fixtures/feeds/NOTES.md) and real HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.config import SourceSettings
from newsletter.errors import SourceError
from newsletter.models import Article, Image, stable_id
from newsletter.sources import collect_articles
from newsletter.sources.feed import MAX_FEED_BYTES, read_feed
from newsletter.store import Store
from newsletter.store.feeds import Feeds

FEEDS = Path(__file__).parent / "fixtures" / "feeds"
SAMPLE_FEED = Path(__file__).parent.parent / "articles" / "feeds" / "sample.xml"
JSON_KEYS = {"id", "title", "subtitle", "url", "authors", "published", "source", "excerpt"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'feeds.db'}")
    yield store
    store.close()


@dataclass
class Reader:
    """Reads a feed source the way collect_articles does, keeping the warnings."""

    feeds: Feeds
    warnings: list[str] = field(default_factory=list)

    def __call__(self, url: str | Path, *, name: str = "news", timeout: float = 5.0) -> list[Article]:
        source = SourceSettings(name=name, kind="feed", url=str(url), timeout=timeout)
        return read_feed(source, self.feeds, self.warnings.append)

    def by_title(self, url: str | Path) -> dict[str, Article]:
        return {article.title: article for article in self(url)}


@pytest.fixture
def read(store: Store) -> Reader:
    return Reader(store.feeds)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


# --- real-world feeds -----------------------------------------------------------------


def test_wordpress_feed_gives_creator_encoded_content_and_date(read: Reader) -> None:
    [article] = read(FEEDS / "wordpress-rss2.xml")
    assert article.id == stable_id("news", "http://localhost/wordpress/?p=1")
    assert article.title == "Hello world!"
    assert article.subtitle == ""
    assert article.url == "http://localhost/wordpress/?p=1"
    assert [(a.name, a.bio) for a in article.authors] == [("admin", "")]
    assert article.body_html == (
        "<p>Welcome to WordPress. This is your first post. Edit or delete it, then start blogging!</p>"
    )
    # The description says what the body says: no separate excerpt.
    assert article.excerpt == ""
    assert article.published == utc(2011, 8, 11, 6, 51, 50)
    assert article.source == "news"
    assert read.warnings == []


def test_bundled_sample_feed(read: Reader) -> None:
    articles = read(SAMPLE_FEED)
    assert len(articles) == 4
    first = articles[0]
    assert first.title == (
        "House Members Introduce War Powers Resolution to End Support for Red Sea Strikes"
    )
    assert [a.name for a in first.authors] == ["Kyle Anzalone", "Dave DeCamp"]
    assert first.excerpt.endswith("before the end of the session […]")
    assert (
        '<img alt="The Capitol dome in Washington" height="533" '
        'src="https://example.org/news/wp-content/uploads/2026/11/capitol-dome.jpg" width="800">'
    ) in first.body_html
    assert "“The Constitution gives Congress" in first.body_html
    for article in articles:
        assert article.url is not None and article.url.startswith("https://example.org/")
        assert utc(2026, 11, 20) < article.published < utc(2026, 11, 25)
    assert read.warnings == []


def test_atom_relative_links_resolve_against_the_feeds_self_link(read: Reader) -> None:
    articles = read.by_title(FEEDS / "tpm.atom")
    hiring = articles["We're Hiring: Senior Editor"]
    assert hiring.url == "http://talkingpointsmemo.com/edblog/were-hiring-senior-editor"
    assert [a.name for a in hiring.authors] == ["Josh Marshall"]
    assert hiring.published == utc(2017, 11, 8, 23, 2, 40)
    assert hiring.id == stable_id("news", "tag:talkingpointsmemo.com,2005:ArticleDecorator/270059")
    # Escaped HTML content, its character references decoded.
    assert hiring.body_html.startswith("<p>TPM is currently hiring for four editorial positions")
    assert "I’ll be posting job listings" in hiring.body_html
    gorka = articles["Hannity Announces Fox Has Hired Sebastian Gorka As NatSec Strategist"]
    assert gorka.url == (
        "http://talkingpointsmemo.com/livewire/"
        "hannity-announces-fox-hired-sebastian-gorka-national-security-strategist"
    )


def test_atom_xml_base_resolves_links_and_images(read: Reader) -> None:
    cfp, mingus = read(FEEDS / "ongoing.atom")
    assert cfp.url == "http://www.tbray.org/ongoing/When/200x/2006/12/12/Java-One-CFP"
    assert mingus.url == "http://www.tbray.org/ongoing/When/200x/2006/12/11/Mingus"
    assert mingus.title == "5✭♫: Better Get Hit In Your Soul"
    assert (
        '<img alt="Charles Mingus" src="http://www.tbray.org/ongoing/When/200x/2006/12/11/Mingus-playing.png">'
    ) in mingus.body_html
    assert 'href="http://www.tbray.org/ongoing/When/200x/2006/01/23/5-Star-Music"' in mingus.body_html
    # Entries without an author inherit the Atom feed's.
    assert [a.name for a in mingus.authors] == ["Tim Bray"]
    # The summary differs from the content, so it becomes the excerpt, as plain text.
    assert mingus.excerpt.startswith(
        "This piece appears on Mingus Ah Um, a 1959 album by Charles Mingus, and on Mingus at Antibes"
    )
    assert "<" not in mingus.excerpt and "rock-&-roll" in mingus.excerpt
    assert cfp.excerpt == ""
    assert mingus.published == utc(2006, 12, 11, 20, 0, 0)


@pytest.mark.parametrize(
    ("fixture", "title", "expected_in_body", "authors"),
    [
        (
            "jn-iso-8859-1.rss",
            "Mãe de utente é a nova presidente da Raríssimas",
            "Sónia Laygue, profissional na área da Recursos Humanos",
            [],
        ),
        (
            "oren-windows-1251.xml",
            "ЧОПовцы в Оренбурге избили молодого человека",
            "уголовное дело (видео)",
            [],
        ),
        ("latin2.rss", "ZAŻÓŁĆ GĘSLĄ JAŹŃ", "Szedł sasza suchą szosą", ["Adam Gżegżółka"]),
        ("rss2sample-bom.xml", "Star City", "They take a crash course in culture", ["Writer"]),
    ],
)
def test_declared_encodings_and_bom(
    read: Reader, fixture: str, title: str, expected_in_body: str, authors: list[str]
) -> None:
    articles = read.by_title(FEEDS / fixture)
    assert title in articles
    assert expected_in_body in articles[title].body_html
    assert [a.name for a in articles[title].authors] == authors
    assert read.warnings == []


def test_item_without_title_is_named_by_its_first_words(read: Reader) -> None:
    articles = read(FEEDS / "rss2sample-bom.xml")
    assert articles[1].title == "Sky watchers in Europe, Asia, and parts of Alaska and…"
    assert articles[1].url == "http://liftoff.msfc.nasa.gov/2003/05/30.html#item572"
    assert articles[1].published == utc(2003, 5, 30, 11, 6, 42)


def test_cdata_everywhere(read: Reader) -> None:
    ibope, promotoria, dow = read(FEEDS / "uol-cdata.rss")
    assert ibope.title == "Ibope: Bolsonaro perde de Haddad, Ciro e Alckmin em simulações de 2º turno"
    assert ibope.url == (
        "https://noticias.uol.com.br/politica/eleicoes/2018/noticias/2018/09/24/"
        "ibope-bolsonaro-perde-de-haddad-ciro-e-alckmin-em-simulacoes-de-2-turno.htm"
    )
    assert ibope.body_html.startswith(
        '<img src="https://conteudo.imguol.com.br/c/noticias/5f/2018/09/17/'
        'presidenciaveis-1537211917356_142x100.jpg">'
    )
    assert promotoria.body_html == ""
    assert dow.title == "Dow Jones fecha em baixa de 0,68%"
    assert read.warnings == []


@pytest.mark.parametrize("fixture", ["rss_7_1.rdf", "uol-cdata.rss"])
def test_undated_entries_keep_the_time_first_seen(read: Reader, fixture: str) -> None:
    before = datetime.now(timezone.utc)
    first = read(FEEDS / fixture)
    after = datetime.now(timezone.utc)
    assert all(before <= a.published <= after for a in first)
    again = read(FEEDS / fixture)
    assert [a.published for a in again] == [a.published for a in first]
    assert [a.id for a in again] == [a.id for a in first]


def test_rss_1_0_rdf(read: Reader) -> None:
    xslt, rdf = read(FEEDS / "rss_7_1.rdf")
    assert xslt.title == "Processing Inclusions with XSLT"
    assert xslt.url == "http://xml.com/pub/2000/08/09/xslt/xslt.html"
    assert xslt.id == stable_id("news", "http://xml.com/pub/2000/08/09/xslt/xslt.html")
    assert "Edd Dumbill takes a look at RDFDB" in rdf.body_html
    assert read.warnings == []


def test_malformed_feed_keeps_its_entries_with_one_warning(read: Reader) -> None:
    articles = read(FEEDS / "saxerror.xml", name="broken")
    assert [a.title for a in articles] == ["Good Item", "Bad Item", "Item After Error"]
    assert articles[1].url == "http://example.com/bad?foo=1&bar=2"
    assert read.warnings == [
        "source 'broken': malformed feed (line 15: not well-formed (invalid token)); "
        "kept the 3 entries that parsed"
    ]


def test_rss_0_91_with_text_before_the_xml_declaration(read: Reader) -> None:
    articles = read(FEEDS / "folha-rss091.rss")
    assert [a.title for a in articles] == ["Vida de jogador: trocando seis por nada", "Palavras de ordem"]
    assert "situação dos clubes" in articles[0].body_html
    assert len(read.warnings) == 1
    assert "malformed feed (line 3: XML or text declaration not at start of entity)" in read.warnings[0]


def test_illegally_nested_items_are_dropped_as_empty(read: Reader) -> None:
    articles = read(FEEDS / "illegally-nested.xml")
    assert [a.title for a in articles] == [
        "My Professional Armchair Analysis of CES",
        "Did We Learn Nothing From the Dot-Com Bust?",
    ]
    assert articles[0].published == utc(2018, 1, 17, 20, 50)
    assert read.warnings == ["source 'news': skipped 2 feed entries with no title, link or text"]


def test_html_page_instead_of_a_feed_is_a_source_error(read: Reader) -> None:
    path = FEEDS / "notafeed.html"
    with pytest.raises(SourceError) as caught:
        read(path, name="oops")
    assert str(caught.value) == f"source 'oops': {path} is not a readable feed (line 7: mismatched tag)"


def test_missing_feed_file_is_a_source_error(read: Reader, tmp_path: Path) -> None:
    path = tmp_path / "nowhere.xml"
    with pytest.raises(SourceError) as caught:
        read(path)
    assert str(caught.value) == (
        f"source 'news': cannot read feed file {path} (No such file or directory); fix its url"
    )


def test_feed_html_is_sanitized(read: Reader, tmp_path: Path) -> None:
    hostile = tmp_path / "hostile.xml"
    hostile.write_text(
        """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel><title>t</title><link>https://example.org/</link>
<item>
  <title>Hostile &lt;b&gt;entry&lt;/b&gt;</title>
  <link>javascript:alert(1)</link>
  <description><![CDATA[Summary <script>alert('summary')</script>text]]></description>
  <content:encoded><![CDATA[<p onclick="steal()">Body <a href="javascript:alert(1)">link</a>
  <img src="https://example.org/a.png" onerror="steal()" alt="a"><script>alert(2)</script>
  <a href="https://example.org/ok" style="color:red">fine</a></p>]]></content:encoded>
</item></channel></rss>""",
        encoding="utf-8",
    )
    [article] = read(hostile)
    body = article.body_html.lower()
    for forbidden in ("<script", "alert", "onclick", "onerror", "javascript:", "style="):
        assert forbidden not in body
    assert '<a href="https://example.org/ok" rel="noopener">fine</a>' in article.body_html
    assert '<img alt="a" src="https://example.org/a.png">' in article.body_html
    assert article.excerpt == "Summary text"
    # A link that is not a web URL is no link at all.
    assert article.url is None
    # Markup escaped into an RSS title is read as HTML, and a title is plain text.
    assert article.title == "Hostile entry"


def test_relative_links_without_a_feed_url_resolve_against_the_entry_link(read: Reader, tmp_path: Path) -> None:
    path = tmp_path / "nobase.xml"
    path.write_text(
        """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>t</title>
<item><title>Linked</title><link>https://example.org/news/one</link>
  <description><![CDATA[<p><a href="/about">About</a> <img src="chart.png" alt="c"></p>]]></description></item>
<item><title>Unlinked</title>
  <description><![CDATA[<p><a href="/about">About</a> <img src="chart.png" alt="c"></p>]]></description></item>
</channel></rss>""",
        encoding="utf-8",
    )
    articles = read.by_title(path)
    assert articles["Linked"].body_html == (
        '<p><a href="https://example.org/about" rel="noopener">About</a> '
        '<img alt="c" src="https://example.org/news/chart.png"></p>'
    )
    assert articles["Unlinked"].body_html == '<p><a rel="noopener">About</a> </p>'
    assert read.warnings == [
        "source 'news': dropped 2 links or images with no web address (first: /about); "
        "relative ones need the feed's URL or an entry link"
    ]


def test_lead_images_from_media_content_enclosures_or_the_content(read: Reader, tmp_path: Path) -> None:
    path = tmp_path / "images.xml"
    path.write_text(
        """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"
     xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel><title>t</title><link>https://example.org/</link>
<item><title>Media</title><link>https://example.org/1</link>
  <media:content url="https://cdn.example.org/1.jpg" medium="image" width="1600" height="900"/>
  <description>One.</description></item>
<item><title>Video first</title><link>https://example.org/2</link>
  <media:content url="https://cdn.example.org/2.mp4" type="video/mp4"/>
  <media:content url="https://cdn.example.org/2.png"/>
  <description>Two.</description></item>
<item><title>Enclosure</title><link>https://example.org/3</link>
  <enclosure url="https://cdn.example.org/3.mp3" type="audio/mpeg" length="1"/>
  <enclosure url="https://cdn.example.org/3.webp" type="image/webp" length="1"/>
  <description>Three.</description></item>
<item><title>Content</title><link>https://example.org/4</link>
  <content:encoded><![CDATA[<p>Text <img src="data:image/png;base64,AAAA" alt="no">
  <img src="/img/4.jpg" alt="A &amp; B" width="300"></p>]]></content:encoded></item>
<item><title>Hostile</title><link>https://example.org/5</link>
  <media:content url="javascript:alert(1)" medium="image"/>
  <enclosure url="file:///etc/passwd" type="image/png" length="1"/>
  <description>Five.</description></item>
</channel></rss>""",
        encoding="utf-8",
    )
    images = {title: article.image for title, article in read.by_title(path).items()}
    assert images == {
        "Media": Image("https://cdn.example.org/1.jpg", "Media", 1600),
        "Video first": Image("https://cdn.example.org/2.png", "Video first"),
        "Enclosure": Image("https://cdn.example.org/3.webp", "Enclosure"),
        "Content": Image("https://example.org/img/4.jpg", "A & B", 300),
        "Hostile": None,
    }


# --- HTTP -----------------------------------------------------------------------------


@dataclass
class FeedServer:
    """A real HTTP server on loopback serving fixture feeds; it records what it was asked."""

    base: str
    routes: dict[str, tuple[int, bytes, dict[str, str]]]
    requests: list[dict[str, str]]
    release: threading.Event

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    routes: dict[str, tuple[int, bytes, dict[str, str]]] = {}
    requests: list[dict[str, str]] = []
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            requests.append({"path": self.path, **dict(self.headers.items())})
            if self.path == "/slow":
                release.wait(10)
            status, body, headers = routes.get(self.path, (404, b"not found", {}))
            if status == 200 and headers.get("ETag") and self.headers.get("If-None-Match") == headers["ETag"]:
                status, body = 304, b""
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield FeedServer(f"http://{host}:{port}", routes, requests, release)
    release.set()
    server.shutdown()
    server.server_close()


def test_conditional_get_sends_validators_and_reuses_the_body_on_304(
    read: Reader, store: Store, feed_server: FeedServer
) -> None:
    feed_server.routes["/feed/"] = (
        200,
        (FEEDS / "wordpress-rss2.xml").read_bytes(),
        {
            "Content-Type": "application/rss+xml; charset=UTF-8",
            "ETag": '"v1"',
            "Last-Modified": "Thu, 11 Aug 2011 06:51:50 GMT",
        },
    )
    url = feed_server.url("/feed/")
    first = read(url)
    second = read(url)

    assert [r.get("If-None-Match") for r in feed_server.requests] == [None, '"v1"']
    assert feed_server.requests[1]["If-Modified-Since"] == "Thu, 11 Aug 2011 06:51:50 GMT"
    assert feed_server.requests[0]["User-Agent"].startswith("newsletter/")
    assert [a.title for a in second] == ["Hello world!"]
    assert second == first
    cached = store.feeds.get_cache(url)
    assert cached is not None and cached.etag == '"v1"'
    assert cached.body == (FEEDS / "wordpress-rss2.xml").read_bytes()
    assert read.warnings == []


def test_relative_links_resolve_against_the_url_fetched(read: Reader, feed_server: FeedServer) -> None:
    body = (FEEDS / "tpm.atom").read_bytes().replace(b'<link rel="self"', b'<link rel="ignored"')
    feed_server.routes["/tpm.atom"] = (200, body, {"Content-Type": "application/atom+xml"})
    hiring = read.by_title(feed_server.url("/tpm.atom"))["We're Hiring: Senior Editor"]
    assert hiring.url == feed_server.url("/edblog/were-hiring-senior-editor")


def test_http_error_is_a_source_error(read: Reader, feed_server: FeedServer) -> None:
    url = feed_server.url("/gone.xml")
    with pytest.raises(SourceError) as caught:
        read(url)
    assert str(caught.value) == f"source 'news': {url} answered HTTP 404 Not Found"


def test_unreachable_url_is_a_source_error(read: Reader) -> None:
    port = _closed_port()
    with pytest.raises(SourceError) as caught:
        read(f"http://127.0.0.1:{port}/feed/")
    assert str(caught.value) == (
        f"source 'news': cannot fetch http://127.0.0.1:{port}/feed/ (Connection refused)"
    )


def test_slow_server_times_out(read: Reader, feed_server: FeedServer) -> None:
    url = feed_server.url("/slow")
    started = datetime.now(timezone.utc)
    with pytest.raises(SourceError) as caught:
        read(url, timeout=0.3)
    assert datetime.now(timezone.utc) - started < timedelta(seconds=3)
    assert str(caught.value) == f"source 'news': cannot fetch {url} (no answer within 0.3 s)"


def test_unsupported_scheme_is_a_source_error(read: Reader) -> None:
    with pytest.raises(SourceError, match=r"ftp: is not supported"):
        read("ftp://example.org/feed.xml")


def test_a_feed_over_the_size_cap_is_skipped_file_or_url_alike(
    store: Store, project: Path, feed_server: FeedServer, tmp_path: Path
) -> None:
    # A real feed padded with a comment to one byte over the cap: valid XML, just too big.
    wordpress = (FEEDS / "wordpress-rss2.xml").read_bytes()
    padding = MAX_FEED_BYTES + 1 - len(wordpress) - len(b"<!---->")
    huge = wordpress + b"<!--" + b"x" * padding + b"-->"
    assert len(huge) == MAX_FEED_BYTES + 1
    (tmp_path / "huge.xml").write_bytes(huge)
    feed_server.routes["/huge.xml"] = (200, huge, {"Content-Type": "application/rss+xml"})
    (tmp_path / "ok.xml").write_bytes(huge[:MAX_FEED_BYTES])  # at the cap: read
    sources = [
        SourceSettings(name="big-file", kind="feed", url=str(tmp_path / "huge.xml")),
        SourceSettings(name="big-url", kind="feed", url=feed_server.url("/huge.xml")),
        SourceSettings(name="desk", kind="folder", path=project / "articles"),
    ]
    warnings: list[str] = []
    articles = collect_articles(sources, store.feeds, warnings.append)
    assert [a.source for a in articles] == ["desk"]
    assert warnings == [
        f"source 'big-file': {tmp_path / 'huge.xml'} is larger than 10 MB; skipped it (is it really a feed?)",
        f"source 'big-url': {feed_server.url('/huge.xml')} is larger than 10 MB; skipped it (is it really a feed?)",
    ]
    at_cap = SourceSettings(name="at-cap", kind="feed", url=str(tmp_path / "ok.xml"))
    assert collect_articles([at_cap], store.feeds, warnings.append)[0].title == "Hello world!"


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the pipeline ---------------------------------------------------------------------


def test_broken_feed_does_not_stop_a_good_folder_source(
    read: Reader, store: Store, project: Path
) -> None:
    sources = [
        SourceSettings(name="broken", kind="feed", url=str(FEEDS / "notafeed.html")),
        SourceSettings(name="down", kind="feed", url=f"http://127.0.0.1:{_closed_port()}/"),
        SourceSettings(name="desk", kind="folder", path=project / "articles"),
    ]
    warnings: list[str] = []
    articles = collect_articles(sources, store.feeds, warnings.append)
    assert [a.title for a in articles] == ["Zelensky Says NATO Should Shoot Down Russian Missiles Over Ukraine"]
    assert len(warnings) == 2
    assert warnings[0].startswith("source 'broken': ")
    assert warnings[1].startswith("source 'down': cannot fetch")


def test_articles_json_includes_feed_articles(write_config: Callable[[str], Path]) -> None:
    config = write_config(
        f"""
        [[sources]]
        name = "news"
        kind = "feed"
        url = "{FEEDS / 'rss_7_1.rdf'}"
        """
    )
    result = CliRunner().invoke(app, ["--config", str(config), "articles", "weekly", "--json"])
    assert result.exit_code == 0, result.output
    articles = json.loads(result.stdout)
    assert all(set(article) == JSON_KEYS for article in articles)
    feed_articles = [a for a in articles if a["source"] == "news"]
    assert [a["title"] for a in feed_articles] == ["Processing Inclusions with XSLT", "Putting RDF to Work"]
    assert feed_articles[0] == {
        "id": stable_id("news", "http://xml.com/pub/2000/08/09/xslt/xslt.html"),
        "title": "Processing Inclusions with XSLT",
        "subtitle": "",
        "url": "http://xml.com/pub/2000/08/09/xslt/xslt.html",
        "authors": [],
        "published": feed_articles[0]["published"],
        "source": "news",
        "excerpt": feed_articles[0]["excerpt"],
    }
    assert feed_articles[0]["excerpt"].startswith("Processing document inclusions with general XML tools")
    published = datetime.fromisoformat(feed_articles[0]["published"])
    assert timedelta(0) <= datetime.now(timezone.utc) - published < timedelta(minutes=5)
    assert [a["source"] for a in articles].count("desk") == 1


# --- the store ------------------------------------------------------------------------


def test_first_seen_is_recorded_once(store: Store) -> None:
    first = utc(2026, 11, 20, 8)
    assert store.feeds.first_seen("abc", first) == first
    assert store.feeds.first_seen("abc", first + timedelta(days=3)) == first
    assert store.feeds.first_seen("def", first + timedelta(days=3)) == first + timedelta(days=3)


def test_feed_cache_is_replaced_by_the_latest_answer(store: Store) -> None:
    assert store.feeds.get_cache("https://example.org/feed/") is None
    store.feeds.save_cache("https://example.org/feed/", '"a"', None, b"<rss/>")
    store.feeds.save_cache("https://example.org/feed/", None, "Tue, 24 Nov 2026 18:42:10 GMT", b"<rss></rss>")
    cached = store.feeds.get_cache("https://example.org/feed/")
    assert cached is not None
    assert (cached.etag, cached.last_modified, cached.body) == (
        None,
        "Tue, 24 Nov 2026 18:42:10 GMT",
        b"<rss></rss>",
    )
    assert cached.fetched_at.tzinfo is not None
