"""Group conversations and Microsoft Teams (channels, members, messages,
message delta, message import) through msgraph-sdk's request builders."""

import datetime as dt

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.groups.groups_request_builder import GroupsRequestBuilder
from msgraph.generated.groups.item.threads.item.reply.reply_post_request_body import ReplyPostRequestBody
from msgraph.generated.models.body_type import BodyType
from msgraph.generated.models.channel import Channel
from msgraph.generated.models.chat_message import ChatMessage
from msgraph.generated.models.aad_user_conversation_member import AadUserConversationMember
from msgraph.generated.models.chat_message_from_identity_set import ChatMessageFromIdentitySet
from msgraph.generated.models.chat_message_reaction import ChatMessageReaction
from msgraph.generated.models.chat_message_reaction_identity_set import ChatMessageReactionIdentitySet
from msgraph.generated.models.identity import Identity
from msgraph.generated.models.item_body import ItemBody
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.post import Post
from msgraph.generated.models.team import Team
from msgraph.generated.models.teamwork_user_identity import TeamworkUserIdentity
from msgraph.generated.models.teamwork_user_identity_type import TeamworkUserIdentityType
from msgraph.generated.teams.item.channels.item.messages.messages_request_builder import MessagesRequestBuilder

from conftest import assert_known


def team_ids(graph, run):
    q = GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(
        filter="resourceProvisioningOptions/Any(x:x eq 'Team')")
    return [g.id for g in run(graph.groups.get(RequestConfiguration(query_parameters=q))).value]


def all_pages(run, builder, page):
    items = list(page.value)
    while page.odata_next_link:
        page = run(builder.with_url(page.odata_next_link).get())
        items.extend(page.value)
    return items


def test_group_conversations_threads_posts(graph, run):
    gid = team_ids(graph, run)[0]
    group = graph.groups.by_group_id(gid)
    convs = all_pages(run, group.conversations, run(group.conversations.get()))
    assert convs
    assert_known(convs)
    conv = run(group.conversations.by_conversation_id(convs[0].id).get())
    assert conv.topic == convs[0].topic
    assert_known(conv)
    threads = run(group.conversations.by_conversation_id(conv.id).threads.get()).value
    assert threads and threads[0].to_recipients
    assert_known(threads)
    tid = threads[0].id
    thread = group.threads.by_conversation_thread_id(tid)
    posts = run(thread.posts.get()).value
    assert posts
    assert_known(posts)
    p = run(thread.posts.by_post_id(posts[0].id).get())
    assert p.conversation_id == conv.id and p.conversation_thread_id == tid
    assert p.body.content_type == BodyType.Html
    assert p.from_.email_address.address
    assert_known(p)
    atts = run(thread.posts.by_post_id(posts[0].id).attachments.get()).value
    assert_known(atts)
    body = ReplyPostRequestBody(post=Post(body=ItemBody(content_type=BodyType.Text, content="Thanks all")))
    run(thread.reply.post(body))
    after = run(thread.posts.get()).value
    assert len(after) == len(posts) + 1
    assert_known(after)


def test_team_members_channels_and_private_members(graph, run):
    tid = team_ids(graph, run)[0]
    team = run(graph.teams.by_team_id(tid).get())
    assert team.display_name and team.internal_id and team.member_settings is not None
    assert_known(team)
    members = run(graph.teams.by_team_id(tid).members.get()).value
    assert any("owner" in (m.roles or []) for m in members)
    assert all(m.user_id and m.email for m in members)
    assert_known(members)
    channels = run(graph.teams.by_team_id(tid).channels.get()).value
    assert channels[0].display_name == "General"
    assert_known(channels)
    primary = run(graph.teams.by_team_id(tid).primary_channel.get())
    assert primary.id == channels[0].id
    assert_known(primary)
    for c in channels:
        cm = run(graph.teams.by_team_id(tid).channels.by_channel_id(c.id).members.get()).value
        assert_known(cm)
        if c.membership_type and c.membership_type.value == "private":
            assert len(cm) <= len(members)
            # channel-update-members: a member's role, and back.
            plain = next((m for m in cm if not m.roles), None)
            if plain is not None:
                member = graph.teams.by_team_id(tid).channels.by_channel_id(c.id).members \
                    .by_conversation_member_id(plain.id)
                up = run(member.patch(AadUserConversationMember(roles=["owner"])))
                assert up.roles == ["owner"] and up.user_id == plain.user_id
                assert_known(up)
                down = run(member.patch(AadUserConversationMember(roles=[])))
                assert not down.roles


def test_messages_replies_and_delta(graph, run):
    tid = team_ids(graph, run)[0]
    channels = run(graph.teams.by_team_id(tid).channels.get()).value
    busy = None
    for c in channels:
        msgs = run(graph.teams.by_team_id(tid).channels.by_channel_id(c.id).messages.get()).value
        if msgs:
            busy = c.id
            break
    assert busy
    ch = graph.teams.by_team_id(tid).channels.by_channel_id(busy)
    q = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(top=5, expand=["replies"])
    first = run(ch.messages.get(RequestConfiguration(query_parameters=q)))
    msgs = all_pages(run, ch.messages, first)
    assert len({m.id for m in msgs}) == len(msgs)
    assert_known(msgs)
    with_replies = [m for m in msgs if m.replies]
    if with_replies:
        m = with_replies[0]
        replies = run(ch.messages.by_chat_message_id(m.id).replies.get()).value
        assert {r.id for r in replies} == {r.id for r in m.replies}
        assert_known(replies)
        one = run(ch.messages.by_chat_message_id(m.id).replies.by_chat_message_id1(replies[0].id).get())
        assert one.reply_to_id == m.id
    one = run(ch.messages.by_chat_message_id(msgs[0].id).get())
    assert one.channel_identity.team_id == tid
    assert_known(one)

    page = run(ch.messages.delta.get())
    seen = list(page.value)
    while page.odata_next_link:
        page = run(ch.messages.delta.with_url(page.odata_next_link).get())
        seen.extend(page.value)
    assert_known(seen)
    assert {m.id for m in seen} == {m.id for m in msgs}
    delta_link = page.odata_delta_link
    assert delta_link and "$deltatoken=" in delta_link
    posted = run(ch.messages.post(ChatMessage(body=ItemBody(content="Hello from the SDK"))))
    assert_known(posted)
    changed = run(ch.messages.delta.with_url(delta_link).get())
    assert [m.id for m in changed.value] == [posted.id]


def test_migration_import(graph, run):
    users = run(graph.users.get()).value
    author = users[1]
    created = dt.datetime(2020, 3, 14, 11, 22, 17, 67000, tzinfo=dt.timezone.utc)
    run(graph.teams.post(Team(display_name="Imported from Slack", description="migration",
                              created_date_time=created,
                              additional_data={
                                  "@microsoft.graph.teamCreationMode": "migration",
                                  "template@odata.bind": "https://graph.microsoft.com/v1.0/teamsTemplates('standard')",
                              })))
    q = GroupsRequestBuilder.GroupsRequestBuilderGetQueryParameters(filter="displayName eq 'Imported from Slack'")
    tid = run(graph.groups.get(RequestConfiguration(query_parameters=q))).value[0].id
    team = graph.teams.by_team_id(tid)
    assert run(team.get()).created_date_time == created
    general = run(team.primary_channel.get())
    ch = run(team.channels.post(Channel(display_name="Architecture", created_date_time=created,
                                        additional_data={"@microsoft.graph.channelCreationMode": "migration"})))
    assert_known(ch)
    assert ch.migration_mode.value == "inProgress"

    def imported(when, text):
        return ChatMessage(
            created_date_time=when,
            from_=ChatMessageFromIdentitySet(user=TeamworkUserIdentity(
                id=author.id, display_name=author.display_name,
                user_identity_type=TeamworkUserIdentityType.AadUser)),
            body=ItemBody(content_type=BodyType.Html, content=text))

    when = dt.datetime(2020, 5, 1, 10, 0, 0, 123000, tzinfo=dt.timezone.utc)
    # The import takes "up to 250 reactions", each by a user of the tenant.
    with_reactions = imported(when, "<p>old news</p>")
    liked = when + dt.timedelta(minutes=2)
    with_reactions.reactions = [ChatMessageReaction(
        reaction_type="like", created_date_time=liked,
        user=ChatMessageReactionIdentitySet(user=Identity(id=users[2].id)))]
    msg = run(team.channels.by_channel_id(ch.id).messages.post(with_reactions))
    assert msg.created_date_time == when
    assert msg.from_.user.id == author.id
    assert_known(msg)
    assert [(r.reaction_type, r.user.user.id, r.created_date_time) for r in msg.reactions] == \
        [("like", users[2].id, liked)]
    reply = run(team.channels.by_channel_id(ch.id).messages.by_chat_message_id(msg.id).replies.post(
        imported(when + dt.timedelta(minutes=5), "<p>reply</p>")))
    assert reply.reply_to_id == msg.id
    for c in (ch.id, general.id):
        run(team.channels.by_channel_id(c).complete_migration.post())
    run(team.complete_migration.post())
    assert run(team.channels.by_channel_id(ch.id).get()).migration_mode.value == "completed"
    with pytest.raises(ODataError) as e:
        run(team.channels.by_channel_id(ch.id).messages.post(imported(when + dt.timedelta(days=1), "late")))
    assert e.value.response_status_code == 401
    assert e.value.error.code == "Unauthorized"
    live = run(team.channels.by_channel_id(ch.id).messages.post(ChatMessage(body=ItemBody(content="live"))))
    assert live.id
    msgs = run(team.channels.by_channel_id(ch.id).messages.get()).value
    assert {m.id for m in msgs} == {msg.id, live.id}


def test_list_teams_joined_teams_and_new_conversation(graph, run):
    from msgraph.generated.models.conversation import Conversation
    from msgraph.generated.models.conversation_thread import ConversationThread

    teams = run(graph.teams.get()).value
    assert teams
    assert_known(teams)
    tid = teams[0].id
    owner = run(graph.groups.by_group_id(tid).owners.get()).value[0].id
    joined = run(graph.users.by_user_id(owner).joined_teams.get()).value
    assert tid in {t.id for t in joined}
    assert_known(joined)
    conv = run(graph.groups.by_group_id(tid).conversations.post(Conversation(
        topic="Restored conversation",
        threads=[ConversationThread(posts=[Post(body=ItemBody(content_type=BodyType.Html, content="<p>Back</p>"))])])))
    assert conv.id and conv.topic == "Restored conversation"
    assert_known(conv)
    threads = run(graph.groups.by_group_id(tid).conversations.by_conversation_id(conv.id).threads.get()).value
    assert len(threads) == 1
    run(graph.groups.by_group_id(tid).conversations.by_conversation_id(conv.id).delete())
    with pytest.raises(ODataError) as e:
        run(graph.groups.by_group_id(tid).conversations.by_conversation_id(conv.id).get())
    assert e.value.response_status_code == 404
