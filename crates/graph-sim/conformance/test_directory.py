"""The directory and the identity platform, through msal and msgraph-sdk."""

from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder

from conftest import assert_known


def test_msal_gets_a_token_and_bad_secrets_are_refused(sim):
    assert sim.token()["token_type"] == "Bearer"
    bad = sim.msal_app("wrong")
    result = bad.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
    assert result.get("error") == "invalid_client"
    assert 7000215 in result.get("error_codes", [])


def test_users_page_with_the_sdk_and_every_field_is_known(graph, run, sim):
    q = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
        top=7,
        select=["id", "displayName", "mail", "userPrincipalName", "accountEnabled", "assignedLicenses",
                "department", "city", "country", "companyName", "jobTitle", "officeLocation", "ageGroup"],
    )
    page = run(graph.users.get(RequestConfiguration(query_parameters=q)))
    users = list(page.value)
    assert len(users) == 7
    while page.odata_next_link:
        page = run(graph.users.with_url(page.odata_next_link).get())
        users.extend(page.value)
    assert len(users) == 30
    assert len({u.id for u in users}) == 30
    assert_known(users)
    assert any(u.account_enabled is False for u in users)
    one = run(graph.users.by_user_id(users[0].user_principal_name).get())
    assert one.id == users[0].id
    assert_known(one)
    settings = run(graph.users.by_user_id(users[0].id).mailbox_settings.get())
    assert settings.user_purpose is not None
    assert_known(settings)


def test_groups_members_owners_and_errors(graph, run):
    q = GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(
        filter="resourceProvisioningOptions/Any(x:x eq 'Team')")
    teams = run(graph.groups.get(RequestConfiguration(query_parameters=q))).value
    assert teams
    assert_known(teams)
    gid = teams[0].id
    members = run(graph.groups.by_group_id(gid).members.get()).value
    owners = run(graph.groups.by_group_id(gid).owners.get()).value
    assert members and owners
    assert {o.id for o in owners} <= {m.id for m in members}
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    try:
        run(graph.users.by_user_id("00000000-0000-0000-0000-000000000000").get())
        raise AssertionError("expected a 404")
    except ODataError as e:
        assert e.response_status_code == 404
        assert e.error.code == "Request_ResourceNotFound"


def test_batch_through_the_sdk_request_content(graph, run, sim):
    from msgraph_core.requests.batch_request_content import BatchRequestContent
    from msgraph_core.requests.batch_request_item import BatchRequestItem
    from kiota_abstractions.request_information import RequestInformation
    from kiota_abstractions.method import Method

    items = []
    for i, path in enumerate(["/users?$top=1", "/organization", "/users/does-not-exist"]):
        info = RequestInformation()
        info.http_method = Method.GET
        info.url = sim.graph_url + path
        items.append(BatchRequestItem(request_information=info, id=str(i + 1)))
    content = BatchRequestContent({item.id: item for item in items})
    responses = run(graph.batch.post(content))
    statuses = {rid: r.status for rid, r in responses.responses.items()}
    assert statuses == {"1": 200, "2": 200, "3": 404}


def test_users_delta_through_the_sdk_sees_exactly_the_changes(graph, run, sim):
    page = run(graph.users.delta.get())
    seen = list(page.value)
    while page.odata_next_link:
        page = run(graph.users.delta.with_url(page.odata_next_link).get())
        seen.extend(page.value)
    assert_known(seen)
    delta_link = page.odata_delta_link
    assert delta_link and len(seen) >= 30
    victim = seen[5].id
    sim.control("POST", f"/_sim/users/{victim}/delete")
    page = run(graph.users.delta.with_url(delta_link).get())
    removed = [u for u in page.value if (u.additional_data or {}).get("@removed")]
    assert [u.id for u in removed] == [victim]
    assert page.odata_delta_link
