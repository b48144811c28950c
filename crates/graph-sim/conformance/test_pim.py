"""Contacts, calendars, events, calendarView delta, group calendars and To Do,
through msgraph-sdk's request builders."""

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.attendee import Attendee
from msgraph.generated.models.contact import Contact
from msgraph.generated.models.contact_folder import ContactFolder
from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone
from msgraph.generated.models.email_address import EmailAddress
from msgraph.generated.models.event import Event
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.patterned_recurrence import PatternedRecurrence
from msgraph.generated.models.recurrence_pattern import RecurrencePattern
from msgraph.generated.models.recurrence_pattern_type import RecurrencePatternType
from msgraph.generated.models.recurrence_range import RecurrenceRange
from msgraph.generated.models.recurrence_range_type import RecurrenceRangeType
from msgraph.generated.models.day_of_week import DayOfWeek
from msgraph.generated.models.todo_task import TodoTask
from msgraph.generated.models.todo_task_list import TodoTaskList
from msgraph.generated.models.task_status import TaskStatus
from msgraph.generated.models.event_type import EventType
from msgraph.generated.users.item.calendar_view.calendar_view_request_builder import CalendarViewRequestBuilder
from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import DeltaRequestBuilder as CalViewDelta
from msgraph.generated.users.item.events.item.instances.instances_request_builder import InstancesRequestBuilder
from msgraph.generated.groups.item.calendar_view.calendar_view_request_builder import (
    CalendarViewRequestBuilder as GroupCalendarViewRequestBuilder,
)

from conftest import assert_known

START = "2026-01-01T00:00:00Z"
END = "2027-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def user(sim):
    """A user with a mailbox (others answer MailboxNotEnabledForRESTAPI)."""
    users = sim.raw("GET", "/users?$top=100&$select=id").json()["value"]
    for u in users:
        r = sim.raw("GET", f"/users/{u['id']}/calendar")
        if r.status_code == 200:
            return u["id"]
        assert r.json()["error"]["code"] == "MailboxNotEnabledForRESTAPI"
    raise AssertionError("no mailbox user")


def all_pages(run, builder, page):
    items = list(page.value or [])
    while page.odata_next_link:
        page = run(builder.with_url(page.odata_next_link).get())
        items.extend(page.value or [])
    return items


def delta_round(run, builder, config=None, url=None):
    """A whole delta round: items and the delta link."""
    page = run(builder.with_url(url).get() if url else builder.get(config))
    items = list(page.value or [])
    while page.odata_next_link:
        page = run(builder.with_url(page.odata_next_link).get())
        items.extend(page.value or [])
    assert page.odata_delta_link
    return items, page.odata_delta_link


def removed_ids(items):
    return {i.id for i in items if (i.additional_data or {}).get("@removed")}


def live_ids(items):
    return {i.id for i in items if not (i.additional_data or {}).get("@removed")}


def test_contacts_folders_and_delta(graph, run, user):
    me = graph.users.by_user_id(user)
    folders = run(me.contact_folders.get()).value
    assert folders
    assert_known(folders)
    all_folders, _ = delta_round(run, me.contact_folders.delta)
    assert_known(all_folders)
    assert len(all_folders) >= len(folders) + 1
    child = folders[0]
    kids = run(me.contact_folders.by_contact_folder_id(child.id).child_folders.get()).value
    assert_known(kids)
    contacts = all_pages(run, me.contacts, run(me.contacts.get()))
    assert len(contacts) >= 1
    assert_known(contacts)
    c = contacts[0]
    assert c.display_name and c.email_addresses and c.change_key and c.parent_folder_id
    assert c.business_address is not None
    in_child = run(me.contact_folders.by_contact_folder_id(child.id).contacts.get()).value
    assert_known(in_child)

    folder_builder = me.contact_folders.by_contact_folder_id(c.parent_folder_id).contacts.delta
    first, link = delta_round(run, folder_builder)
    assert_known(first)
    assert live_ids(first) == {x.id for x in contacts}
    new = run(me.contacts.post(Contact(given_name="Ada", surname="Lovelace",
                                       email_addresses=[EmailAddress(address="ada@example.com", name="Ada")])))
    assert new.display_name == "Ada Lovelace"
    assert_known(new)
    patched = run(me.contacts.by_contact_id(contacts[1].id).patch(Contact(job_title="Chief Engineer")))
    assert patched.job_title == "Chief Engineer"
    run(me.contacts.by_contact_id(contacts[2].id).delete())
    round2, _ = delta_round(run, folder_builder, url=link)
    assert live_ids(round2) == {new.id, contacts[1].id}
    assert removed_ids(round2) == {contacts[2].id}

    made = run(me.contact_folders.post(ContactFolder(display_name="From SDK")))
    assert_known(made)
    inner = run(me.contact_folders.by_contact_folder_id(made.id).child_folders.post(ContactFolder(display_name="Inner")))
    assert inner.parent_folder_id == made.id
    run(me.contact_folders.by_contact_folder_id(made.id).delete())
    with pytest.raises(ODataError) as e:
        run(me.contacts.by_contact_id(contacts[2].id).get())
    assert e.value.response_status_code == 404
    assert e.value.error.code == "ErrorItemNotFound"


def test_calendars_events_instances_and_view(graph, run, user):
    me = graph.users.by_user_id(user)
    cals = run(me.calendars.get()).value
    assert_known(cals)
    assert cals[0].is_default_calendar
    default = run(me.calendar.get())
    assert_known(default)
    assert default.id == cals[0].id
    events = all_pages(run, me.events, run(me.events.get()))
    assert_known(events)
    assert {e.type for e in events} <= {EventType.SingleInstance, EventType.SeriesMaster}
    other = run(me.calendars.by_calendar_id(cals[1].id).events.get()).value
    assert_known(other)

    master = run(me.events.post(Event(
        subject="SDK series",
        start=DateTimeTimeZone(date_time="2026-03-02T10:00:00", time_zone="UTC"),
        end=DateTimeTimeZone(date_time="2026-03-02T10:30:00", time_zone="UTC"),
        recurrence=PatternedRecurrence(
            pattern=RecurrencePattern(type=RecurrencePatternType.Weekly, interval=1,
                                      days_of_week=[DayOfWeek.Monday, DayOfWeek.Wednesday]),
            range=RecurrenceRange(type=RecurrenceRangeType.Numbered, start_date=__import__("datetime").date(2026, 3, 2),
                                  number_of_occurrences=4),
        ),
    )))
    assert_known(master)
    assert master.type == EventType.SeriesMaster
    q = InstancesRequestBuilder.InstancesRequestBuilderGetQueryParameters(
        start_date_time="2026-03-01T00:00:00Z", end_date_time="2026-04-01T00:00:00Z")
    inst = run(me.events.by_event_id(master.id).instances.get(RequestConfiguration(query_parameters=q))).value
    assert_known(inst)
    assert [i.start.date_time[:10] for i in inst] == ["2026-03-02", "2026-03-04", "2026-03-09", "2026-03-11"]
    moved = run(me.events.by_event_id(inst[1].id).patch(Event(
        start=DateTimeTimeZone(date_time="2026-03-05T09:00:00", time_zone="UTC"),
        end=DateTimeTimeZone(date_time="2026-03-05T09:30:00", time_zone="UTC"))))
    assert moved.type == EventType.Exception
    run(me.events.by_event_id(inst[2].id).delete())
    inst = run(me.events.by_event_id(master.id).instances.get(RequestConfiguration(query_parameters=q))).value
    assert [(i.start.date_time[:10], i.type) for i in inst] == [
        ("2026-03-02", EventType.Occurrence), ("2026-03-05", EventType.Exception), ("2026-03-11", EventType.Occurrence)]

    vq = CalendarViewRequestBuilder.CalendarViewRequestBuilderGetQueryParameters(start_date_time=START, end_date_time=END)
    view = all_pages(run, me.calendar_view, run(me.calendar_view.get(RequestConfiguration(query_parameters=vq))))
    assert_known(view)
    assert EventType.SeriesMaster not in {v.type for v in view}
    assert any(v.series_master_id == master.id for v in view)

    updated = run(me.events.by_event_id(master.id).patch(Event(subject="SDK series v2")))
    assert updated.subject == "SDK series v2"
    run(me.events.by_event_id(master.id).delete())
    with pytest.raises(ODataError) as e:
        run(me.events.by_event_id(master.id).get())
    assert e.value.response_status_code == 404


def test_calendar_view_delta_and_invitations(graph, run, sim, user):
    me = graph.users.by_user_id(user)
    q = CalViewDelta.DeltaRequestBuilderGetQueryParameters(start_date_time=START, end_date_time=END)
    first, link = delta_round(run, me.calendar_view.delta, RequestConfiguration(query_parameters=q))
    assert first
    assert_known(first)
    before = sim.control("GET", "/_sim/stats")["byKey"].get("pim:invitationsSent", 0)
    ev = run(me.events.post(Event(
        subject="SDK meeting",
        start=DateTimeTimeZone(date_time="2026-07-01T09:00:00", time_zone="UTC"),
        end=DateTimeTimeZone(date_time="2026-07-01T10:00:00", time_zone="UTC"),
        attendees=[Attendee(email_address=EmailAddress(address="guest@example.com", name="Guest"))],
    )))
    assert_known(ev)
    after = sim.control("GET", "/_sim/stats")["byKey"].get("pim:invitationsSent", 0)
    assert after == before + 1
    gone = next(e for e in first if e.type == EventType.SingleInstance)
    run(me.events.by_event_id(gone.id).delete())
    round2, _ = delta_round(run, me.calendar_view.delta, url=link)
    assert_known(round2)
    assert ev.id in live_ids(round2)
    assert gone.id in removed_ids(round2)

    with pytest.raises(ODataError) as e:
        run(me.calendar_view.delta.with_url(link.split("$deltatoken=")[0] + "$deltatoken=bogus").get())
    assert e.value.response_status_code == 410
    assert e.value.error.code == "SyncStateNotFound"


def test_group_calendar(graph, run, sim):
    groups = sim.raw("GET", "/groups?$top=100").json()["value"]
    unified = [g for g in groups if "Unified" in (g.get("groupTypes") or [])]
    assert unified
    g = graph.groups.by_group_id(unified[0]["id"])
    cal = run(g.calendar.get())
    assert_known(cal)
    events = run(g.events.get()).value
    assert_known(events)
    q = GroupCalendarViewRequestBuilder.CalendarViewRequestBuilderGetQueryParameters(
        start_date_time="2025-01-01T00:00:00Z", end_date_time=END)
    view = run(g.calendar_view.get(RequestConfiguration(query_parameters=q))).value
    assert_known(view)
    made = run(g.events.post(Event(
        subject="Group SDK event",
        start=DateTimeTimeZone(date_time="2026-07-02T09:00:00", time_zone="UTC"),
        end=DateTimeTimeZone(date_time="2026-07-02T10:00:00", time_zone="UTC"))))
    assert_known(made)
    assert run(g.events.by_event_id(made.id).get()).subject == "Group SDK event"


def test_todo_lists_tasks_and_delta(graph, run, user):
    me = graph.users.by_user_id(user)
    lists = run(me.todo.lists.get()).value
    assert_known(lists)
    default = next(l for l in lists if l.wellknown_list_name and l.wellknown_list_name.value == "defaultList")
    assert default.display_name == "Tasks"
    all_lists, list_link = delta_round(run, me.todo.lists.delta)
    assert_known(all_lists)
    tasks_b = me.todo.lists.by_todo_task_list_id(default.id).tasks
    tasks = all_pages(run, tasks_b, run(tasks_b.get()))
    assert_known(tasks)
    first, link = delta_round(run, tasks_b.delta)
    assert_known(first)
    assert live_ids(first) == {t.id for t in tasks}
    new = run(tasks_b.post(TodoTask(title="SDK task",
                                    due_date_time=DateTimeTimeZone(date_time="2026-09-01T00:00:00", time_zone="UTC"))))
    assert_known(new)
    done = run(tasks_b.by_todo_task_id(new.id).patch(TodoTask(status=TaskStatus.Completed)))
    assert done.status == TaskStatus.Completed and done.completed_date_time is not None
    run(tasks_b.by_todo_task_id(tasks[0].id).delete())
    items = run(tasks_b.by_todo_task_id(new.id).checklist_items.get()).value
    assert items == []
    round2, _ = delta_round(run, tasks_b.delta, url=link)
    assert_known(round2)
    assert live_ids(round2) == {new.id}
    assert removed_ids(round2) == {tasks[0].id}
    made = run(me.todo.lists.post(TodoTaskList(display_name="SDK list")))
    assert_known(made)
    lround, _ = delta_round(run, me.todo.lists.delta, url=list_link)
    assert live_ids(lround) == {made.id}
