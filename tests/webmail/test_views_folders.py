"""Creating, renaming and deleting folders from the webmail."""

from __future__ import annotations

import pytest

from mailboxes import selectors, services
from mailboxes.models import Folder, Message
from tests.webmail.conftest import deliver, folder, make_raw

pytestmark = pytest.mark.django_db


def names(mailbox) -> set[str]:
    return set(Folder.objects.filter(mailbox=mailbox).values_list("name", flat=True))


def test_folders_page_lists_special_folders_first(web):
    response = web.get("/folders/")
    assert response.status_code == 200
    labels = [item.label for item in response.context["folders"]]
    assert labels == ["Inbox", "Drafts", "Sent", "Archive", "Junk", "Trash"]
    icons = [item.icon for item in response.context["folders"]]
    assert icons == ["inbox", "draft", "send", "archive", "junk", "trash"]


def test_sidebar_shows_unread_counts(web, inbox):
    deliver(make_raw())
    deliver(make_raw())
    response = web.get(f"/f/{inbox.pk}/")
    assert 'data-folder-name="INBOX"' in response.content.decode()
    inbox_item = response.context["folders"][0]
    assert inbox_item.folder.unseen_count == 2
    assert '<span class="count" data-unseen>2</span>' in response.content.decode()


def test_create_top_level_and_nested(web, alice):
    response = web.post("/folders/create/", {"name": "Projects"}, follow=True)
    assert "Folder “Projects” created." in response.content.decode()
    parent = folder(alice, "Projects")
    web.post("/folders/create/", {"name": "Mailhost", "parent": str(parent.pk)})
    assert {"Projects", "Projects/Mailhost"} <= names(alice)
    page = web.get("/folders/")
    nested = [i for i in page.context["folders"] if i.folder.name == "Projects/Mailhost"][0]
    assert nested.depth == 1 and nested.label == "Mailhost"


def test_create_errors(web, alice):
    response = web.post("/folders/create/", {"name": "Sent"}, follow=True)
    assert "Could not create “Sent”" in response.content.decode()
    response = web.post("/folders/create/", {"name": "bad*name"}, follow=True)
    assert "forbidden character" in response.content.decode()
    response = web.post("/folders/create/", {"name": ""}, follow=True)
    assert "Could not create" in response.content.decode()
    assert web.post("/folders/create/", {"name": "x", "parent": "999999"}).status_code == 404
    assert web.get("/folders/create/").status_code == 405


def test_rename(web, alice):
    projects = services.folder_create(mailbox=alice, name="Projects")
    services.folder_create(mailbox=alice, name="Projects/Old")
    response = web.post(f"/folders/{projects.pk}/rename/", {"name": "Work"}, follow=True)
    assert "“Projects” renamed to “Work”." in response.content.decode()
    assert {"Work", "Work/Old"} <= names(alice)
    assert "Projects" not in names(alice)


def test_rename_errors(web, alice):
    projects = services.folder_create(mailbox=alice, name="Projects")
    response = web.post(f"/folders/{projects.pk}/rename/", {"name": "Archive"}, follow=True)
    assert "Could not rename “Projects”" in response.content.decode()
    sent = folder(alice, "Sent")
    response = web.post(f"/folders/{sent.pk}/rename/", {"name": "Outbox"}, follow=True)
    assert "special folder and keeps its name" in response.content.decode()
    assert "Sent" in names(alice)


def test_delete(web, alice):
    old = services.folder_create(mailbox=alice, name="Old")
    services.message_append(folder=old, raw=make_raw(), flags=[])
    response = web.post(f"/folders/{old.pk}/delete/", follow=True)
    assert "Folder “Old” deleted with its messages." in response.content.decode()
    assert "Old" not in names(alice)
    assert Message.objects.filter(folder__mailbox=alice).count() == 0


def test_delete_errors(web, alice, inbox, bob):
    response = web.post(f"/folders/{inbox.pk}/delete/", follow=True)
    assert "cannot be deleted" in response.content.decode()
    parent = services.folder_create(mailbox=alice, name="Parent")
    services.folder_create(mailbox=alice, name="Parent/Child")
    response = web.post(f"/folders/{parent.pk}/delete/", follow=True)
    assert "has subfolders" in response.content.decode()
    bobs = folder(bob, "INBOX")
    assert web.post(f"/folders/{bobs.pk}/delete/").status_code == 404
    assert web.post(f"/folders/{bobs.pk}/rename/", {"name": "x"}).status_code == 404


def test_sharing_a_folder_read_only_read_write_and_with_the_domain(web, alice, bob):
    archive = folder(alice, "Archive")
    page = web.get(f"/folders/{archive.pk}/sharing/")
    assert "Not shared: only you see this folder." in page.content.decode()
    assert f"/folders/{archive.pk}/sharing/" in web.get("/folders/").content.decode()
    response = web.post(
        f"/folders/{archive.pk}/sharing/",
        {"who": "address", "address": bob.address, "access": "read"},
        follow=True,
    )
    assert f"“Archive” shared with {bob.address}." in response.content.decode()
    shared = f"Other Users/{alice.address}/Archive"
    assert selectors.folder_access(bob.id, shared).rights == "lr"
    web.post(f"/folders/{archive.pk}/sharing/", {"who": "domain", "access": "write"})
    assert selectors.folder_acl(archive) == [
        (alice.address, "lrswipkxtea"),
        ("anyone", "lrswipkxte"),
        (bob.address, "lr"),
    ]
    html = web.get(f"/folders/{archive.pk}/sharing/").content.decode()
    assert "Everyone in your domain" in html and "Read and write" in html and "Read only" in html
    # bob holds the union of his entry and the domain's
    assert selectors.folder_access(bob.id, shared).rights == "lrswipkxte"
    web.post(
        f"/folders/{archive.pk}/sharing/",
        {"action": "remove", "who": "address", "address": bob.address},
    )
    web.post(f"/folders/{archive.pk}/sharing/", {"action": "remove", "who": "domain"})
    assert selectors.folder_acl(archive) == [(alice.address, "lrswipkxtea")]
    assert selectors.folder_access(bob.id, shared) is None


def test_sharing_errors_and_other_mailboxes_folders(web, alice, bob):
    archive = folder(alice, "Archive")
    response = web.post(
        f"/folders/{archive.pk}/sharing/",
        {"who": "address", "address": "nobody@example.org", "access": "read"},
        follow=True,
    )
    assert "There is no mailbox nobody@example.org here." in response.content.decode()
    response = web.post(
        f"/folders/{archive.pk}/sharing/",
        {"who": "address", "address": alice.address, "access": "read"},
        follow=True,
    )
    assert "Could not share “Archive”" in response.content.decode()
    assert selectors.folder_acl(archive) == [(alice.address, "lrswipkxtea")]
    # another mailbox's folder is not alice's to share
    assert web.get(f"/folders/{folder(bob, 'Archive').pk}/sharing/").status_code == 404
