"""The studio's chat input stops at the planner's message limit (agent.MAX_MESSAGE_CHARS)."""

from __future__ import annotations

from agent import MAX_MESSAGE_CHARS


def test_the_chat_input_allows_at_most_the_message_limit(app):
    assert app.chat_input[0].proto.max_chars == MAX_MESSAGE_CHARS == 4000
