"""Full-text search: each blob's searchable text, kept in BlobText and indexed for substring
search (a words index of the text parts and a trigram index of the header fields: on SQLite
FTS5 tables, on PostgreSQL GIN indexes, pg_trgm's for the trigrams).

The text is what IMAP SEARCH matches (RFC 9051 6.4.4: substrings, case-insensitively): the
header fields with encoded words decoded, and the text/* parts with their transfer encoding
and charset undone, each case-folded with white space runs as one space (`fold`). Because the
stored text is already folded, a substring query on it is exact, not a word-based
approximation: an index proposes the texts that may hold the needle and GLOB (SQLite) or LIKE
(PostgreSQL) on their text decides, unless the index's answer is exact already.

The words index keeps each text's words, and beside it the vocabulary (every word of every
text's text parts, with a trigram index) gives the words a piece of a needle is part of. The words are the
runs of ASCII letters and digits and non-ASCII characters: on SQLite the ascii tokenizer's
tokens of the text parts (`ascii_tokens`), on PostgreSQL `words_of` (long runs as windows).
The text parts are searched through them alone (the trigram index holds the header fields: the
body's trigrams were most of the indexer's cost, migrations 0045 and 0046). A needle that is
one token lies inside one token of each text part holding it: the vocabulary's words holding it
give exactly those texts, no text read. A needle of several tokens ("hello world",
"foo@bar.com") is cut where its tokens end: each token inside it is a whole token of the text,
the first ends one and the last begins one; the texts holding every inside token and a
vocabulary word ending (beginning) with each edge piece are the candidates, and GLOB on their
text decides. A needle with no piece the index answers for (edges under three characters, or
inside too many of the vocabulary's words) is looked for by GLOB in every text part. The header
half of SEARCH TEXT asks the header's trigram table. PostgreSQL does the same with LIKE
(`needle_pieces`, and 0046's function mailboxes_blobtext_containing); a needle of ASCII letters
and digits is answered exactly by the words index as before, and an edge piece of any length is
asked of the vocabulary.

Indexing is off the delivery path (a 250 never waits for it). A database trigger puts every
new blob in BlobTextPending; the Indexer thread of the delivery workers, woken by delivery's
change events and every MAILHOST_FTS_INTERVAL seconds, turns pending blobs into text. A search
reads the bytes of the messages whose blob is still pending (or whose text is longer than
MAILHOST_FTS_MAX_TEXT), found from the pending rows rather than by scanning the folder, so
results never depend on the indexer having caught up. `manage.py reindex` rebuilds it all.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Collection, Iterable

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import BooleanField, Exists, F, Func, OuterRef, Q
from django.db.models.expressions import RawSQL

from mailboxes import headers as header_cache
from mailboxes import mime
from mailboxes.models import BlobText, BlobTextPending
from mailboxes.transactions import unsynced_atomic

logger = logging.getLogger(__name__)

TABLE = "mailboxes_blobtext"
FTS_TABLE = "mailboxes_blobtext_fts"
# The words of the texts: on SQLite an FTS5 table of the text parts' tokens (the ascii
# tokenizer's: 0027_fts_vocabulary_sqlite); on PostgreSQL a table of each text's words
# (`words_of`, 0025_fts_words_postgresql; the same tokens since 0046). Beside it VOCABULARY,
# every word any text part holds, for finding the words a needle is part of: on SQLite through
# its FTS5 trigram table VOCABULARY_FTS, on PostgreSQL through pg_trgm. PostgreSQL's held the
# header fields' words too until 0047: their ids, numbers and signatures put common needles
# ("sen" in 100k "sender<N>" of bench/fts.py's 233k words) past WORDS_PER_NEEDLE, and a body
# needle then read every text.
WORDS_TABLE = "mailboxes_blobtext_words"
VOCABULARY = "mailboxes_blobtext_vocabulary"
VOCABULARY_FTS = "mailboxes_blobtext_vocabulary_fts"
TRIGRAM = 3  # the trigram indexes match needles of at least three characters
# PostgreSQL: a run (of ASCII letters and digits and non-ASCII characters) longer than
# WORD_LONGEST is kept as windows of that length every WORD_STEP characters, so that each
# substring of it up to WORD_STEP + 1 characters long lies inside one of them (the words index
# answers for such needles).
WORD_LONGEST, WORD_STEP = 100, 50
# A needle or a needle's edge piece inside more words of the vocabulary than this is not looked
# for through them: each word is a lookup in the words index, and on SQLite FTS5's OR of n
# words takes about n steps per text found. The needle's other pieces propose the texts, or
# with none every text part is read (GLOB, LIKE). On SQLite that costs as much as an OR of
# some 250 words: at 100k texts of 1 KB (bench/fts.py's data, a sqlite3 script), an OR of 200
# words found 93k texts in 67 ms of CPU, of 250 words 97k in 80, of 1,000 words 315, and GLOB
# over every text took 82 (its cost grows with the texts' size, the OR's does not).
WORDS_PER_NEEDLE = {"postgresql": 1000, "sqlite": 200}
# PostgreSQL: a folder's search for a word needle alone, in one call (0029)
FOLDER_MATCHING_UIDS = "mailboxes_folder_matching_uids"
# PostgreSQL: the texts holding a needle, proposed by the words index and decided by LIKE (0046)
CONTAINING = "mailboxes_blobtext_containing"


def fold(text: str) -> str:
    """The form both the stored text and the needle take: case-folded, white space as one."""
    return " ".join(text.casefold().split())


def header_fields(raw: bytes, only: Collection[str] | None = None) -> list[tuple[str, str]]:
    """(lower-case name, value as text) of each header field of the message, in order; with
    `only` (lower-case names), of those fields alone: the others' values are not decoded."""
    return [
        (name, header_cache.field_text(raw, vs, fe))
        for name, _fs, vs, fe in mime.header_fields(raw, 0, mime.split_header(raw, 0, len(raw)))
        if only is None or name in only
    ]


def header_text(fields: list[tuple[str, str]]) -> str:
    return fold(" ".join(f"{name}: {_words(value)}" for name, value in fields))


def texts_of(raw: bytes) -> tuple[str, str]:
    """header_text(header_fields(raw)) and body_text(raw), the header section read once: the
    part tree's parse reads the top-level header's fields (its describe hook hands them over),
    where header_fields read them a second time for the indexer's every message. A header
    longer than mime.MAX_HEADER_OCTETS, which the tree reads only that far, is read whole."""
    top: list[mime.Header] = []

    def keep(part: mime.Part, header: mime.Header, _params: list, _raw: bytes) -> None:
        if part.hs == 0:  # the top-level entity's (described last)
            top.append(header)

    tree = mime.parse(raw, describe=keep)
    if tree.bs <= mime.MAX_HEADER_OCTETS:
        fields = top[-1].fields
    else:
        fields = mime.header_fields(raw, 0, tree.bs)
    header = header_text(
        [(name, header_cache.field_text(raw, vs, fe)) for name, _fs, vs, fe in fields]
    )
    return header, body_text(raw, tree)


def body_text(raw: bytes, tree: mime.Part | None = None) -> str:
    """The text parts' text, folded; `tree`: mime.parse(raw), when made already."""
    if tree is None:
        tree = mime.parse(raw)
    pieces = []
    for part, charset in mime.text_parts(raw, tree):
        try:
            data = mime.decode_cte(raw[part.bs : part.be], part.cte)
        except mime.UnknownCTE:
            data = raw[part.bs : part.be]
        pieces.append(mime.decode_text(data, charset))
    return fold("\n".join(pieces))


def _words(value: str) -> str:
    # decode_words is costly; most values hold no encoded-word (RFC 2047 "=?")
    return header_cache.decode_words(value) if "=?" in value else value


def words_of(text: str) -> list[str]:
    """The words PostgreSQL's words index keeps of a folded text: its runs of ASCII letters
    and digits and non-ASCII characters (_TOKEN_RUN's, the ascii tokenizer's; before 0046
    ASCII runs alone, and a needle with no ASCII piece would have read every text), a long
    run as overlapping windows, distinct. A needle that is one run occurs in the text exactly
    when it occurs inside one of them: every occurrence lies inside one run, and one of at
    most WORD_STEP + 1 characters inside one window."""
    found = set()
    for run in _TOKEN_RUN.findall(text):
        if len(run) <= WORD_LONGEST:
            found.add(run)
        else:
            found.update(
                run[start : start + WORD_LONGEST]
                for start in range(0, max(len(run) - WORD_STEP, 1), WORD_STEP)
            )
    return sorted(found)


# SQLite: the tokens of FTS5's ascii tokenizer, which the words index keeps of a text part:
# maximal runs of ASCII letters and digits and non-ASCII characters (its ASCII letters lowered,
# which a folded text has already). In UTF-8 every byte of a non-ASCII character is 0x80 or
# above, so they are the runs left when every other ASCII byte becomes a space: a translate and
# a split in C, 2 to 2.5 times faster than a regex's findall on the text (whose repeat reads a
# character at a time), and each distinct token decoded once.
_TOKEN_BYTES = bytes(byte if byte >= 0x80 or chr(byte).isalnum() else 0x20 for byte in range(256))


def ascii_tokens(texts: Iterable[str]) -> set[str]:
    """The distinct tokens of FTS5's ascii tokenizer in these folded texts."""
    found: set[bytes] = set()
    for text in texts:
        # surrogatepass: a lone surrogate is a character as any other, kept inside its token
        found.update(text.encode("utf-8", "surrogatepass").translate(_TOKEN_BYTES).split())
    return {token.decode("utf-8", "surrogatepass") for token in found}


def vocabulary_insert(cursor, bodies: list[str]) -> None:  # noqa: ANN001
    """SQLite: put the tokens of these text parts that the vocabulary lacks in it. Only added
    to: a word no text holds any longer finds nothing in the words index (reindex drops it)."""
    tokens = sorted(ascii_tokens(bodies))
    for start in range(0, len(tokens), 500):
        chunk = tokens[start : start + 500]
        cursor.execute(
            f"INSERT OR IGNORE INTO {VOCABULARY}(word) VALUES {', '.join(['(%s)'] * len(chunk))}",
            chunk,
        )


# PostgreSQL: the words of a batch of texts, in one statement (a trigger adds new words to the
# vocabulary); each text's words as one string, split there.
WORDS_INSERT = (
    f"INSERT INTO {WORDS_TABLE}(blob_id, header, body)"
    " SELECT b, string_to_array(h, ' '), string_to_array(t, ' ')"
    " FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS x(b, h, t) ON CONFLICT DO NOTHING"
)


def words_insert(cursor, texts: list[tuple[int, str, str]]) -> None:  # noqa: ANN001
    """Put the words of these (blob id, header, body) texts in PostgreSQL's words index."""
    if texts:
        cursor.execute(
            WORDS_INSERT,
            [
                [blob_id for blob_id, _h, _b in texts],
                [" ".join(words_of(header)) for _b, header, _t in texts],
                [" ".join(words_of(body)) for _b, _h, body in texts],
            ],
        )


# --- Building the index -----------------------------------------------------------------------

PENDING = "mailboxes_blobtextpending"
# More pending blobs than this (a bulk import the indexer has not reached) are not listed:
# a search's rows then say whether they are indexed.
PENDING_LISTED = 20_000


def index_blobs(blob_ids: list[int]) -> int:
    """Index these pending blobs; returns how many got their text. The texts and the removal
    of their pending rows commit together, one transaction for the batch. Plain statements
    (the bytes read by blob_read_many, the texts inserted, the pending rows removed or
    marked): through the ORM (filter, bulk_create, QuerySet.delete's collector) the batch's
    statements cost more CPU than SQLite spent on them."""
    limit = settings.MAILHOST_FTS_MAX_TEXT
    texts: list[tuple[int, str, str]] = []
    too_long: list[int] = []
    for blob_id, raw in _blob_bytes(blob_ids).items():
        try:
            header, body = texts_of(raw)
        except Exception:  # a message our parser chokes on stays pending: searched the old way
            logger.exception("fts could not index blob=%s", blob_id)
            too_long.append(blob_id)
            continue
        if len(header) + len(body) > limit:
            too_long.append(blob_id)
        else:
            texts.append((blob_id, header, body))
    # Not synced: the texts are derived from blobs already stored, and a commit that a power
    # loss takes back leaves their pending rows as they were (indexed again). At 20 port 25
    # sessions the indexer's transaction was one commit in ten, each a WAL sync.
    with unsynced_atomic(), connection.cursor() as cursor:
        # One statement per 300 rows: executemany (a row at a time) took SQLite 3 times as long.
        for start in range(0, len(texts), 300):
            chunk = texts[start : start + 300]
            cursor.execute(_insert_texts(len(chunk)), [v for row in chunk for v in row])
        if connection.vendor == "postgresql":
            words_insert(cursor, texts)
        else:
            vocabulary_insert(cursor, [body for _b, _h, body in texts])
        done = [blob_id for blob_id, _, _ in texts]
        for start in range(0, len(done), 500):
            chunk = done[start : start + 500]
            cursor.execute(f"DELETE FROM {PENDING} WHERE blob_id IN ({_marks(chunk)})", chunk)
        for start in range(0, len(too_long), 500):
            chunk = too_long[start : start + 500]
            cursor.execute(
                f"UPDATE {PENDING} SET too_long = %s WHERE blob_id IN ({_marks(chunk)})",
                [True, *chunk],
            )
    return len(texts) + len(too_long)


def _marks(values: list) -> str:
    return ", ".join(["%s"] * len(values))


def _blob_bytes(blob_ids: list[int]) -> dict[int, bytes]:
    """The bytes of these blobs by id; a missing one (or one that cannot be read) is left
    out: verifystore reports it, searches read it (and fail) as before."""
    from mailboxes.selectors import blob_read_many

    try:
        return blob_read_many(blob_ids)
    except OSError:  # one file could not be read: the others one by one
        found: dict[int, bytes] = {}
        for blob_id in blob_ids:
            try:
                found.update(blob_read_many([blob_id]))
            except OSError:
                continue
        return found


def _insert_texts(count: int) -> str:
    """INSERT of `count` BlobText rows, a row already there left as it is (as bulk_create's
    ignore_conflicts): another indexer may have written it."""
    from django.db.models.constants import OnConflict

    ops = connection.ops
    fields = [BlobText._meta.get_field(name) for name in ("blob_id", "header", "body")]
    head = ops.insert_statement(on_conflict=OnConflict.IGNORE)
    tail = ops.on_conflict_suffix_sql(fields, OnConflict.IGNORE, None, None)
    values = ", ".join(["(%s, %s, %s)"] * count)
    return f"{head} {TABLE} (blob_id, header, body) VALUES {values} {tail}".rstrip()


# One plain statement: the indexer asks it after every burst of mail, and the ORM took 0.7 ms
# of CPU to build it (the statement itself 0.02 ms when nothing is pending).
_PENDING_USED = (
    f"SELECT p.blob_id FROM {PENDING} p WHERE NOT p.too_long"
    " AND EXISTS (SELECT 1 FROM mailboxes_message m WHERE m.blob_id = p.blob_id)"
    " ORDER BY p.blob_id LIMIT %s"
)


def pending(*, limit: int = 200) -> list[int]:
    """Pending blobs that messages use (not those only the outbound spool holds), oldest first."""
    with connection.cursor() as cursor:
        cursor.execute(_PENDING_USED, [limit])
        return [blob_id for (blob_id,) in cursor.fetchall()]


def index_all(*, batch: int = 500) -> int:
    """Index everything pending; returns how many."""
    total = 0
    while ids := pending(limit=batch):
        added = index_blobs(ids)
        total += added
        if not added:
            return total  # nothing could be indexed (unreadable): do not spin
    return total


# --- Searching --------------------------------------------------------------------------------


def _like(needle: str) -> str:
    return "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def is_word(needle: str) -> bool:
    """Whether PostgreSQL's words index answers for this (folded) needle: one word of ASCII
    letters and digits (words_of keeps the runs of them)."""
    return needle.isascii() and needle.isalnum()


def _glob(needle: str) -> str:
    """SQLite GLOB's pattern for "contains needle": its three special characters each in a
    bracket of its own ("]" is special only inside one)."""
    return "*" + "".join(f"[{c}]" if c in "*?[" else c for c in needle) + "*"


def matching(where: str, needle: str, *, limit: int | None = None) -> RawSQL:
    """A subquery of the ids of indexed blobs whose text contains `needle` (already folded):
    `where` is "body" (the text parts) or "text" (header and body); at most `limit` of them.
    An index proposes (the words index for the text parts, the trigram index for the
    header), GLOB (SQLite) or LIKE (PostgreSQL) on the text decides where it is not exact."""
    if connection.vendor == "sqlite":
        return _matching_sqlite(where, needle, limit)
    if found := _words_matching(where, needle, limit) or _pieces_matching(where, needle, limit):
        return found
    columns = ("body",) if where == "body" else ("header", "body")
    test = " OR ".join(f"t.{c} LIKE %s ESCAPE '\\'" for c in columns)
    tail, tail_params = (" LIMIT %s", [limit]) if limit is not None else ("", [])
    params = [_like(needle)] * len(columns)
    return RawSQL(f"SELECT t.blob_id FROM {TABLE} t WHERE {test}{tail}", [*params, *tail_params])


def _matching_sqlite(where: str, needle: str, limit: int | None) -> RawSQL:
    # GLOB compares characters as they are, LIKE folds ASCII case first: on text and a needle
    # already folded they agree, and GLOB checks 45k texts in a third less time.
    pattern = _glob(needle)
    tail, tail_params = (" LIMIT %s", [limit]) if limit is not None else ("", [])
    body = _body_candidates(needle)
    if body is None and where == "body":
        return RawSQL(
            f"SELECT t.blob_id FROM {TABLE} t WHERE t.body GLOB %s{tail}", [pattern, *tail_params]
        )
    if body is None or len(needle) < TRIGRAM:  # every text read, once
        sql = f"SELECT t.blob_id FROM {TABLE} t WHERE t.header GLOB %s OR t.body GLOB %s{tail}"
        return RawSQL(sql, [pattern, pattern, *tail_params])
    body_sql, body_params, exact = body
    if not exact:
        body_sql = (
            f"SELECT t.blob_id FROM {TABLE} t WHERE t.blob_id IN ({body_sql}) AND t.body GLOB %s"
        )
        body_params = [*body_params, pattern]
    if where == "body":
        return RawSQL(f"{body_sql}{tail}", [*body_params, *tail_params])
    # TEXT: the header fields' trigram table proposes, GLOB on the header decides.
    grams = sorted({needle[i : i + TRIGRAM] for i in range(len(needle) - TRIGRAM + 1)})
    query = " AND ".join('"' + g.replace('"', '""') + '"' for g in grams)
    sql = (
        f"{body_sql} UNION SELECT t.blob_id FROM {TABLE} t WHERE t.blob_id IN"
        f" (SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s) AND t.header GLOB %s{tail}"
    )
    return RawSQL(sql, [*body_params, query, pattern, *tail_params])


def _body_candidates(needle: str) -> tuple[str, list, bool] | None:
    """SQLite: (a subquery of blob ids, its parameters, whether exact) for the text parts
    holding the (folded) needle, from the words index and its vocabulary; None when no piece
    of the needle is one they answer for (the text parts are then read, every one).

    A needle that is one token of the ascii tokenizer (`ascii_tokens`) lies inside one token
    of each text part holding it: the vocabulary's words holding it give exactly those
    (exact). Any other needle is cut where its tokens end: each token inside it is a whole
    token of such a text part, the one it begins with ends a token of the text part, and the
    one it ends with begins one; the text parts holding every inside token and, for an edge
    piece, one of the vocabulary's words it ends or begins, are the candidates (GLOB on
    their text decides). A piece is used when the index answers for it: an inside token
    always, an edge piece of at least TRIGRAM characters inside at most WORDS_PER_NEEDLE
    words of the vocabulary."""
    if _one_token(needle):
        if not _words_answer(needle):
            return None
        words = f"SELECT rowid FROM {WORDS_TABLE} WHERE {WORDS_TABLE} MATCH {_WORDS_OF_NEEDLE}"
        return words, [f'"{needle}"'], True
    inside, edges = _pieces(needle)
    terms, params = [], []
    if inside:
        terms.append("%s")
        params.append(" AND ".join(f'"{token}"' for token in inside))
    for piece, shape in edges:
        if len(piece) >= TRIGRAM and _vocabulary_holds(piece, shape):
            terms.append(_WORDS_SHAPED)
            params.extend([f'"{piece}"', shape])
    if not terms:
        return None
    match = " || ' AND ' || ".join(terms)
    return f"SELECT rowid FROM {WORDS_TABLE} WHERE {WORDS_TABLE} MATCH {match}", params, False


# SQLite: the characters of the ascii tokenizer's tokens (ascii_tokens): ASCII letters and
# digits, and every non-ASCII character (a lone surrogate too).
_TOKEN_RUN = re.compile("[0-9A-Za-z\x80-\U0010ffff]+")


def _one_token(needle: str) -> bool:
    return _TOKEN_RUN.fullmatch(needle) is not None


def _pieces(needle: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The tokens inside a (folded) needle that is not one token (whole tokens of any text
    holding it), and its edge pieces with the GLOB a word holding each must meet: the token
    it begins with ends one of the text's ("*piece"), the token it ends with begins one
    ("piece*")."""
    inside, edges = [], []
    for run in _TOKEN_RUN.finditer(needle):
        if run.start() == 0:
            edges.append((run.group(), "*" + run.group()))
        elif run.end() == len(needle):
            edges.append((run.group(), run.group() + "*"))
        else:
            inside.append(run.group())
    return inside, edges


def _vocabulary_holds(piece: str, shape: str | None = None) -> bool:
    """Whether at most WORDS_PER_NEEDLE words of the vocabulary hold the piece (in this shape,
    a GLOB: read from each word's row, which the trigram phrase alone does not read)."""
    bound = WORDS_PER_NEEDLE["sqlite"]
    test, params = (" AND word GLOB %s", [shape]) if shape else ("", [])
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {VOCABULARY_FTS} WHERE {VOCABULARY_FTS}"
            f" MATCH %s{test} LIMIT %s)",
            [f'"{piece}"', *params, bound + 1],
        )
        return cursor.fetchone()[0] <= bound


# SQLite: the words of the vocabulary holding a piece (%s, a phrase of trigrams) in a shape
# (%s, a GLOB), as an OR of the words index; one that matches nothing when there are none.
# Asked by the statement that holds it, in its snapshot, as _WORDS_OF_NEEDLE.
_WORDS_SHAPED = (
    f"(SELECT coalesce('(' || group_concat('\"' || word || '\"', ' OR ') || ')', '\"\"')"
    f" FROM {VOCABULARY_FTS} WHERE {VOCABULARY_FTS} MATCH %s AND word GLOB %s)"
)


def _words_matching(where: str, needle: str, limit: int | None) -> RawSQL | None:
    """PostgreSQL: the texts holding a word of the vocabulary that the needle is part of,
    when the words index answers for it: exact, and no text is read. The vocabulary is asked
    in the same statement (so in the same snapshot as the words), through a function whose
    plan never scans the words table (0026_fts_words_matching: a scan reads every row's words
    from TOAST, which the planner does not count). The LIMIT is the function's own (0029): a
    PL/pgSQL function's rows are all made before its caller reads one, so a LIMIT outside it
    read every match of a common needle to tell it from a rare one. For TEXT the header
    fields' trigram index proposes and LIKE decides (0047: the vocabulary holds the text
    parts' words alone)."""
    if not _words_answer(needle):
        return None
    return RawSQL(
        f"SELECT w.blob_id FROM {WORDS_TABLE}_matching(%s, %s, %s) AS w(blob_id)",
        [_like(needle), where != "body", limit],
    )


def _pieces_matching(where: str, needle: str, limit: int | None) -> RawSQL | None:
    """PostgreSQL: the texts holding the needle, any needle with a piece the words index can
    look up (None otherwise: every text is read), as the texts the words index proposes with
    LIKE on each deciding (0046's function). The body has no trigram index since 0046: it
    cost the indexer more than the rest of a 10 KB text's indexing together."""
    pieces = needle_pieces(needle)
    if pieces is None:
        return None
    exact, edges = pieces
    return RawSQL(
        f"SELECT c.blob_id FROM {CONTAINING}(%s, %s, %s, %s, %s, %s) AS c(blob_id)",
        [_like(needle), exact, edges, where != "body", WORDS_PER_NEEDLE["postgresql"], limit],
    )


def needle_pieces(needle: str) -> tuple[list[str], list[str]] | None:
    """PostgreSQL: what the words index must hold of a text holding the (folded) needle:
    (the tokens inside it, whole words of the text; LIKE patterns of the vocabulary's words
    for its edge pieces, as _pieces' GLOBs: "%piece" ends a word, "piece%" begins one, and a
    needle that is one token lies inside one, "%needle%"), or None when there is nothing to
    look up. A token longer than a window (words_of) is left out: no word holds it whole, nor
    its end or start within WORD_STEP + 1 characters. Tokens hold none of LIKE's special
    characters."""
    if _one_token(needle):
        exact, edges = [], [(needle, f"*{needle}*")]
    else:
        exact, edges = _pieces(needle)
    exact = [token for token in exact if len(token) <= WORD_LONGEST]
    patterns = [shape.replace("*", "%") for piece, shape in edges if len(piece) <= WORD_STEP + 1]
    return (exact, patterns) if exact or patterns else None


# SQLite: the words of the vocabulary holding the needle (a phrase of trigrams, %s) as a
# MATCH expression of the words index, evaluated once by the statement that holds it (so in
# its snapshot); one that matches nothing when there are none.
_WORDS_OF_NEEDLE = (
    f"(SELECT coalesce(group_concat('\"' || word || '\"', ' OR '), '\"\"')"
    f" FROM {VOCABULARY_FTS} WHERE {VOCABULARY_FTS} MATCH %s)"
)


def _word_shaped(needle: str) -> bool:
    """Whether the needle is one the words index may answer for, before asking how many
    words of the vocabulary it is part of (_words_answer): on SQLite one token of the ascii
    tokenizer, on PostgreSQL ASCII letters and digits short enough to lie inside a window of
    a long run (words_of); long enough for the vocabulary's trigram index."""
    if connection.vendor == "sqlite":
        return _one_token(needle) and len(needle) >= TRIGRAM
    return is_word(needle) and TRIGRAM <= len(needle) <= WORD_STEP + 1


def _words_answer(needle: str) -> bool:
    """Whether the words index answers for this (folded) needle: word-shaped, and inside at
    most WORDS_PER_NEEDLE words of the vocabulary. On SQLite every token is whole: such a
    needle lies inside one token of each text part holding it."""
    if not _word_shaped(needle):
        return False
    if connection.vendor == "sqlite":
        return _vocabulary_holds(needle)
    bound = WORDS_PER_NEEDLE["postgresql"]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {VOCABULARY} WHERE word LIKE %s LIMIT %s) v",
            [_like(needle), bound + 1],
        )
        return cursor.fetchone()[0] <= bound


class _NotLookedUpIn(Func):
    """(column + 0 IN (the subquery's blob ids + 0)) IS TRUE: the + 0s keep the planner off
    the indexes of both sides (the message's blob, and the words' primary key, whose every
    probe would read a row's words), and IS TRUE keeps the IN a hashed subplan rather than a
    semi join planned from row estimates (as selectors._IsTrue does for EXISTS), so that a
    search hashes the subquery's rows once and walks its folder's rows, each looked up in the
    hash. As a join, a server-side cursor's plan on tables not yet ANALYZEd (a folder of 59
    messages, by the planner's guess) was a nested loop reading the function's 44,624 rows
    once per message: more than ten minutes for SEARCH BODY of a common needle at 100k."""

    output_field = BooleanField()

    def __init__(self, column: str, subquery: RawSQL):
        super().__init__(F(column))
        self.subquery = subquery

    def as_sql(self, compiler, connection, **extra):  # noqa: ANN001, ANN003, ANN201
        column_sql, params = compiler.compile(self.get_source_expressions()[0])
        return (
            f"(({column_sql} + 0 IN (SELECT s.blob_id + 0 FROM ({self.subquery.sql}) s)) IS TRUE)",
            [*params, *self.subquery.params],
        )


def matching_blobs(where: str, needle: str) -> Q:
    """Messages whose blob's indexed text contains `needle` (already folded), as a condition
    on their blob ids, for a search with many matches. On PostgreSQL, when the words index
    answers, the planner cannot know how many texts the vocabulary's words give and guesses
    few: it looked each one's message up by blob (at 100k messages, 44,624 lookups: 130 ms of
    190), or, for a cursor, each message's words by blob (1 s); both are ruled out. SQLite
    guesses few from the vocabulary's words too, and looked 44,624 messages up by blob, read
    them and sorted them for the webmail's newest 200 (56 -> 86 ms of CPU): it walks the
    mailbox's messages by date instead, each blob looked up in the matches."""
    if connection.vendor == "sqlite":
        return _blobs_among(matching(where, needle))
    words = _words_matching(where, needle, None)
    if words is None:
        return Q(blob_id__in=matching(where, needle))
    return _blobs_among(words)


def _blobs_among(subquery: RawSQL) -> Q:
    """Messages whose blob is among the subquery's (many: the words index's), walked in the
    search's own order and each looked up in them (matching_blobs says why)."""
    if connection.vendor == "sqlite":
        return Q(_NotLookedUpBy("blob_id", subquery))
    return Q(_NotLookedUpIn("blob_id", subquery))


class _NotLookedUpBy(Func):
    """SQLite: +column IN (subquery): the unary + keeps the planner off the column's index, so
    that the subquery's rows are put in a temporary b-tree once and each row of the search's
    own order looked up there."""

    output_field = BooleanField()

    def __init__(self, column: str, subquery: RawSQL):
        super().__init__(F(column))
        self.subquery = subquery

    def as_sql(self, compiler, connection, **extra):  # noqa: ANN001, ANN003, ANN201
        column_sql, params = compiler.compile(self.get_source_expressions()[0])
        return f"(+{column_sql} IN ({self.subquery.sql}))", [*params, *self.subquery.params]


def matching_messages(where: str, needle: str) -> Q:
    """Messages whose blob's indexed text contains `needle` (already folded), as a condition
    on Message rows for a search of one folder. On SQLite by their ids, which the blob index
    gives without reading the rows: the search's walk of the folder then reads only its
    (folder, uid) index (each row's blob id took a read of the row: at 100k messages, 61 -> 44
    ms of CPU)."""
    if connection.vendor != "sqlite":
        return matching_blobs(where, needle)
    return _messages_among(matching(where, needle))


def _messages_among(subquery: RawSQL) -> Q:
    """SQLite: messages whose blob is among the subquery's, by their ids (matching_messages)."""
    return Q(
        pk__in=RawSQL(
            f"SELECT m.id FROM mailboxes_message m WHERE m.blob_id IN ({subquery.sql})",
            subquery.params,
        )
    )


def matching_ids(where: str, needle: str, *, limit: int | None = None) -> list[int]:
    return _ids(matching(where, needle, limit=limit))


def _ids(subquery: RawSQL) -> list[int]:
    """The blob ids a subquery of this module gives, read."""
    with connection.cursor() as cursor:
        cursor.execute(subquery.sql, subquery.params)
        return [row[0] for row in cursor.fetchall()]


# --- Stemming: the webmail's search (IMAP matches substrings, RFC 9051 6.4.4) ---------------

# A word of this many ASCII letters or more is stemmed (English Snowball), and its stem must be
# as long: the vocabulary's words beginning with it are asked through an index.
STEMMED_SHORTEST = 3
# A word's other inflections are looked for among at most this many words of the vocabulary
# that begin with its stem, and at most INFLECTIONS of them (the shortest) are searched.
STEM_CANDIDATES = 2000
INFLECTIONS = 50
# PostgreSQL: the texts whose words index holds one of these words (0032)
WORDS_HOLDING = f"{WORDS_TABLE}_holding"
_LETTERS = re.compile(r"[a-z]+")


def stemmable(needle: str) -> bool:
    """Whether this (folded) needle is one word that other inflections of are looked for."""
    return needle.isascii() and needle.isalpha() and len(needle) >= STEMMED_SHORTEST


def stemmer():  # noqa: ANN201 - snowballstemmer's Stemmer, which keeps state: one per search
    import snowballstemmer

    return snowballstemmer.stemmer("english")


def inflections(needle: str) -> list[str]:
    """The words of the vocabulary, other than those holding the (stemmable, folded) needle
    (its substring search finds them), whose English Snowball stem is the needle's: "runs"
    and "run" for "running". The vocabulary's words beginning with the stem are found through
    its index (a range of it), at most STEM_CANDIDATES of them, and the shortest INFLECTIONS
    kept."""
    stem_of = stemmer().stemWord
    stem = stem_of(needle)
    if len(stem) < STEMMED_SHORTEST:
        return []
    # A range of the vocabulary's own index (SQLite's unique one, PostgreSQL's primary key):
    # pg_trgm's index took 2 ms for LIKE 'deploy%' in 93k words (every word beginning with
    # "d" has its first trigram), the range 0.05. The words beginning with the stem lie in it
    # in any collation that orders letters and digits as ASCII does (C, and the usual ones at
    # their first level); startswith below keeps only those.
    sql, params = f"SELECT word FROM {VOCABULARY} WHERE word >= %s", [stem]
    if below := _after(stem):
        sql, params = f"{sql} AND word < %s", [stem, below]
    sql, params = f"{sql} LIMIT %s", [*params, STEM_CANDIDATES]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        words = [row[0] for row in cursor.fetchall()]
    found = sorted(
        (
            w
            for w in words
            if w.startswith(stem)
            and needle not in w
            and _LETTERS.fullmatch(w)
            and stem_of(w) == stem
        ),
        key=lambda w: (len(w), w),
    )
    return found[:INFLECTIONS]


def _after(prefix: str) -> str:
    """The least string of lower-case letters after every one beginning with the prefix (of
    lower-case letters), "" when there is none ("zz")."""
    head = prefix.rstrip("z")
    return head[:-1] + chr(ord(head[-1]) + 1) if head else ""


def holds_inflection(body: str, needle: str, stem_of: Callable[[str], str]) -> bool:
    """Whether a (folded) text holds a word of ASCII letters, not holding the needle, whose
    stem is the needle's: what inflections finds in the index, for a text not indexed yet."""
    stem = stem_of(needle)
    if len(stem) < STEMMED_SHORTEST or stem not in body:
        return False
    return any(
        needle not in w and w.startswith(stem) and stem_of(w) == stem
        for w in _LETTERS.findall(body)
    )


def holding_words(words: list[str], *, limit: int | None = None) -> RawSQL:
    """A subquery of the ids of indexed blobs whose text parts hold one of these words (of
    ASCII letters) whole, from the words index alone: no text is read."""
    if connection.vendor == "sqlite":
        tail, tail_params = (" LIMIT %s", [limit]) if limit is not None else ("", [])
        return RawSQL(
            f"SELECT rowid FROM {WORDS_TABLE} WHERE {WORDS_TABLE} MATCH %s{tail}",
            [" OR ".join(f'"{word}"' for word in words), *tail_params],
        )
    return RawSQL(f"SELECT w.blob_id FROM {WORDS_HOLDING}(%s, %s) AS w(blob_id)", [words, limit])


def holding_ids(words: list[str], *, limit: int | None = None) -> list[int]:
    return _ids(holding_words(words, limit=limit)) if words else []


def holding_blobs(words: list[str]) -> Q:
    """Messages whose blob's indexed text parts hold one of these words, many of them (as
    matching_blobs)."""
    return _blobs_among(holding_words(words)) if words else Q(pk__in=[])


def holding_messages(words: list[str]) -> Q:
    """holding_blobs for a search of one folder (as matching_messages)."""
    if not words:
        return Q(pk__in=[])
    if connection.vendor != "sqlite":
        return holding_blobs(words)
    return _messages_among(holding_words(words))


def folder_matching_uids(
    folder_id: int, where: str, needle: str, max_uid: int, *, few: int
) -> list[int] | None:
    """The UIDs (ascending) of the folder's messages up to max_uid whose indexed text
    contains `needle` (already folded), as one string of them (fetched as rows they cost
    15-30 ms more at 44,624 matches), read in one go.

    SQLite, from the indexes alone: the blobs the full-text index gives, each looked up in
    the (blob, folder, uid) index of messages, no row read. The words index's blobs drive
    the lookups themselves (as an IN list they were put in a temporary b-tree first: at 100k
    messages and 44,624 matches, 19 -> 14 ms).

    PostgreSQL, when the words index answers (None otherwise), in one call of a function
    (0029) that reads the vocabulary and the words index once: at most `few` matching blobs
    are looked up in the (blob, folder, uid) index, more are hashed and the folder walked in
    its (folder, uid) index carrying the blob ids (0028), as matching_messages does. The
    search asked the words index twice (the first `few` + 1 matches to tell a rare needle
    from a common one, then in its own statement) and read a row per UID."""
    if connection.vendor != "sqlite":
        return _folder_matching_uids_postgresql(folder_id, where, needle, max_uid, few)
    tail = "+m.folder_id = %s AND +m.uid <= %s"
    if where == "body" and _words_answer(needle):
        sql = (
            f"SELECT group_concat(m.uid) FROM {WORDS_TABLE} w CROSS JOIN mailboxes_message m"
            f" ON m.blob_id = w.rowid WHERE w.{WORDS_TABLE} MATCH {_WORDS_OF_NEEDLE} AND {tail}"
        )
        params = [f'"{needle}"', folder_id, max_uid]
    else:
        subquery = matching(where, needle)
        sql = f"SELECT group_concat(m.uid) FROM mailboxes_message m WHERE m.blob_id IN ({subquery.sql}) AND {tail}"
        params = [*subquery.params, folder_id, max_uid]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        (uids,) = cursor.fetchone()
    # json reads the numbers in half the time of int() on each
    return sorted(json.loads(f"[{uids}]")) if uids else []


def _folder_matching_uids_postgresql(
    folder_id: int, where: str, needle: str, max_uid: int, few: int
) -> list[int] | None:
    if not _word_shaped(needle):
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {FOLDER_MATCHING_UIDS}(%s, %s, %s, %s, %s, %s)",
            [
                folder_id,
                max_uid,
                _like(needle),
                where != "body",
                WORDS_PER_NEEDLE["postgresql"],
                few,
            ],
        )
        (found,) = cursor.fetchone()
    if found is None:  # inside too many words of the vocabulary
        return None
    return sorted(json.loads(f"[{found}]"))


def folder_uids(folder_id: int, blob_ids: list[int]) -> list[int]:
    """UIDs of the folder's messages with these blobs, found through the blob index (SQLite
    would otherwise walk the folder's (folder, uid) index over every message)."""
    if not blob_ids:
        return []
    marks = ", ".join(["%s"] * len(blob_ids))
    folder = "+m.folder_id" if connection.vendor == "sqlite" else "m.folder_id"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT m.uid FROM mailboxes_message m WHERE m.blob_id IN ({marks}) AND {folder} = %s",
            [*blob_ids, folder_id],
        )
        return [row[0] for row in cursor.fetchall()]


def mailbox_message_ids(mailbox_id: int, blob_ids: list[int]) -> list[int]:
    """Ids of the mailbox's messages with these blobs, found through the blob index."""
    if not blob_ids:
        return []
    marks = ", ".join(["%s"] * len(blob_ids))
    join = "CROSS JOIN" if connection.vendor == "sqlite" else "JOIN"  # SQLite: this order
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT m.id FROM mailboxes_message m {join} mailboxes_folder f"
            f" ON f.id = m.folder_id WHERE m.blob_id IN ({marks}) AND f.mailbox_id = %s",
            [*blob_ids, mailbox_id],
        )
        return [row[0] for row in cursor.fetchall()]


def unindexed_q() -> Q:
    """Messages whose blob has no indexed text (pending, or too long)."""
    return Q(blob_id__in=BlobTextPending.objects.values("blob_id"))


def unindexed_blobs(folder_id: int | None, max_uid: int, *, limit: int) -> set[int] | None:
    """The blobs without indexed text (pending, or too long) of the folder's messages with a
    UID up to max_uid, or of every message when folder_id is None; None when there are more
    than `limit`. Driven from the pending rows (few) rather than the folder's messages (many).

    A search asks this before it asks the index: a message indexed in between is then read
    from its bytes, never missed as "indexed but not among the matches"."""
    if folder_id is None:
        sql, params = f"SELECT p.blob_id FROM {PENDING} p LIMIT %s", [limit + 1]
    elif connection.vendor == "sqlite":
        sql = (  # CROSS JOIN: SQLite joins in this order
            f"SELECT DISTINCT p.blob_id FROM {PENDING} p CROSS JOIN mailboxes_message m"
            " ON m.blob_id = p.blob_id WHERE m.folder_id = %s AND m.uid <= %s LIMIT %s"
        )
        params = [folder_id, max_uid, limit + 1]
    else:
        return _pending_in_folder(folder_id, max_uid, limit=limit)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = {row[0] for row in cursor.fetchall()}
    return None if len(found) > limit else found


def _pending_in_folder(folder_id: int, max_uid: int, *, limit: int) -> set[int] | None:
    """unindexed_blobs of a folder on PostgreSQL, in two steps whose plans do not depend on
    statistics: as one join, on tables not yet ANALYZEd, it walked the folder's 100k
    messages probing the pending rows (2 s after a bulk import). The pending rows first (few,
    or too many to list), then their messages through the blob index alone (the +0 keeps
    the planner off the folder's index, whose rows it cannot count without statistics)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT blob_id FROM {PENDING} LIMIT %s", [PENDING_LISTED + 1])
        blobs = [row[0] for row in cursor.fetchall()]
        if len(blobs) > PENDING_LISTED:
            return None
        if not blobs:
            return set()
        cursor.execute(
            "SELECT DISTINCT m.blob_id FROM mailboxes_message m WHERE m.blob_id = ANY(%s)"
            " AND m.folder_id + 0 = %s AND m.uid + 0 <= %s LIMIT %s",
            [blobs, folder_id, max_uid, limit + 1],
        )
        found = {row[0] for row in cursor.fetchall()}
    return None if len(found) > limit else found


def indexed() -> Exists:
    """Whether a Message row's blob has indexed text (an annotation)."""
    return Exists(BlobText.objects.filter(blob_id=OuterRef("blob_id")))


# --- The indexer thread -------------------------------------------------------------------


BATCH = 200  # pending blobs the indexer asks for at a time


class Indexer(threading.Thread):
    """Indexes new mail soon after delivery: woken by change events ("exists"), and every
    MAILHOST_FTS_INTERVAL seconds in any case (mail delivered by another process). With a
    `gate`, only while it answers True (the delivery processes' leader: delivery/leader.py)."""

    def __init__(self, gate: Callable[[], bool] | None = None) -> None:
        super().__init__(name="fts-indexer", daemon=True)
        self.gate = gate
        self.stopping = threading.Event()
        self.wanted = threading.Event()
        self._unsubscribe = None

    def start(self) -> None:
        from mailboxes import events

        self._unsubscribe = events.subscribe(self._heard)
        super().start()

    def _heard(self, event) -> None:  # noqa: ANN001
        if event.kind == "exists":
            self.wanted.set()

    def run(self) -> None:
        from mailboxes import events

        try:
            while not self.stopping.is_set():
                self.wanted.clear()
                events.wake_on_exists()  # before pending(): later mail wakes this round
                try:
                    while (
                        not self.stopping.is_set()
                        and (self.gate is None or self.gate())
                        and (ids := pending(limit=BATCH))
                    ):
                        # A short batch was all there was: mail that came meanwhile woke
                        # `wanted`, so the next round asks, not another query now.
                        if not index_blobs(ids) or len(ids) < BATCH:
                            break
                except Exception:
                    logger.exception("fts indexing failed; trying again later")
                self.wanted.wait(settings.MAILHOST_FTS_INTERVAL)
                self.stopping.wait(0.2)  # let a burst of deliveries gather
        finally:
            connections.close_all()

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.stopping.set()
        self.wanted.set()


def reindex() -> int:
    """Empty the index and build it again from the blobs (`manage.py reindex`): every blob is
    pending again (searches read their bytes meanwhile), then indexed."""
    false = "0" if connection.vendor == "sqlite" else "false"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {PENDING}")
        cursor.execute(
            f"INSERT INTO {PENDING}(blob_id, too_long) SELECT id, {false} FROM mailboxes_blob"
        )
        cursor.execute(f"DELETE FROM {TABLE}")  # its words too (triggers)
        cursor.execute(f"DELETE FROM {VOCABULARY}")
    return index_all()
