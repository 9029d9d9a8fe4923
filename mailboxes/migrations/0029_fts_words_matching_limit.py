"""PostgreSQL: a folder's search for a word needle alone in one function, and the words
function with a LIMIT of its own.

mailboxes_folder_matching_uids answers IMAP's SEARCH BODY <word> from the vocabulary and the
words index as one string of UIDs: the words index is read once (its bitmap scan of a common
word's 44,624 entries is most of its cost), where the search asked it twice, once for the
first FEW_TEXT_MATCHES + 1 matches to tell a rare needle from a common one and once in the
search's own statement; and no row per UID is sent.

The words function takes a LIMIT of its own. A PL/pgSQL function's RETURN QUERY
runs its statement to the end before the caller sees a row, so a LIMIT outside it cut nothing:
telling a rare needle from a common one (the first FEW_TEXT_MATCHES + 1 texts) read all
44,624 matches of a common needle at 100k messages, as the search itself then read them again.
Inside, the bitmap heap scan stops at the limit (12 -> 3-4 ms of CPU at 100k, load 11; the
bitmap of the GIN index's entries is still made whole). Index scans are off in it too (with a LIMIT a
walk of the primary key filtering every row's words, each read from TOAST, looks cheap: only
bitmap scans of the GIN indexes are meant)."""

from importlib import import_module

from django.db import migrations

# statements run on PostgreSQL alone, as 0026 runs its own
on_postgresql = import_module("mailboxes.migrations.0026_fts_words_matching").on_postgresql

WORDS = "mailboxes_blobtext_words"
VOCABULARY = "mailboxes_blobtext_vocabulary"
FOLDER_UIDS_NAME = "mailboxes_folder_matching_uids"
WORDS_OF_NEEDLE = f"ARRAY(SELECT v.word FROM {VOCABULARY} v WHERE v.word LIKE pattern)"


def function(limit: bool) -> str:
    args, tail, settings = "pattern text, in_header boolean", "", "SET enable_seqscan = off"
    if limit:
        args += ", max_rows bigint DEFAULT NULL"
        tail = " LIMIT max_rows"  # LIMIT NULL: all of them
        settings += " SET enable_indexscan = off"
    return (
        f"CREATE FUNCTION {WORDS}_matching({args}) RETURNS SETOF bigint"
        f" LANGUAGE plpgsql STABLE ROWS 1000 {settings} AS $$ BEGIN"
        " IF in_header THEN"
        f" RETURN QUERY SELECT w.blob_id FROM {WORDS} w"
        f" WHERE w.header && {WORDS_OF_NEEDLE} OR w.body && {WORDS_OF_NEEDLE}{tail};"
        " ELSE"
        f" RETURN QUERY SELECT w.blob_id FROM {WORDS} w WHERE w.body && {WORDS_OF_NEEDLE}{tail};"
        " END IF; END $$"
    )


# A folder's search for a word needle alone, whole: the vocabulary's words holding it (NULL when
# more than `bound`: the caller takes another way), their texts' blobs read once, and the UIDs
# as one string, '' when none. Few blobs (at most `few`) are looked up in the messages' (blob,
# folder, uid) index; more are hashed and the folder walked in its (folder, uid) index
# carrying the blob ids (0028), as fulltext.matching_messages' statement does. The
# vocabulary's words are all read (with a LIMIT a walk of its primary key, filtering each word,
# could look cheap; index scans stay on here, which index-only scans need).
FOLDER_UIDS = (
    f"CREATE FUNCTION {FOLDER_UIDS_NAME}(folder bigint, max_uid bigint, pattern text,"
    " in_header boolean, bound integer, few integer) RETURNS text"
    " LANGUAGE plpgsql STABLE SET enable_seqscan = off AS $$"
    " DECLARE words text[]; blobs bigint[]; BEGIN"
    f" words := ARRAY(SELECT v.word FROM {VOCABULARY} v WHERE v.word LIKE pattern);"
    " IF cardinality(words) > bound THEN RETURN NULL; END IF;"
    " IF in_header THEN"
    f" blobs := ARRAY(SELECT w.blob_id FROM {WORDS} w WHERE w.header && words OR w.body && words);"
    " ELSE"
    f" blobs := ARRAY(SELECT w.blob_id FROM {WORDS} w WHERE w.body && words);"
    " END IF;"
    " IF cardinality(blobs) <= few THEN"
    " RETURN coalesce((SELECT string_agg(m.uid::text, ',') FROM mailboxes_message m"
    " WHERE m.blob_id = ANY(blobs) AND m.folder_id = folder AND m.uid <= max_uid), '');"
    " END IF;"
    " RETURN coalesce((SELECT string_agg(m.uid::text, ',') FROM mailboxes_message m"
    " WHERE m.folder_id = folder AND m.uid <= max_uid"
    " AND ((m.blob_id + 0 IN (SELECT b + 0 FROM unnest(blobs) b)) IS TRUE)), '');"
    " END $$"
)
FORWARDS = [
    f"DROP FUNCTION IF EXISTS {WORDS}_matching(text, boolean)",
    function(limit=True),
    FOLDER_UIDS,
]
BACKWARDS = [
    f"DROP FUNCTION IF EXISTS {FOLDER_UIDS_NAME}(bigint, bigint, text, boolean, integer, integer)",
    f"DROP FUNCTION IF EXISTS {WORDS}_matching(text, boolean, bigint)",
    function(limit=False),  # as 0026 made it
]


class Migration(migrations.Migration):
    dependencies = [
        ("mailboxes", "0028_message_folder_uid_blob_postgresql"),
    ]

    operations = [migrations.RunPython(on_postgresql(FORWARDS), on_postgresql(BACKWARDS))]
