"""OneDrive and SharePoint through msgraph-sdk: drives, items, delta, content,
upload sessions (the SDK's LargeFileUploadTask), versions, permissions, sites,
getAllSites and search, lists and list items, list item delta, site pages
(read with their canvas, created, published)."""

import io

from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.drives.item.items.item.children.children_request_builder import (
    ChildrenRequestBuilder,
)
from msgraph.generated.drives.item.items.item.create_upload_session.create_upload_session_post_request_body import (
    CreateUploadSessionPostRequestBody,
)
from msgraph.generated.drives.item.items.item.invite.invite_post_request_body import InvitePostRequestBody
from msgraph.generated.models.drive_item import DriveItem
from msgraph.generated.models.drive_item_uploadable_properties import DriveItemUploadableProperties
from msgraph.generated.models.drive_recipient import DriveRecipient
from msgraph.generated.models.folder import Folder
from msgraph.generated.models.canvas_layout import CanvasLayout
from msgraph.generated.models.horizontal_section import HorizontalSection
from msgraph.generated.models.horizontal_section_column import HorizontalSectionColumn
from msgraph.generated.models.site_page import SitePage
from msgraph.generated.models.standard_web_part import StandardWebPart
from msgraph.generated.models.text_web_part import TextWebPart
from msgraph.generated.models.title_area import TitleArea
from msgraph.generated.models.web_part_data import WebPartData
from msgraph.generated.sites.item.pages.item.graph_site_page.graph_site_page_request_builder import (
    GraphSitePageRequestBuilder,
)
from msgraph.generated.sites.item.lists.item.items.items_request_builder import ItemsRequestBuilder
from msgraph.generated.sites.sites_request_builder import SitesRequestBuilder
from msgraph_core.tasks.large_file_upload import LargeFileUploadTask

from conftest import assert_known


def licensed_user(graph, run):
    page = run(graph.users.get())
    for u in page.value:
        try:
            drive = run(graph.users.by_user_id(u.id).drive.get())
        except Exception:  # no OneDrive (shared mailbox, unlicensed)
            continue
        return u, drive
    raise AssertionError("no user with a OneDrive")


def delta_round(builder, run):
    page = run(builder.delta.get())
    items = list(page.value)
    while page.odata_next_link:
        page = run(builder.delta.with_url(page.odata_next_link).get())
        items.extend(page.value)
    return items, page.odata_delta_link


def test_drive_root_children_and_content(graph, run):
    user, drive = licensed_user(graph, run)
    assert drive.drive_type == "business"
    assert_known(drive)
    d = graph.drives.by_drive_id(drive.id)
    root = run(d.root.get())
    assert root.root is not None
    assert_known(root)
    q = ChildrenRequestBuilder.ChildrenRequestBuilderGetQueryParameters(top=3)
    page = run(d.items.by_drive_item_id(root.id).children.get(RequestConfiguration(query_parameters=q)))
    kids = list(page.value)
    while page.odata_next_link:
        page = run(d.items.by_drive_item_id(root.id).children.with_url(page.odata_next_link).get())
        kids.extend(page.value)
    assert len(kids) == root.folder.child_count
    assert_known(kids)
    items, _ = delta_round(d.items.by_drive_item_id("root"), run)
    files = [i for i in items if i.file is not None]
    small = min(files, key=lambda f: f.size)
    data = run(d.items.by_drive_item_id(small.id).content.get())
    assert len(data) == small.size


def test_delta_with_latest_token_and_deletions(graph, run, sim):
    _, drive = licensed_user(graph, run)
    d = graph.drives.by_drive_id(drive.id)
    items, link = delta_round(d.items.by_drive_item_id("root"), run)
    assert any(i.root is not None for i in items)
    assert all(i.parent_reference.path is None for i in items)
    assert_known(items)
    folder = run(d.items.by_drive_item_id("root").children.post(
        DriveItem(name="sdk-delta", folder=Folder(), additional_data={"@microsoft.graph.conflictBehavior": "rename"})))
    run(d.items.by_drive_item_id(folder.id).delete())
    page = run(d.items.by_drive_item_id("root").delta.with_url(link).get())
    deleted = [i for i in page.value if i.deleted is not None]
    assert [i.id for i in deleted] == [folder.id]
    assert deleted[0].deleted.state == "deleted"
    assert_known(page.value)
    latest = sim.raw("GET", f"/drives/{drive.id}/root/delta?token=latest").json()
    assert latest["value"] == [] and "token=" in latest["@odata.deltaLink"]
    gone = sim.raw("GET", f"/drives/{drive.id}/root/delta?token=bogus")
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "resyncRequired"


def test_large_file_upload_task(graph, run):
    _, drive = licensed_user(graph, run)
    d = graph.drives.by_drive_id(drive.id)
    body = CreateUploadSessionPostRequestBody(
        item=DriveItemUploadableProperties(additional_data={"@microsoft.graph.conflictBehavior": "replace"}))
    session = run(d.items.by_drive_item_id("root:/sdk/upload.bin:").create_upload_session.post(body))
    assert session.upload_url
    # Two fragments: the SDK's task sends 320 KiB + 1 byte as its second
    # fragment, which only the last fragment may be.
    data = bytes((i * 7) % 256 for i in range(400 * 1024))
    task = LargeFileUploadTask(session, graph.request_adapter, io.BytesIO(data),
                               parsable_factory=DriveItem, max_chunk_size=320 * 1024)
    result = run(task.upload())
    item = result.item_response
    assert item.size == len(data)
    assert item.name == "upload.bin"
    got = run(d.items.by_drive_item_id(item.id).content.get())
    assert got == data
    versions = run(d.items.by_drive_item_id(item.id).versions.get())
    assert [v.id for v in versions.value] == ["1.0"]
    assert_known(versions.value)


def test_versions_and_permissions(graph, run):
    user, drive = licensed_user(graph, run)
    d = graph.drives.by_drive_id(drive.id)
    item = run(d.items.by_drive_item_id("root:/sdk/v.txt:").content.put(b"one"))
    run(d.items.by_drive_item_id(item.id).content.put(b"two"))
    versions = run(d.items.by_drive_item_id(item.id).versions.get())
    assert [v.id for v in versions.value] == ["2.0", "1.0"]
    assert_known(versions.value)
    others = [u for u in run(graph.users.get()).value if u.id != user.id and u.mail]
    invite = InvitePostRequestBody(recipients=[DriveRecipient(email=others[0].mail)], roles=["read"],
                                   require_sign_in=True, send_invitation=False)
    granted = run(d.items.by_drive_item_id(item.id).invite.post(invite))
    assert granted.value[0].roles == ["read"]
    perms = run(d.items.by_drive_item_id(item.id).permissions.get())
    assert len(perms.value) == 1
    assert_known(perms.value)
    run(d.items.by_drive_item_id(item.id).permissions.by_permission_id(perms.value[0].id).delete())
    assert run(d.items.by_drive_item_id(item.id).permissions.get()).value == []


def test_sites_get_all_sites_and_search(graph, run):
    root = run(graph.sites.by_site_id("root").get())
    assert root.site_collection.hostname.endswith(".sharepoint.com")
    assert_known(root)
    all_sites = run(graph.sites.get_all_sites.get())
    assert any(s.id == root.id for s in all_sites.value)
    assert_known(all_sites.value)
    # getAllSites also lists OneDrive personal sites; a search lists the
    # rest (site collections and their sub-sites).
    personal = [s for s in all_sites.value if "-my.sharepoint." in (s.web_url or "")]
    assert personal, "getAllSites lists OneDrive personal sites too"
    collections = [s for s in all_sites.value if s not in personal]
    q = SitesRequestBuilder.SitesRequestBuilderGetQueryParameters(search="*")
    found = run(graph.sites.get(RequestConfiguration(query_parameters=q)))
    assert len(found.value) >= len(collections)
    assert not any("-my.sharepoint." in (s.web_url or "") for s in found.value)
    subs = run(graph.sites.by_site_id(root.id).sites.get())
    assert_known(subs.value)
    drives = run(graph.sites.by_site_id(root.id).drives.get())
    assert drives.value[0].drive_type == "documentLibrary"
    assert_known(drives.value)


def test_group_site_lists_items_and_pages(graph, run):
    groups = run(graph.groups.get()).value
    group = next(g for g in groups if "Unified" in (g.group_types or []))
    site = run(graph.groups.by_group_id(group.id).sites.by_site_id("root").get())
    assert_known(site)
    s = graph.sites.by_site_id(site.id)
    lists = run(s.lists.get()).value
    assert_known(lists)
    assert any(lst.list_.template == "documentLibrary" for lst in lists)
    generic = next(lst for lst in lists if lst.list_.template != "documentLibrary")
    cols = run(s.lists.by_list_id(generic.id).columns.get()).value
    assert any(c.name == "Title" for c in cols)
    assert_known(cols)
    plain = run(s.lists.by_list_id(generic.id).items.get()).value
    assert_known(plain)
    q = ItemsRequestBuilder.ItemsRequestBuilderGetQueryParameters(expand=["fields"])
    items = run(s.lists.by_list_id(generic.id).items.get(RequestConfiguration(query_parameters=q))).value
    assert items and items[0].fields.additional_data.get("Title")
    delta = run(s.lists.by_list_id(generic.id).items.delta.get())
    assert len(delta.value) == len(items) and delta.odata_delta_link
    pages = run(s.pages.get()).value
    assert pages and isinstance(pages[0], SitePage)
    assert_known(pages)


def test_site_page_canvas_create_and_publish(graph, run, sim):
    root = run(graph.sites.by_site_id("root").get())
    s = graph.sites.by_site_id(root.id)
    listed = run(s.pages.get()).value
    assert listed and listed[0].canvas_layout is None, "the canvas only comes expanded"
    q = GraphSitePageRequestBuilder.GraphSitePageRequestBuilderGetQueryParameters(expand=["canvasLayout"])
    page = run(s.pages.by_base_site_page_id(listed[0].id).graph_site_page.get(RequestConfiguration(query_parameters=q)))
    assert isinstance(page, SitePage) and page.publishing_state.level == "published"
    assert_known(page.title_area)
    sections = page.canvas_layout.horizontal_sections
    assert sections and sections[0].columns and sum(c.width for c in sections[0].columns) == 12
    parts = [w for sec in sections for c in sec.columns for w in c.webparts]
    assert any(isinstance(w, TextWebPart) and w.inner_html.startswith("<") for w in parts)
    assert all(isinstance(w, (TextWebPart, StandardWebPart)) for w in parts)
    for w in parts:
        if isinstance(w, StandardWebPart):
            assert w.web_part_type and w.data.title
            # webPartData.properties and audiences are documented (Json and
            # String collection) but this SDK's model does not have them.
            assert set(w.data.additional_data) <= {"properties", "audiences"}

    body = SitePage(
        odata_type="#microsoft.graph.sitePage",
        name="conformance.aspx",
        title="Conformance",
        page_layout="article",
        show_comments=True,
        show_recommended_pages=False,
        title_area=TitleArea(layout="plain", text_alignment="left", show_author=False),
        canvas_layout=CanvasLayout(horizontal_sections=[HorizontalSection(
            id="1", layout="twoColumns", emphasis="none",
            columns=[
                HorizontalSectionColumn(id="1", width=6, webparts=[TextWebPart(id="0d1f9ec5-6b4c-4a5e-8a3b-1f2e3d4c5b6a", inner_html="<p>Hello</p>")]),
                HorizontalSectionColumn(id="2", width=6, webparts=[StandardWebPart(
                    id="3b6a1c2d-4e5f-4a7b-8c9d-0e1f2a3b4c5d", web_part_type="2161a1c6-db61-4731-b97c-3cdb303f7cbb",
                    data=WebPartData(data_version="1.0", title="Divider", description="A line"))]),
            ],
        )]),
    )
    created = run(s.pages.post(body))
    assert isinstance(created, SitePage) and created.id
    assert created.publishing_state.level == "checkout", "a new page is a draft"
    again = run(s.pages.by_base_site_page_id(created.id).graph_site_page.get(RequestConfiguration(query_parameters=q)))
    col = again.canvas_layout.horizontal_sections[0].columns
    assert col[0].webparts[0].inner_html == "<p>Hello</p>" and col[1].webparts[0].data.title == "Divider"
    # A second page of the same name is refused.
    dup = sim.raw("POST", f"/sites/{root.id}/pages", json={"@odata.type": "#microsoft.graph.sitePage", "name": "conformance.aspx"})
    assert dup.status_code == 409
    # This SDK has no publish request builder: the documented action, raw.
    r = sim.raw("POST", f"/sites/{root.id}/pages/{created.id}/microsoft.graph.sitePage/publish")
    assert r.status_code == 204
    published = run(s.pages.by_base_site_page_id(created.id).graph_site_page.get())
    assert published.publishing_state.level == "published"
    run(s.pages.by_base_site_page_id(created.id).delete())
    assert all(p.id != created.id for p in run(s.pages.get()).value)
