"""The words that point at a template, as data: weighted cues (subjects, style words, framing and camera words),
the templates' names, the phrases that switch a template, and what says the hands are in view.

A prompt is scored as a whole (agent.rules.template_choice): every cue adds its weight to its template, so
"a cel-shaded girl with a sword" is animation (a style word outweighs a person), "close-up of a woman's face,
eyelashes fluttering" is fashion (framing and face details outweigh the person) and "360-degree rotation of
the watch" is a product shot.
"""

from __future__ import annotations

import re

from agent import vocabulary as V

# cue -> (template, weight); the heaviest total wins, the earliest mention breaks ties.
TEMPLATE_CUES: dict[str, tuple[str, int]] = {}


def _cues(template: str, weight: int, words: str | tuple[str, ...]) -> None:
    for w in words.split(",") if isinstance(words, str) else words:
        w = w.strip()
        if w:
            TEMPLATE_CUES[w] = (template, weight)


# Style words: the drawing style is what the animation template keeps, so it outweighs what is drawn.
STYLE_WEIGHT = 6
# A thing in the scene that is not one of the canonical subjects ("a flag", "a windmill") hints at a scene.
GENERIC_WEIGHT = 2

_cues("fashion", 4, "headshot, head shot, model, fashion, beauty shot, beauty, editorial, makeup, make-up, "
      "runway, magazine, close-up portrait, closeup portrait, face close-up, beauty close-up, facial only, "
      "face only, glamour, vogue, cover shot, modeling, beauty campaign, eyeshadow, eyeliner, mascara")
_cues("fashion", 2, "close-up, closeup, close up, tight close-up, extreme close-up, tight shot, macro portrait")
_cues("fashion", 1, "hair, locks, strands, lips, cheekbones, earrings, eyelashes, lashes, freckles, skin, chin, "
      "jawline, complexion")
_cues("portrait_subtle", 3, "portrait, person, woman, man, girl, boy, lady, guy, grandma, grandpa, grandmother, "
      "grandfather, mother, father, mom, dad, child, kid, baby, old photo, old photograph, family photo, "
      "selfie, profile picture, passport photo, couple, bride, groom, friend, teenager, student, soldier, "
      "elderly, old woman, old man, toddler, husband, wife, son, daughter, sister, brother, uncle, aunt")
_cues("portrait_subtle", 2, "photograph, vintage photo, black and white photo, sepia, polaroid, passport-style")
_cues("portrait_subtle", 1, "smile, smiles, smiling, blink, blinks, blinking, breathing, breathe, breathes, "
      "wink, winks, nod, nods, eyes, gaze, face")
_cues("portrait_dynamic", 2, "full body, full-body, medium shot, waist up, upper body, half body")
_cues("portrait_dynamic", 1, "wave hello, waves hello, waving, waves, wave, gesture, gestures, gesturing, "
      "dancing, dances, clapping, claps, points, pointing, adjusts, tucks, thumbs up, crosses, straightens")
_cues("animals", 4, tuple(w for w, s in V.SUBJECT_SYNONYMS.items() if s == "animal" and w not in V.GENERIC_OBJECTS)
      + ("wildlife", "fins", "paws", "snout", "beak", "hooves", "antlers"))
_cues("animals", 1, "tail, whiskers, wings, feathers, wag, wags, wagging, ears, mane, fur")
_cues("landscape", 3, "mountain, mountains, ocean, sea, beach, lake, river, waterfall, forest, city, skyline, "
      "cityscape, landscape, valley, desert, meadow, field, countryside, coast, shore, island, canyon, "
      "scenery, vista, sunset over, horizon, jungle, glacier, volcano, street, town, village, harbor, harbour, "
      "lagoon, hills, nature, dunes, cliffs, peaks, fjord, savanna, tundra, rainforest, northern lights, "
      "aurora, milky way, drone shot, aerial shot, aerial view, establishing shot, wide shot, time-lapse, timelapse, "
      "lighthouse, bridge, castle, temple, skyscraper, pier, road, highway, farm, vineyard, cave, reef, bay")
_cues("landscape", 2, "park, garden, light shafts, god rays, sunbeams, fog, mist, autumn leaves, pond, market, tower")
_cues("landscape", 1, "clouds, sky, trees, water, waves, grass, snow, rain, leaves, stream, campfire, "
      "fire, bonfire, smoke, candle, fireplace")
_cues("animation", STYLE_WEIGHT, "anime, cartoon, manga, illustration, illustrated, drawing, drawn, hand-drawn, "
      "painted character, chibi, pixar, 3d render, 3d animated, cel-shaded, cel shaded, comic, comic book, animated, "
      "animation, ghibli, disney, sketch, character art, game character, vtuber, pixel art, low-poly, low poly, "
      "claymation, toon, kawaii, storybook, 2d character, webtoon, cartoonish, stylized character")
_cues("product", 4, "sneaker, sneakers, shoe, shoes, bottle, watch, perfume, phone, smartphone, product, "
      "cosmetics, lipstick, handbag, jewelry, jewellery, ring, headphones, coffee cup, mug, packshot, "
      "product shot, commercial, advert, advertisement, e-commerce, ecommerce, packaging, gadget, bracelet, "
      "necklace, cream jar, skincare, earbuds, sunglasses, soda, soda can, can of, laptop, wallet, backpack, "
      "serum, lotion, running shoe, 360-degree, 360 degree, turntable, product photography, pedestal, showcase")
_cues("abstract", 4, "kaleidoscope, abstract, fractal, psychedelic, generative, geometric, pattern, patterns, "
      "texture, ink in water, liquid art, particles only, only particles, mandala, trippy, hypnotic, "
      "holographic, vaporwave, paint strokes, brush strokes, brushstrokes, ink drops, liquid marble")
_cues("abstract", 3, "shapes, gradient, gradients, nebula, spiral, light trails, ink")
_cues("abstract", 2, "lines, forms, iridescent, fluid, liquid, canvas, colors mixing, colours mixing")
_cues("abstract", 1, "swirling, swirl, swirls, particles, morphing, colors, colours, dissolving, merging")
# A thing outside the canonical subjects hints at its scene: a creature at the animals, the rest at a landscape.
for _noun, (_subject, _) in V.GENERIC_OBJECTS.items():
    TEMPLATE_CUES.setdefault(_noun, ("animals", 4) if _subject == "animal" else ("landscape", GENERIC_WEIGHT))

# explicit names of templates, for "switch to the product template", "make it anime style"
TEMPLATE_NAMES: dict[str, str] = {
    "fashion": "fashion", "facial": "fashion", "facial only": "fashion", "headshot": "fashion",
    "beauty": "fashion", "editorial": "fashion",
    "portrait subtle": "portrait_subtle", "subtle portrait": "portrait_subtle", "portrait_subtle": "portrait_subtle",
    "portrait": "portrait_subtle", "living portrait": "portrait_subtle", "living photo": "portrait_subtle",
    "portrait dynamic": "portrait_dynamic", "dynamic portrait": "portrait_dynamic",
    "portrait_dynamic": "portrait_dynamic", "gestures": "portrait_dynamic",
    "animals": "animals", "animal": "animals", "pet": "animals", "pets": "animals", "wildlife": "animals",
    "landscape": "landscape", "scenery": "landscape", "nature": "landscape", "cityscape": "landscape",
    "animation": "animation", "anime": "animation", "cartoon": "animation", "illustration": "animation",
    "product": "product", "product shot": "product", "showcase": "product", "commercial": "product",
    "abstract": "abstract", "artistic": "abstract",
}
# Words that name a category besides its strong cues and its names (they join TEMPLATE_WORDS).
TEMPLATE_HINTS: dict[str, tuple[str, ...]] = {
    "portrait_subtle": ("subtle", "photo"), "portrait_dynamic": ("dynamic", "gesture", "hands", "dance"),
    "abstract": ("swirl", "particles"),
}


def _template_words(template: str) -> tuple[str, ...]:
    words = [c for c, (t, weight) in TEMPLATE_CUES.items() if t == template and weight >= 3]
    words += [n for n, t in TEMPLATE_NAMES.items() if t == template]
    words += TEMPLATE_HINTS.get(template, ())
    return tuple(dict.fromkeys(w for w in words if re.fullmatch(r"[a-z0-9']+", w)))


# template -> the single words that name it: its strong cues (weight 3 and up), its names and its hints.
# An LLM's template switch is kept only when the message says one of them.
TEMPLATE_WORDS: dict[str, tuple[str, ...]] = {
    t: _template_words(t) for t in dict.fromkeys(t for t, _ in TEMPLATE_CUES.values())
}


TEMPLATE_SWITCH = re.compile(
    r"\b(?:switch(?:\s+(?:it|this))?\s+to|change(?:\s+(?:it|this|the template))?\s+to|use(?:\s+the)?|"
    r"make\s+(?:it|this)(?:\s+an?)?|turn\s+(?:it|this)\s+into(?:\s+an?)?|treat\s+(?:it|this)\s+as(?:\s+an?)?|"
    r"it'?s(?:\s+actually)?(?:\s+an?)?|it\s+is(?:\s+actually)?(?:\s+an?)?|this\s+is(?:\s+actually)?(?:\s+an?)?|"
    r"actually(?:\s+an?)?|as\s+an?|go\s+with(?:\s+the)?|try(?:\s+the)?)\s+(.+)"
)
TEMPLATE_SWITCH_TAIL = re.compile(r"\b(?:template|style|mode|category|preset|shot|photo|picture|image|video|one)\b")

# "her hands are visible": said outright, this allows gestures (portrait_dynamic) for the whole conversation.
HANDS_IN_VIEW = re.compile(
    r"\b(?:hands?|arms?)\s+(?:are\s+|is\s+)?(?:clearly\s+|fully\s+)?(?:visible|in\s+(?:the\s+)?(?:view|frame|shot|picture|photo|image))\b"
    r"|\b(?:can|could)\s+see\s+(?:her|his|their|the)\s+(?:hands?|arms?)\b"
    r"|\b(?:hands?|arms?)\s+(?:can\s+be|are)\s+seen\b"
    r"|\bvisible\s+(?:hands?|arms?)\b"
    r"|\b(?:hands?|arms?)\s+(?:showing|shown)\b"
    r"|\b(?:hands?|arms?)\s+(?:up|raised)\s+in\s+(?:the\s+)?(?:frame|shot|picture|photo|image)\b"
)
# A first message (a prompt) that describes the hands doing something ("raises her hand", "with his index
# finger", "claps his hands") shows them in the picture. Not: "no hands", "hands still", "hand-drawn",
# "clock hands".
HAND_WORDS = ("hand", "hands", "finger", "fingers", "fingertips", "thumb", "thumbs", "fist", "fists", "palm",
              "palms", "arm", "arms")
_HAND_NOUN = re.compile(r"(?<![\w-])(?:" + "|".join(HAND_WORDS) + r")(?![\w-])")
_HAND_NEGATED_BEFORE = re.compile(r"(?:\b(?:no|without|not|never|hide|hidden|clock|second)\s+"
                                  r"(?:\w+\s+){0,2}|\bon\s+the\s+(?:other\s+)?)$")
_HAND_NEGATED_AFTER = re.compile(r"^\s+(?:(?:are|is|stay|stays|remain|remains|kept|should\s+(?:stay|be))\s+)?"
                                 r"(?:still|hidden|out\s+of|not|off|invisible|behind|cropped|drawn|made|painted|"
                                 r"crafted|movement|motion|gestures?\s+(?:off|banned))\b")


def says_hands_in_view(text: str) -> bool:
    """True when the text says the hands (or arms) are visible in the picture."""
    return bool(HANDS_IN_VIEW.search(V.normalize(text)))


def hand_mentions(text: str) -> list[re.Match[str]]:
    """The hand words of a normalised text that describe hands in the picture (not "no hands", "hand-drawn")."""
    return [m for m in _HAND_NOUN.finditer(text)
            if not _HAND_NEGATED_BEFORE.search(text[max(0, m.start() - 30):m.start()])
            and not _HAND_NEGATED_AFTER.match(text[m.end():m.end() + 40])]


def describes_hands(text: str) -> bool:
    """True when a prompt describes the hands themselves (so they are in the picture), not their absence."""
    return bool(hand_mentions(V.normalize(text)))
