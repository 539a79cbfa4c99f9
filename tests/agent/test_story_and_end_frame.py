"""A story ends on its last picture (#12 §4), so the chat refuses a loop or an end picture on one (#12 §1), and
story pictures uploaded to a looping plan turn the loop off (undo brings it back)."""

from __future__ import annotations

from agent.end_and_batch import STORY_ENDS_NOTE
from agent.session import new_conversation, plan_turn

KEYS = tuple(c * 64 for c in "abc")


def test_a_story_refuses_a_loop_and_an_end_picture_with_a_note():
    state = new_conversation().with_story_pictures(KEYS).with_end_upload("e" * 64, "end.png")
    state, _ = plan_turn(state, "animate the hair")
    for message in ("make it loop", "end on this picture"):
        after, reply = plan_turn(state, message)
        assert after.plan.story_images == KEYS and not after.plan.loop and after.plan.end_image is None
        assert STORY_ENDS_NOTE in reply.notes
    after, reply = plan_turn(state, "give me 3 variations")  # variations of a story are fine
    assert after.plan.variations == 3 and after.plan.story_images == KEYS


def test_story_pictures_turn_a_loop_off_and_undo_brings_it_back():
    state, _ = plan_turn(new_conversation(), "animate the hair, make it loop, 12 seconds")
    assert state.plan.loop and state.plan.segment_count == 3
    story = state.with_story_pictures(KEYS[:2])
    assert not story.plan.loop and story.plan.story_images == KEYS[:2]
    back, _ = plan_turn(story, "undo")
    assert back.plan.loop and back.plan.story_images == ()
