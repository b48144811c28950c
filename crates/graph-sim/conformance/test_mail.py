"""Mail through msgraph-sdk: folders, messages, delta, MIME, attachments,
upload sessions, create, move, delete."""

import base64
import email

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.attachment_item import AttachmentItem
from msgraph.generated.models.attachment_type import AttachmentType
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.file_attachment import FileAttachment
from msgraph.generated.models.item_attachment import ItemAttachment
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.mail_folder import MailFolder
from msgraph.generated.models.message import Message
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.recipient import Recipient
from msgraph.generated.models.single_value_legacy_extended_property import (
    SingleValueLegacyExtendedProperty,
)
from msgraph.generated.users.item.mail_folders.item.messages.messages_request_builder import (
    MessagesRequestBuilder,
)
from msgraph.generated.users.item.mail_folders.mail_folders_request_builder import (
    MailFoldersRequestBuilder,
)
from msgraph.generated.users.item.messages.item.attachments.create_upload_session.create_upload_session_post_request_body import (
    CreateUploadSessionPostRequestBody,
)
from msgraph.generated.users.item.messages.item.move.move_post_request_body import (
    MovePostRequestBody,
)

from conftest import assert_known


@pytest.fixture(scope="module")
def user(graph, run):
    """A user with a mailbox (users without one answer MailboxNotEnabledForRESTAPI)."""
    users = run(graph.users.get()).value
    for u in users:
        try:
            run(graph.users.by_user_id(u.id).mail_folders.by_mail_folder_id("inbox").get())
            return u.id
        except ODataError as e:
            assert e.error.code == "MailboxNotEnabledForRESTAPI"
    raise AssertionError("no mailbox in the tenant")


def delta_round(run, builder, config=None):
    """Every item of a delta round and its deltaLink."""
    page = run(builder.get(config))
    items = list(page.value)
    while page.odata_next_link:
        page = run(builder.with_url(page.odata_next_link).get(config))
        items.extend(page.value)
    assert page.odata_delta_link
    return items, page.odata_delta_link


def removed(items):
    return {m.id for m in items if "@removed" in (m.additional_data or {})}


def changed(items):
    return {m.id for m in items if "@removed" not in (m.additional_data or {})}


def test_folders(graph, run, user):
    folders = run(graph.users.by_user_id(user).mail_folders.get()).value
    assert_known(folders)
    names = {f.display_name for f in folders}
    assert {"Inbox", "Drafts", "Sent Items", "Deleted Items", "Archive", "Junk Email"} <= names
    assert "Recoverable Items" not in names
    q = MailFoldersRequestBuilder.MailFoldersRequestBuilderGetQueryParameters(
        include_hidden_folders="true", top=50)
    hidden = run(graph.users.by_user_id(user).mail_folders.get(RequestConfiguration(query_parameters=q))).value
    assert_known(hidden)
    # Recoverable Items is in the mailbox's non-IPM subtree, beside (not below)
    # Top of Information Store: even hidden folders do not list it, but its
    # well-known names reach it.
    assert "Recoverable Items" not in {f.display_name for f in hidden}
    deletions = run(graph.users.by_user_id(user).mail_folders.by_mail_folder_id("recoverableitemsdeletions").get())
    assert_known(deletions)
    assert deletions.is_hidden
    inbox = run(graph.users.by_user_id(user).mail_folders.by_mail_folder_id("inbox").get())
    assert_known(inbox)
    kids = run(graph.users.by_user_id(user).mail_folders.by_mail_folder_id("inbox").child_folders.get()).value
    assert_known(kids)
    assert len(kids) == inbox.child_folder_count
    created = run(graph.users.by_user_id(user).mail_folders.by_mail_folder_id(inbox.id).child_folders.post(
        MailFolder(display_name="SDK folder")))
    assert_known(created)
    assert created.parent_folder_id == inbox.id
    renamed = run(graph.users.by_user_id(user).mail_folders.by_mail_folder_id(created.id).patch(
        MailFolder(display_name="SDK folder renamed")))
    assert renamed.display_name == "SDK folder renamed"
    delta, link = delta_round(run, graph.users.by_user_id(user).mail_folders.delta)
    assert_known(delta)
    assert created.id in {f.id for f in delta}
    run(graph.users.by_user_id(user).mail_folders.by_mail_folder_id(created.id).delete())
    again, _ = delta_round(run, graph.users.by_user_id(user).mail_folders.delta.with_url(link))
    assert [f.id for f in again] == [created.id]  # moved under Deleted Items


def test_messages_paging_value_and_attachments(graph, run, user):
    q = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(top=9)
    b = graph.users.by_user_id(user).mail_folders.by_mail_folder_id("inbox").messages
    page = run(b.get(RequestConfiguration(query_parameters=q)))
    msgs = list(page.value)
    while page.odata_next_link:
        page = run(b.with_url(page.odata_next_link).get())
        msgs.extend(page.value)
    inbox = run(graph.users.by_user_id(user).mail_folders.by_mail_folder_id("inbox").get())
    assert len(msgs) == inbox.total_item_count
    assert len({m.id for m in msgs}) == len(msgs)
    assert_known(msgs)
    m = msgs[0]
    assert m.subject and m.internet_message_id and m.body.content
    mime = run(graph.users.by_user_id(user).messages.by_message_id(m.id).content.get())
    parsed = email.message_from_bytes(mime)
    assert parsed["Message-ID"] == m.internet_message_id
    assert parsed.get_all("Received")
    with_atts = [x for x in msgs if x.has_attachments]
    if with_atts:
        x = with_atts[0]
        atts = run(graph.users.by_user_id(user).messages.by_message_id(x.id).attachments.get()).value
        assert_known(atts)
        assert atts and all(isinstance(a, FileAttachment) for a in atts)
        names = {p.get_filename() for p in email.message_from_bytes(
            run(graph.users.by_user_id(user).messages.by_message_id(x.id).content.get())).walk()
            if p.get_filename()}
        assert {a.name for a in atts} <= names


def test_delta_reports_exactly_the_changes(graph, run, user):
    b = graph.users.by_user_id(user).mail_folders.by_mail_folder_id("inbox").messages.delta
    cfg = RequestConfiguration()
    cfg.headers.add("Prefer", "odata.maxpagesize=5")
    first, link = delta_round(run, b, cfg)
    assert_known(first)
    ids = sorted(changed(first))
    patched, moved, deleted = ids[0], ids[1], ids[2]
    run(graph.users.by_user_id(user).messages.by_message_id(patched).patch(Message(is_read=False)))
    moved_msg = run(graph.users.by_user_id(user).messages.by_message_id(moved).move.post(
        MovePostRequestBody(destination_id="archive")))
    assert moved_msg.id != moved  # REST ids change on move
    run(graph.users.by_user_id(user).messages.by_message_id(deleted).delete())
    created = run(graph.users.by_user_id(user).mail_folders.by_mail_folder_id("inbox").messages.post(Message(
        subject="From the SDK",
        body=ItemBody(content_type=BodyType.Text, content="hello"),
        to_recipients=[Recipient(email_address=EmailAddress(address="someone@fabrikam.com"))],
    )))
    assert_known(created)
    round2, link2 = delta_round(run, b.with_url(link))
    assert_known(round2)
    assert changed(round2) == {patched, created.id}
    assert removed(round2) == {moved, deleted}
    round3, _ = delta_round(run, b.with_url(link2))
    assert round3 == []
    sim_bad = link2.split("$deltatoken=")[0] + "$deltatoken=bogus"
    try:
        run(b.with_url(sim_bad).get())
        raise AssertionError("expected 410")
    except ODataError as e:
        assert e.response_status_code == 410
        assert e.error.code == "SyncStateNotFound"


def test_create_restored_mail_and_mime_draft(graph, run, user, sim):
    m = run(graph.users.by_user_id(user).mail_folders.by_mail_folder_id("archive").messages.post(Message(
        subject="Restored ✓",
        body=ItemBody(content_type=BodyType.Html, content="<p>back</p>"),
        single_value_extended_properties=[
            SingleValueLegacyExtendedProperty(id="Integer 0x0E07", value="1"),
            SingleValueLegacyExtendedProperty(id="SystemTime 0x0039", value="2023-05-06T07:08:09Z"),
            SingleValueLegacyExtendedProperty(id="SystemTime 0x0E06", value="2023-05-06T07:09:00Z"),
        ],
    )))
    assert_known(m)
    assert m.is_draft is False
    assert m.sent_date_time.isoformat().startswith("2023-05-06T07:08:09")
    assert m.received_date_time.isoformat().startswith("2023-05-06T07:09:00")
    eml = (b"From: Ana <ana@fabrikam.com>\r\nTo: Bo <bo@contoso.com>\r\nSubject: MIME upload\r\n"
           b"Message-ID: <sdk-mime@fabrikam.com>\r\nDate: Tue, 02 Jan 2024 10:00:00 +0000\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n")
    r = sim.raw("POST", f"/users/{user}/messages", content=base64.b64encode(eml),
                headers={"Content-Type": "text/plain"})
    assert r.status_code == 201
    draft = run(graph.users.by_user_id(user).messages.by_message_id(r.json()["id"]).get())
    assert_known(draft)
    assert draft.is_draft is True
    assert draft.subject == "MIME upload"
    assert run(graph.users.by_user_id(user).messages.by_message_id(draft.id).content.get()) == eml


def test_attachments_and_upload_session(graph, run, user, sim):
    d = run(graph.users.by_user_id(user).messages.post(Message(subject="attachments")))
    atts = graph.users.by_user_id(user).messages.by_message_id(d.id).attachments
    a = run(atts.post(FileAttachment(odata_type="#microsoft.graph.fileAttachment", name="a.txt",
                                     content_type="text/plain", content_bytes=b"hello attachment")))
    assert_known(a)
    got = run(atts.by_attachment_id(a.id).get())
    assert got.content_bytes == b"hello attachment"
    size = 3 * 1024 * 1024 + 17
    data = bytes((i * 7) % 256 for i in range(size))
    s = run(atts.create_upload_session.post(CreateUploadSessionPostRequestBody(
        attachment_item=AttachmentItem(attachment_type=AttachmentType.File, name="big.bin", size=size))))
    assert_known(s)
    assert s.next_expected_ranges == ["0-"]
    chunk = 2 * 1024 * 1024
    for start in range(0, size, chunk):
        end = min(start + chunk, size)
        r = sim._http.put(s.upload_url, content=data[start:end],
                          headers={"Content-Range": f"bytes {start}-{end - 1}/{size}"})
        assert r.status_code == (201 if end == size else 200), r.text
    listed = run(atts.get()).value
    big = [x for x in listed if x.name == "big.bin"][0]
    assert big.size == size
    assert big.content_bytes == data
    item = run(atts.post(ItemAttachment(odata_type="#microsoft.graph.itemAttachment", name="Forwarded",
                                        item=Message(subject="Inner mail"))))
    assert_known(item)
    assert isinstance(item, ItemAttachment)
    # The SDK has no request builder for an attachment's $value.
    inner = sim.raw("GET", f"/users/{user}/messages/{d.id}/attachments/{item.id}/$value").content
    assert email.message_from_bytes(inner)["Subject"] == "Inner mail"
    run(atts.by_attachment_id(item.id).delete())
    run(atts.by_attachment_id(a.id).delete())
    assert {x.name for x in run(atts.get()).value} == {"big.bin"}


def test_errors(graph, run, sim):
    try:
        run(graph.users.by_user_id("nobody@nowhere.example").messages.get())
        raise AssertionError("expected 404")
    except ODataError as e:
        assert e.response_status_code == 404
        assert e.error.code == "ErrorInvalidUser"
