"""How the clip is filmed, as words: camera moves and their phrases, the words that name the camera, light and
atmosphere (a new time-of-day light replaces the old one). Plain literals, like agent.vocabulary."""

from __future__ import annotations

import re

# --- camera ---------------------------------------------------------------------------------------
# (regex, move, needs_camera_word): ambiguous phrases ("rise", "move in") only count when the clause
# names the camera or names no moving subject.
CAMERA_PATTERNS: tuple[tuple[str, str, bool], ...] = (
    (r"\b(?:static|still|fixed|locked|locked[- ]off|steady|stationary|frozen|stable)\s+(?:camera|shot|frame)\b", "static", False),
    (r"\bcamera\s+(?:is\s+|stays\s+|remains\s+|should\s+(?:stay|be|remain)\s+)?(?:static|still|fixed|locked|steady|stationary|frozen)\b", "static", False),
    (r"\btripod\b|\bno\s+camera\s+(?:movement|motion|move|moves)\b|\blocked[- ]off\b", "static", False),
    (r"\b(?:zoom(?:s|ing)?|push(?:es|ing)?|close[sd]?|closing)\s+(?:in|into|closer)\b|\bpush[- ]in\b|\bzoom[- ]in\b", "zoom_in", False),
    (r"\b(?:move|moves|moving|get|gets|getting|come|comes|go|goes)\s+(?:in\s+)?closer\b", "zoom_in", True),
    (r"\b(?:move|moves|moving)\s+in\b", "zoom_in", True),
    (r"\bzoom(?:s|ing)?\s+(?:out|away)\b|\bzoom[- ]out\b|\bwiden(?:s|ing)?\b|\bwide reveal\b", "zoom_out", False),
    (r"\b(?:pull(?:s|ing)?|draw(?:s|ing)?)\s+(?:back|out|away)\b|\bpull[- ]back\b", "dolly_out", False),
    (r"\bdolly(?:ing)?\s+(?:in|forward|forwards|closer)\b|\btrack(?:s|ing)?\s+(?:in|forward)\b|\bfly(?:ing)?\s+in\b|\bdolly[- ]in\b", "dolly_in", False),
    (r"\b(?:move|moves|moving|push(?:es|ing)?|drift(?:s|ing)?|glide[sd]?|gliding)\s+forwards?\b", "dolly_in", True),
    (r"\bdolly(?:ing)?\s+(?:out|back|backward|backwards|away)\b|\btrack(?:s|ing)?\s+(?:out|back)\b|\bdolly[- ]out\b", "dolly_out", False),
    (r"\b(?:move|moves|moving)\s+(?:back|backward|backwards|away)\b", "dolly_out", True),
    (r"\bpan(?:s|ning|ned)?\s+(?:across\s+|over\s+|slowly\s+|gently\s+)?(?:to\s+the\s+)?left\b|\bleft\s+pan\b|\bpan[- ]left\b", "pan_left", False),
    (r"\bpan(?:s|ning|ned)?\s+(?:across\s+|over\s+|slowly\s+|gently\s+)?(?:to\s+the\s+)?right\b|\bright\s+pan\b|\bpan[- ]right\b", "pan_right", False),
    (r"\b(?:camera|cam)\s+(?:moves?\s+|goes\s+|drifts?\s+|slides?\s+)?(?:to\s+the\s+|towards?\s+the\s+)?left\b", "pan_left", False),
    (r"\b(?:camera|cam)\s+(?:moves?\s+|goes\s+|drifts?\s+|slides?\s+)?(?:to\s+the\s+|towards?\s+the\s+)?right\b", "pan_right", False),
    (r"\btruck(?:s|ing)?\s+left\b", "pan_left", False),
    (r"\btruck(?:s|ing)?\s+right\b", "pan_right", False),
    (r"\btilt(?:s|ing|ed)?\s+(?:the\s+camera\s+)?up(?:ward|wards)?\b|\bcrane(?:s|ing)?\s+up\b|\bboom(?:s|ing)?\s+up\b|\bpedestal\s+up\b", "tilt_up", False),
    (r"\b(?:rise|rises|rising|ascend|ascends|ascending|lift|lifts|lifting)\b", "tilt_up", True),
    (r"\btilt(?:s|ing|ed)?\s+(?:the\s+camera\s+)?down(?:ward|wards)?\b|\bcrane(?:s|ing)?\s+down\b|\bboom(?:s|ing)?\s+down\b|\bpedestal\s+down\b", "tilt_down", False),
    (r"\b(?:descend|descends|descending|sink|sinks|sinking|lower|lowers|lowering)\b", "tilt_down", True),
    (r"\b(?:orbit(?:s|ing)?|circl(?:e|es|ing)|arc(?:s|ing)?)\s+(?:around\s+)?(?:to\s+the\s+)?left\b|\bcounter[- ]?clockwise\b|\banti[- ]?clockwise\b", "orbit_left", False),
    (r"\b(?:rotat(?:e|es|ing)|go(?:es|ing)?|mov(?:e|es|ing)|swing(?:s|ing)?)\s+around\s+(?:to\s+the\s+)?left\b", "orbit_left", True),
    (r"\b(?:orbit(?:s|ing)?|circl(?:e|es|ing)|arc(?:s|ing)?)\s+(?:around\s+)?(?:to\s+the\s+)?right\b|\bclockwise\b", "orbit_right", False),
    (r"\borbit(?:s|ing|al)?\b|\b360\b|\bturntable\b", "orbit_right", False),
    (r"\bcircl(?:e|es|ing)\s+(?:around|round)\b|\barc(?:s|ing)?\s+around\b", "orbit_right", False),
    (r"\bgo(?:es|ing)?\s+(?:all\s+the\s+way\s+)?around\b", "orbit_right", True),
    (r"\bpan(?:s|ning|ned)?\b(?!\s+(?:to\s+the\s+)?(?:left|right))", "pan_right", False),
    (r"\bzoom(?:s|ing)?\b(?!\s+(?:out|away))", "zoom_in", False),
    (r"\btilt(?:s|ing)?\b", "tilt_up", True),
    (r"\bdolly(?:ing)?\b", "dolly_in", False),
)
CAMERA_WORDS = ("camera", "shot", "cam", "lens", "view", "framing")
# Words that say a camera move or its absence; with CAMERA_WORDS they ground an LLM's camera edit.
CAMERA_MOVE_WORDS = ("zoom", "pan", "tilt", "orbit", "dolly", "push", "pull", "circle", "rotate", "track", "crane",
                     "rise", "still", "static", "steady")
# A camera word plus a comparative without a move ("slower camera", "zoom faster") scales the pace.
CAMERA_FAMILY: dict[str, tuple[str, ...]] = {
    "zoom": ("zoom_in", "zoom_out"), "push": ("zoom_in", "dolly_in"), "pan": ("pan_left", "pan_right"),
    "tilt": ("tilt_up", "tilt_down"), "orbit": ("orbit_left", "orbit_right"), "dolly": ("dolly_in", "dolly_out"),
    "circle": ("orbit_left", "orbit_right"), "rotation": ("orbit_left", "orbit_right"),
}
CAMERA_STOP = re.compile(
    r"\b(?:no|stop(?:\s+the)?|without(?:\s+the|\s+any)?|remove(?:\s+the)?|kill(?:\s+the)?|don't|do not|not)\s+"
    r"(?:camera(?:\s+(?:movement|motion|move|moves))?|zoom(?:ing)?|pan(?:ning)?|orbit(?:ing)?|dolly|tilt(?:ing)?|"
    r"push[- ]in|move\s+the\s+camera)\b"
    r"|\bkeep\s+(?:the\s+)?camera\s+(?:still|static|steady|fixed|locked)\b"
    r"|\bcamera\s+(?:should\s+)?(?:not|doesn't|does not|shouldn't)\s+move\b"
)

# --- atmosphere -----------------------------------------------------------------------------------
# phrase -> atmosphere item (as stored in the plan)
ATMOSPHERE_SYNONYMS: dict[str, str] = {
    "wind": "wind", "windy": "wind", "breeze": "wind", "breezy": "wind", "gust": "wind", "gusts": "wind",
    "gusty": "wind", "in the wind": "wind", "draft of air": "wind",
    "fog": "fog", "foggy": "fog", "mist": "fog", "misty": "fog", "haze": "fog", "hazy": "fog",
    "golden hour": "golden hour light", "golden-hour": "golden hour light", "golden light": "golden hour light",
    "warm light": "warm light", "sunset": "sunset glow", "dusk": "dusk light", "sunrise": "sunrise light",
    "dawn": "sunrise light", "moonlight": "moonlight", "moonlit": "moonlight", "night": "night",
    "neon": "neon glow", "neon lights": "neon glow", "candlelight": "candlelight",
    "studio light": "studio lighting", "studio lighting": "studio lighting",
    "soft light": "soft light", "soft lighting": "soft light", "dramatic lighting": "dramatic lighting",
    "dramatic light": "dramatic lighting", "rim light": "rim light", "backlight": "backlight",
    "backlit": "backlight", "cinematic lighting": "cinematic lighting", "volumetric light": "volumetric light",
    "god rays": "volumetric light", "rainy": "rain", "in the rain": "rain", "raining": "rain",
    "snowy": "snow", "snowing": "snow", "in the snow": "snow", "storm": "storm", "stormy": "storm", "thunderstorm": "storm",
    "overcast": "overcast light", "bokeh": "bokeh", "lens flare": "lens flare", "smoky": "haze",
    "dreamy": "dreamy glow", "vintage": "vintage film grain", "film grain": "film grain", "grainy": "film grain",
    "shallow depth of field": "shallow depth of field", "depth of field": "shallow depth of field",
    "blue hour": "blue hour light",
}

# A time of day or a light of the sky: a new one replaces the one there ("change the sky to sunset").
TIME_OF_DAY_LIGHTS = ("golden hour light", "sunset glow", "dusk light", "sunrise light", "moonlight", "night",
                      "blue hour light", "overcast light")
