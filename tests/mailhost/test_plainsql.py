"""mailhost/plainsql.py reads and writes rows as the ORM does: instances from a plain SELECT
equal the ORM's field by field (aware datetimes, booleans, bytes), and Insert fills what
pre_save fills (auto_now_add) and sets the new primary keys."""

from __future__ import annotations

import dataclasses

import pytest
from django.db import connection
from django.db.models.signals import post_init
from django.utils import timezone

from delivery.models import OutboundMessage, OutboundRecipient, RecipientStatus
from mailboxes.models import Blob
from mailhost.plainsql import Columns, Insert, Read, selects_together

pytestmark = pytest.mark.django_db


def _fields(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def test_instances_read_from_a_plain_select_equal_the_orm_s():
    blob = Blob.objects.create(name="inline:x", size=3, data=b"abc")
    message = OutboundMessage.objects.create(
        queue_id="Q1", blob=blob, mail_from="a@example.org", smtputf8=True, size=3
    )
    recipient = OutboundRecipient.objects.create(
        message=message,
        address="b@example.net",
        status=RecipientStatus.DEFERRED,
        next_attempt_at=timezone.now(),
        retry_forced=True,
    )
    columns = (Columns(OutboundRecipient, "r"), Columns(OutboundMessage, "m"), Columns(Blob, "b"))
    r, m, b = columns
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {r.sql}, {m.sql}, {b.sql} FROM {r.table}"
            f" JOIN {m.table} ON m.id = r.message_id JOIN {b.table} ON b.id = m.blob_id"
            " WHERE r.id = %s",
            [recipient.pk],
        )
        row = cursor.fetchone()
    read = (r.instance(row), m.instance(row, len(r)), b.instance(row, len(r) + len(m)))
    for plain, orm in zip(read, (recipient, message, blob), strict=True):
        expected = _fields(type(orm).objects.get(pk=orm.pk))
        assert _fields(plain) == expected
        assert plain._state.adding is False
    assert read[0].retry_forced is True and timezone.is_aware(read[0].next_attempt_at)
    assert bytes(read[2].data) == b"abc"


def _select_recipient(columns: Columns, pk: int):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns.sql} FROM {columns.table} WHERE r.id = %s", [pk])
        return cursor.fetchone()


def _recipient() -> OutboundRecipient:
    blob = Blob.objects.create(name="inline:z", size=1, data=b"z")
    message = OutboundMessage.objects.create(
        queue_id="Q2", blob=blob, mail_from="a@example.org", size=1
    )
    return OutboundRecipient.objects.create(message=message, address="c@example.net")


def test_an_instance_read_plainly_saves_as_an_update_and_reads_deferred_fields():
    recipient = _recipient()
    some = Columns(OutboundRecipient, "r", ["id", "status"])
    plain = some.instance(_select_recipient(some, recipient.pk))
    # The fields not selected are deferred: read from the row on first use.
    assert plain.get_deferred_fields() == {
        f.attname for f in OutboundRecipient._meta.concrete_fields
    } - {"id", "status"}
    assert plain.address == "c@example.net"
    # Not "adding": saving it updates the row rather than inserting another.
    plain.status = RecipientStatus.DEFERRED
    plain.save(update_fields=["status"])
    assert OutboundRecipient.objects.get().status == RecipientStatus.DEFERRED
    whole = Columns(OutboundRecipient, "r")
    plain = whole.instance(_select_recipient(whole, recipient.pk))
    plain.address = "d@example.net"
    plain.save()
    assert list(OutboundRecipient.objects.values_list("address", flat=True)) == ["d@example.net"]


def test_a_model_with_init_receivers_is_built_by_the_orm_and_they_run():
    recipient = _recipient()
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance.pk)

    post_init.connect(receiver, sender=OutboundRecipient)
    try:
        columns = Columns(OutboundRecipient, "r")
        plain = columns.instance(_select_recipient(columns, recipient.pk))
    finally:
        post_init.disconnect(receiver, sender=OutboundRecipient)
    assert seen == [recipient.pk] and plain.address == "c@example.net"


def test_insert_fills_auto_fields_and_sets_the_primary_keys():
    blob = Blob.objects.create(name="inline:y", size=1, data=b"y")
    messages = [
        OutboundMessage(queue_id=f"Q{i}", blob=blob, mail_from="a@example.org", require_tls=i == 1)
        for i in range(2)
    ]
    Insert(OutboundMessage)(messages, returning=True)
    assert all(m.pk for m in messages) and messages[0].pk != messages[1].pk
    for message in messages:
        stored = OutboundMessage.objects.get(pk=message.pk)
        assert stored.queue_id == message.queue_id
        assert stored.require_tls is message.require_tls
        assert stored.created_at == message.created_at and stored.created_at is not None


SAMPLES = {
    str: ["", "x", "é@example.org"],
    bool: [True, False],
    int: [0, 7, 2**40],
    type(None): [None],
}


def test_values_an_insert_takes_as_they_are_are_those_the_orm_would_send():
    from django.apps import apps

    from mailhost.plainsql import _passed_as_is

    checked = 0
    for model in apps.get_models():
        for field in Insert(model).fields:
            for kind in _passed_as_is(field, connection):
                for value in SAMPLES[kind]:
                    prepared = field.get_db_prep_save(value, connection)
                    assert prepared == value and type(prepared) is kind, (field, value)
                    checked += 1
    assert checked > 500


def test_a_field_with_a_preparation_of_its_own_is_prepared_by_it():
    from mailhost.plainsql import _passed_as_is

    fields = {f.name: f for f in OutboundRecipient._meta.concrete_fields}
    assert _passed_as_is(fields["address"], connection) == (str, type(None))
    assert _passed_as_is(fields["message"], connection) == (int, type(None))
    assert _passed_as_is(fields["retry_forced"], connection) == (bool, type(None))
    assert _passed_as_is(fields["next_attempt_at"], connection) == ()  # a datetime is adapted
    assert _passed_as_is(fields["updated_at"], connection) == ()  # auto_now's pre_save


def test_insert_of_values_fills_defaults_as_the_orm_does():
    blob = Blob.objects.create(name="inline:z", size=1, data=b"z")
    message = OutboundMessage.objects.create(queue_id="QV", blob=blob, mail_from="a@example.org")
    before = timezone.now()
    (pk,) = Insert(OutboundRecipient).values(
        [
            {
                "message_id": message.pk,
                "address": "b@example.net",
                "status": RecipientStatus.DEFERRED,  # an enum member is prepared, not sent as is
                "next_attempt_at": before,
            }
        ],
        returning=True,
    )
    orm = OutboundRecipient.objects.create(message=message, address="c@example.net")
    stored = OutboundRecipient.objects.get(pk=pk)
    assert stored.status == "deferred" and stored.next_attempt_at == before
    assert stored.updated_at >= before  # auto_now: the time of the INSERT
    left_out = {"id", "message_id", "address", "status", "next_attempt_at", "updated_at"}
    for name in set(_fields(orm)) - left_out:
        assert getattr(stored, name) == getattr(orm, name), name
    assert Insert(OutboundRecipient).values([]) == []


@pytest.mark.django_db(transaction=True)
def test_selects_together_answer_each_read_as_reads_together_does():
    """One statement on PostgreSQL (each read's rows an array of records, in binary): the
    rows typed as each read's own (aware datetimes, booleans, bytes, NULL, text), an empty
    read and a read not asked (sql None) in their places."""
    from mailhost.plainsql import Read, reads_together, selects_together

    blob = Blob.objects.create(name="inline:x", size=3, data=b"\x00\xffz")
    table = connection.ops.quote_name(Blob._meta.db_table)
    rows = Read(
        f"SELECT id, name, data, created_at, size > %s, NULL FROM {table} WHERE id = %s",
        [2, blob.pk],
        list,
    )
    none = Read(f"SELECT id, name FROM {table} WHERE id = %s", [-1], list)
    skipped = Read(None, [], lambda found: ("skipped", found))
    together = selects_together([rows, skipped, none, rows])
    assert together == reads_together([rows, skipped, none, rows])
    (found,) = together[0]
    assert found[1:3] == ("inline:x", b"\x00\xffz") and found[4:] == (True, None)
    if connection.vendor == "postgresql":  # SQLite's raw rows hold the datetime's text
        assert found[3] == blob.created_at and found[3].tzinfo is not None
    assert together[1:3] == [("skipped", []), []]


def test_reads_of_different_widths_together_each_get_their_rows_in_order():
    """Three reads of 1, 3 and 2 columns (one with no rows, one with several in its order)
    answer together as alone; a read without its `columns` goes in a statement of its own."""
    names = [f"inline:{n}" for n in "cab"]
    for name in names:
        Blob.objects.create(name=name, size=len(name), data=b"x")
    table = connection.ops.quote_name(Blob._meta.db_table)
    reads = [
        Read(f"SELECT name FROM {table} WHERE size = %s", [99], list, columns=1),
        Read(
            f"SELECT name, size, %s FROM {table} WHERE name LIKE %s ORDER BY name DESC",
            ["k", "inline:%"],
            list,
            columns=3,
        ),
        Read(None, [], lambda rows: "nothing asked"),
        Read(f"SELECT size, name FROM {table} WHERE name = %s", ["inline:a"], list, columns=2),
    ]
    expected = [
        [],
        [("inline:c", 8, "k"), ("inline:b", 8, "k"), ("inline:a", 8, "k")],
        "nothing asked",
        [(8, "inline:a")],
    ]
    assert selects_together(reads) == [read.run() for read in reads] == expected
    plain = [dataclasses.replace(read, columns=None) for read in reads]
    assert selects_together(plain) == expected


def test_selects_together_past_the_parameter_limit_answer_each_alone():
    """Two reads whose parameters together pass the database's limit (999 on SQLite), each
    within it: asked one after the other, each answered."""
    count = (connection.features.max_query_params or 999) // 2 + 1
    marks = ", ".join(["%s"] * count)
    reads = [
        Read(f"SELECT %s WHERE %s IN ({marks})", [n, n, *range(count)], list, columns=1)
        for n in (1, 2)
    ]
    assert selects_together(reads) == [[(1,)], [(2,)]]


def test_a_datetime_is_adapted_by_the_backend_as_get_db_prep_save_adapts_it():
    """Insert hands an aware datetime of a DateTimeField to the backend's
    adapt_datetimefield_value at once (plainsql._prepared): the same parameter as
    get_db_prep_save's, for aware values in several zones; a naive one, or a field whose
    preparation is its own, still goes through get_db_prep_save (its warning included)."""
    import datetime
    import warnings
    import zoneinfo

    from django.apps import apps
    from django.db.models import DateTimeField

    from mailhost.plainsql import _datetime_adapter, _prepared

    zones = [
        datetime.UTC,
        zoneinfo.ZoneInfo("Europe/Paris"),
        datetime.timezone(-datetime.timedelta(hours=5)),
    ]
    values = [timezone.now(), datetime.datetime(2026, 12, 5, 6, 1, 2, tzinfo=datetime.UTC)]
    values += [datetime.datetime(2026, 3, 29, 2, 30, 5, 7, tzinfo=zone) for zone in zones]
    checked = 0
    for model in apps.get_models():
        for field in Insert(model).fields:
            adapt = _datetime_adapter(field, connection)
            assert (adapt is not None) == (type(field) is DateTimeField), field
            if not isinstance(field, DateTimeField):
                continue
            for value in values:
                expected = field.get_db_prep_save(value, connection)
                assert _prepared(field, value, connection, adapt) == expected, (field, value)
                checked += 1
    assert checked > 20
    field = OutboundRecipient._meta.get_field("next_attempt_at")
    naive = datetime.datetime(2026, 12, 5, 6, 1, 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = _prepared(field, naive, connection, _datetime_adapter(field, connection))
    assert got == field.get_db_prep_save(naive, connection)
    assert any("naive datetime" in str(w.message) for w in caught)
