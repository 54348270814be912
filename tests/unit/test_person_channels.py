"""One person, many channels, one warning: the pure rules of which channel a person is tried on."""

from broadcast.dispatch import planning


def test_order_is_the_persons_own_kept_to_what_the_alert_uses_and_they_can_be_reached_on():
    assert planning.person_order(["telegram", "sms"], {"sms", "telegram"}) == ["telegram", "sms"]
    assert planning.person_order(["whatsapp", "telegram", "sms"], {"sms", "whatsapp"}) == ["whatsapp", "sms"]
    assert planning.person_order(["sms", "sms"], {"sms"}) == ["sms"]
    assert planning.person_order(None, {"sms"}) == []


def test_reachable_on_needs_an_address_in_the_channels_attribute():
    addresses = {"sms": "phone", "telegram": "telegram_chat_id", "whatsapp": "phone"}
    row = {"phone": "+6281299000001", "telegram_chat_id": None}
    assert planning.reachable_on(row, addresses) == {"sms", "whatsapp"}


def test_only_the_preferred_channel_is_planned_unless_the_person_asked_for_all():
    assert planning.choose_channels(["telegram", "sms"], all_channels=False, room={}) == ["telegram"]
    assert planning.choose_channels(["telegram", "sms"], all_channels=True, room={}) == ["telegram", "sms"]
    assert planning.choose_channels([], all_channels=False, room={}) == []


def test_a_paced_channel_takes_only_the_people_it_can_reach_by_the_deadline():
    # WhatsApp's sender sends 8 per second (10/s less the window margin): 30 s of it, at the paced batches' pace
    # (PACING_SLACK), is 192 people.
    room = planning.send_room({"whatsapp": 8.0, "telegram": 24.0, "sms": 1600.0}, 30)
    assert room == {"whatsapp": 192, "telegram": 576, "sms": 38400}
    room = {"whatsapp": 2, "telegram": 1}
    chosen = [planning.choose_channels(["whatsapp", "telegram", "sms"], all_channels=False, room=room) for _ in range(5)]
    assert chosen == [["whatsapp"], ["whatsapp"], ["telegram"], ["sms"], ["sms"]]
    assert room == {"whatsapp": 0, "telegram": 0}
    # With no channel left with room, the preferred one (late beats never); asking for all ignores the room.
    assert planning.choose_channels(["whatsapp", "telegram"], all_channels=False, room=room) == ["whatsapp"]
    assert planning.choose_channels(["whatsapp", "sms"], all_channels=True, room=room) == ["whatsapp", "sms"]
    assert planning.send_room({"whatsapp": 8.0}, 0) == {}  # no deadline: no room limits
    assert planning.send_room({"x": 0.01}, 30) == {"x": 1}


def test_a_slow_channels_batches_hold_a_worker_for_seconds():
    assert planning.paced_batch(8.0, 500) == 16
    assert planning.paced_batch(24.0, 100) == 48
    assert planning.paced_batch(1600.0, 500) == 500
    assert planning.paced_batch(0.2, 500) == 1


def test_a_row_has_a_fallback_only_before_the_last_channel_and_never_for_all():
    order = ["whatsapp", "telegram", "sms"]
    assert planning.has_fallback(order, "whatsapp", all_channels=False)
    assert planning.has_fallback(order, "telegram", all_channels=False)
    assert not planning.has_fallback(order, "sms", all_channels=False)
    assert not planning.has_fallback(order, "whatsapp", all_channels=True)
    assert not planning.has_fallback(order, "x", all_channels=False)


def test_next_channel_after_a_failure_walks_the_order_once():
    order = ["whatsapp", "telegram", "sms"]
    assert planning.next_channel(order, [(1, "whatsapp", "failed")], due_id=1) == "telegram"
    assert planning.next_channel(order, [(1, "whatsapp", "sent")], due_id=1) == "telegram"  # not delivered in time
    rows = [(1, "whatsapp", "undelivered"), (5, "telegram", "failed")]
    assert planning.next_channel(order, rows, due_id=5) == "sms"
    rows = [(1, "whatsapp", "failed"), (5, "telegram", "failed"), (9, "sms", "failed")]
    assert planning.next_channel(order, rows, due_id=9) is None  # nothing left to try


def test_no_next_channel_once_reached_or_while_another_row_decides():
    order = ["whatsapp", "sms"]
    assert planning.next_channel(order, [(1, "whatsapp", "delivered")], due_id=1) is None
    # a late receipt on the first channel stops the walk
    assert planning.next_channel(["whatsapp", "telegram", "sms"], [(1, "whatsapp", "delivered"), (5, "telegram", "failed")], due_id=5) is None
    # the row looked at is not the person's latest: the later one decides
    assert planning.next_channel(order, [(1, "whatsapp", "sent"), (5, "sms", "pending")], due_id=1) is None
    # still under way
    assert planning.next_channel(order, [(1, "whatsapp", "pending")], due_id=1) is None
    assert planning.next_channel(order, [], due_id=1) is None
