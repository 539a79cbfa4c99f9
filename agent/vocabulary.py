"""The words the planners know, as data: subjects, actions, degrees, numbers, durations, seeds, session words
and negations (camera moves, light and atmosphere are in agent.camera_words; the words that point at a
template in agent.template_words). The rule planner matches them (agent.rules); the LLM planner
keeps only the edits whose target a message names in these words (agent.llm.grounding).

Everything here is plain literals (no logic beyond building lookup tables once at import), so the
vocabulary can be read, extended and tested on its own. Phrases are lower case; the planner
normalises a message the same way (see `normalize`) before matching whole words.
"""

from __future__ import annotations

import re

# --- subjects -------------------------------------------------------------------------------------
# synonym -> canonical subject of the MotionPlan contract
SUBJECT_SYNONYMS: dict[str, str] = {
    # hair
    "hair": "hair", "locks": "hair", "strands": "hair", "strand": "hair", "curls": "hair", "ponytail": "hair",
    "braid": "hair", "braids": "hair", "bangs": "hair", "fringe": "hair", "mane": "hair", "fur": "hair",
    # head / face / eyes / mouth
    "head": "head", "neck": "head", "face": "face", "expression": "face", "cheeks": "face", "eyebrows": "face",
    "eyes": "eyes", "eye": "eyes", "eyelids": "eyes", "gaze": "eyes", "lashes": "eyes", "eyelashes": "eyes",
    "mouth": "mouth", "lips": "mouth", "lip": "mouth", "smile": "mouth", "teeth": "mouth",
    # hands and arms (arms are never animated on their own: they go with the hands)
    "hands": "hands", "hand": "hands", "fingers": "hands", "finger": "hands", "arms": "hands", "arm": "hands",
    "gesture": "hands", "gestures": "hands", "wrist": "hands", "wrists": "hands",
    # body
    "body": "body", "shoulders": "body", "shoulder": "body", "chest": "body", "torso": "body", "posture": "body",
    # clothing
    "clothing": "clothing", "clothes": "clothing", "dress": "clothing", "scarf": "clothing", "cape": "clothing",
    "skirt": "clothing", "shirt": "clothing", "jacket": "clothing", "coat": "clothing", "veil": "clothing",
    "gown": "clothing", "sleeves": "clothing", "collar": "clothing", "fabric": "clothing", "cloak": "clothing",
    "ribbon": "clothing", "ribbons": "clothing", "robe": "clothing", "hood": "clothing", "outfit": "clothing",
    # animals
    "animal": "animal", "dog": "animal", "puppy": "animal", "pup": "animal", "doggo": "animal", "cat": "animal",
    "kitten": "animal", "kitty": "animal", "horse": "animal", "pony": "animal", "bird": "animal",
    "parrot": "animal", "owl": "animal", "fox": "animal", "rabbit": "animal", "bunny": "animal",
    "hamster": "animal", "lion": "animal", "tiger": "animal", "bear": "animal", "deer": "animal",
    "wolf": "animal", "elephant": "animal", "pet": "animal", "squirrel": "animal", "cow": "animal",
    "sheep": "animal", "goat": "animal", "duck": "animal", "eagle": "animal", "fish": "animal",
    "monkey": "animal", "panda": "animal", "giraffe": "animal", "penguin": "animal", "dolphin": "animal",
    "retriever": "animal", "labrador": "animal", "poodle": "animal", "corgi": "animal", "husky": "animal",
    "terrier": "animal", "bulldog": "animal", "beagle": "animal", "dachshund": "animal", "chihuahua": "animal",
    "shepherd": "animal", "tabby": "animal", "cats": "animal", "dogs": "animal", "birds": "animal",
    "horses": "animal", "kittens": "animal", "puppies": "animal", "hummingbird": "animal", "swan": "animal",
    "butterfly": "animal", "koala": "animal", "otter": "animal", "seal": "animal", "turtle": "animal",
    "cheetah": "animal", "leopard": "animal", "zebra": "animal", "camel": "animal", "flamingo": "animal",
    "peacock": "animal", "chicken": "animal", "rooster": "animal", "hen": "animal", "pig": "animal",
    "hedgehog": "animal", "raccoon": "animal", "alpaca": "animal", "llama": "animal", "kangaroo": "animal",
    "sloth": "animal", "gorilla": "animal", "crow": "animal", "raven": "animal", "sparrow": "animal",
    "pigeon": "animal", "seagull": "animal", "gecko": "animal", "ferret": "animal", "calf": "animal",
    "lamb": "animal", "foal": "animal", "cub": "animal", "kitties": "animal", "bunnies": "animal",
    "tail": "tail", "ears": "ears", "ear": "ears", "whiskers": "ears",
    "wings": "wings", "wing": "wings", "feathers": "wings",
    # nature
    "water": "water", "sea": "water", "ocean": "water", "river": "water", "stream": "water",
    "waterfall": "water", "lake": "water", "waves": "water", "surf": "water", "creek": "water",
    "fountain": "water", "ripples": "water", "tide": "water", "pond": "water",
    "clouds": "clouds", "cloud": "clouds", "sky": "sky", "stars": "sky", "aurora": "sky",
    "trees": "trees", "tree": "trees", "leaves": "trees", "leaf": "trees", "branches": "trees",
    "branch": "trees", "forest": "trees", "palm trees": "trees", "palms": "trees", "foliage": "trees",
    "grass": "grass", "wheat": "grass", "reeds": "grass", "field": "grass", "meadow": "grass",
    "flowers": "flowers", "flower": "flowers", "petals": "flowers", "blossoms": "flowers", "roses": "flowers",
    "fire": "fire", "flames": "fire", "flame": "fire", "candle": "fire", "campfire": "fire", "embers": "fire",
    "smoke": "smoke", "steam": "smoke", "vapor": "smoke", "vapour": "smoke",
    "snow": "snow", "snowflakes": "snow", "snowfall": "snow",
    "rain": "rain", "raindrops": "rain", "drizzle": "rain",
    "particles": "particles", "sparkles": "particles", "glitter": "particles", "dust": "particles",
    "bubbles": "particles", "fireflies": "particles", "confetti": "particles", "stardust": "particles",
    "the light": "light", "lights": "light", "lighting": "light", "reflections": "light", "reflection": "light",
    "highlights": "light", "glow": "light", "shadows": "light", "sunlight": "light", "sunbeams": "light",
    "product": "product", "bottle": "product", "sneaker": "product", "sneakers": "product", "shoe": "product",
    "shoes": "product", "watch": "product", "perfume": "product", "phone": "product", "smartphone": "product",
    "lipstick": "product", "handbag": "product", "bag": "product", "ring": "product",
    "headphones": "product", "mug": "product", "cup": "product", "jar": "product", "box": "product",
    "earbuds": "product", "sunglasses": "product", "soda": "product", "soda can": "product", "laptop": "product",
    "tablet": "product", "wallet": "product", "backpack": "product", "necklace": "product",
    "bracelet": "product", "serum": "product", "lotion": "product", "cosmetics": "product",
    "background": "background", "backdrop": "background", "scenery": "background", "cars": "background",
    "traffic": "background", "crowd": "background", "people": "background", "city lights": "background",
}

# Things outside the canonical subjects ("the flag", "the jellyfish"): the canonical subject that carries their
# motion and a generic action for them. Their motion names them ("the flag ripples"), so the prompt says what
# actually moves; a verb said with them stays theirs ("the flag waves" is never a hand wave).
GENERIC_OBJECTS: dict[str, tuple[str, str]] = {}


def _generic(subject: str, action: str, nouns: str) -> None:
    for noun in nouns.split(","):
        GENERIC_OBJECTS[noun.strip()] = (subject, action)


_generic("clothing", "ripple", "flag, flags, banner, banners, curtain, curtains, sail, sails, kite, tent, laundry, "
         "tablecloth, drapes, streamers, bunting, tapestry")
_generic("clothing", "sway", "earrings, necklace chain, tassels, wind chimes, chimes")
_generic("fire", "flicker", "candle flame, torch, torches, fireplace, bonfire, lantern flame")
_generic("light", "glow", "lantern, lanterns, lamp, lamps, neon sign, neon signs, street lights, fairy lights")
_generic("particles", "burst", "fireworks, firework")
_generic("particles", "fly", "sparks")
_generic("particles", "float", "balloon, balloons, lanterns in the sky, feathers in the air")
_generic("sky", "shimmer", "northern lights, aurora borealis")
_generic("sky", "flash", "lightning")
_generic("sky", "glow", "moon, full moon")
_generic("animal", "pulse", "jellyfish")
_generic("animal", "swim", "goldfish, koi, shark, whale, octopus, fish tank, seahorse, manta ray, stingray")
_generic("animal", "hop", "frog, frogs, toad, grasshopper")
_generic("animal", "slither", "snake, lizard, chameleon, iguana")
_generic("animal", "flutter", "moth, dragonfly, ladybug, bee, bees")
_generic("animal", "crawl", "crab, snail, spider, ant, ants, caterpillar")
_generic("background", "turn", "windmill, windmill blades, windmill's blades, blades, fan, ceiling fan, "
         "propeller, wheel, ferris wheel, carousel, wind turbine, turbine, gears, clock hands, vinyl")
_generic("background", "swing", "pendulum, hammock, chandelier")
_generic("background", "move past", "car, train, tram, bus, bicycle, boat, ship, sailboat, ferry, plane, "
         "airplane, hot air balloon")
_generic("background", "turn", "pages, book pages")
_generic("trees", "sway", "vines, ivy, bamboo, seaweed, kelp, willow, palm fronds, cactus")
_generic("flowers", "sway", "sunflowers, tulips, daisies, lavender, poppies, dandelion, dandelions, lilies")
_generic("water", "run down", "droplets, water droplets, condensation")
_generic("water", "bubble", "potion, lava, cauldron")
_generic("water", "spread", "ink")
for _noun, (_subject, _) in GENERIC_OBJECTS.items():
    SUBJECT_SYNONYMS.setdefault(_noun, _subject)

# Default action when a subject is named without a verb ("the scarf too").
DEFAULT_ACTIONS: dict[str, str] = {
    "hair": "flow", "head": "turn slightly", "face": "soften into a smile", "eyes": "blink",
    "mouth": "smile softly", "hands": "gesture", "body": "breathe", "clothing": "ripple",
    "animal": "look around", "tail": "wag", "ears": "twitch", "wings": "flap", "water": "flow",
    "clouds": "drift", "sky": "shift", "trees": "sway", "grass": "sway", "flowers": "sway",
    "fire": "flicker", "smoke": "rise", "snow": "fall", "rain": "fall", "particles": "drift",
    "light": "shimmer", "product": "rotate", "background": "shimmer",
}

# Removing these subjects ("no hand movement") also keeps them out of the picture: the term is added to
# the negative prompt. Other subjects ("keep the head still") only stop moving.
NEGATIVE_TERMS_ON_REMOVE: dict[str, str] = {"hands": "hands"}

# Words besides the synonyms that point at a subject (its verbs, word stems): an LLM's motion edit is kept
# when the message says one of them. "all" is every motion.
SUBJECT_HINTS: dict[str, tuple[str, ...]] = {
    "head": ("nod", "tilt"), "face": ("frown",), "eyes": ("blink", "wink", "look"), "mouth": ("talk", "speak"),
    "hands": ("wave", "waving"), "body": ("breath", "breathe", "breathing", "dance", "sway"),
    "clothing": ("cloth", "sleeve"), "tail": ("wag",), "wings": ("flap",), "water": ("wave", "ripple"),
    "flowers": ("petal", "blossom"), "smoke": ("mist",), "rain": ("raindrop",),
    "particles": ("particle", "sparkle", "ember"), "light": ("shine", "flicker", "sun"), "background": ("scene",),
    "all": ("everything", "motion", "movement", "overall", "whole"),
}

# --- actions --------------------------------------------------------------------------------------
# verb form -> (canonical action, subject when none is named)
ACTIONS: dict[str, tuple[str, str]] = {}


def _verb(forms: str, action: str, subject: str) -> None:
    for form in forms.split():
        ACTIONS[form.replace("_", " ")] = (action, subject)


_verb("flow flows flowing flowy", "flow", "hair")
_verb("blow blows blowing", "blow in the wind", "hair")
_verb("billow billows billowing", "billow", "clothing")
_verb("flutter flutters fluttering", "flutter", "clothing")
_verb("ripple ripples rippling", "ripple", "water")
_verb("sway sways swaying", "sway", "trees")
_verb("rustle rustles rustling", "rustle", "trees")
_verb("bend bends bending", "bend in the wind", "trees")
_verb("drift drifts drifting", "drift", "clouds")
_verb("move moves moving", "move", "body")
_verb("blink blinks blinking", "blink", "eyes")
_verb("wink winks winking", "wink", "eyes")
_verb("smile smiles smiling grin grins grinning", "smile", "mouth")
_verb("laugh laughs laughing", "laugh", "mouth")
_verb("talk talks talking speak speaks speaking", "talk", "mouth")
_verb("breathe breathes breathing", "breathe", "body")
_verb("nod nods nodding", "nod", "head")
_verb("tilt tilts tilting", "tilt", "head")
_verb("turn turns turning", "turn", "head")
_verb("look looks looking glance glances glancing", "look around", "head")
_verb("wave waving", "wave", "hands")
_verb("gesture gestures gesturing", "gesture", "hands")
_verb("clap claps clapping", "clap", "hands")
_verb("point points pointing", "point", "hands")
_verb("wag wags wagging", "wag", "tail")
_verb("twitch twitches twitching", "twitch", "ears")
_verb("perk perks perking", "perk up", "ears")
_verb("flap flaps flapping", "flap", "wings")
_verb("fly flies flying soar soars soaring", "fly", "animal")
_verb("flop flops flopping", "flop", "ears")
_verb("follow follows following", "follow the camera", "eyes")
_verb("roll rolls rolling", "roll in", "water")
_verb("lap laps lapping", "lap at the shore", "water")
_verb("sniff sniffs sniffing", "sniff the air", "animal")
_verb("purr purrs purring", "purr", "animal")
_verb("tremble trembles trembling quiver quivers quivering", "tremble", "trees")
_verb("scatter scatters scattering", "scatter", "particles")
_verb("run runs running walk walks walking trot trots trotting", "walk", "animal")
_verb("jump jumps jumping leap leaps leaping bounce bounces bouncing", "jump", "animal")
_verb("dance dances dancing", "dance", "body")
_verb("crash crashes crashing", "crash", "water")
_verb("splash splashes splashing", "splash", "water")
_verb("rush rushes rushing cascade cascades cascading pour pours pouring", "rush", "water")
_verb("flicker flickers flickering", "flicker", "fire")
_verb("burn burns burning", "burn", "fire")
_verb("rise rises rising curl curls curling", "rise", "smoke")
_verb("fall falls falling", "fall", "snow")
_verb("swirl swirls swirling", "swirl", "particles")
_verb("spin spins spinning rotate rotates rotating revolve revolves revolving", "rotate", "product")
_verb("sparkle sparkles sparkling glitter glitters glittering twinkle twinkles twinkling", "sparkle", "light")
_verb("shimmer shimmers shimmering", "shimmer", "light")
_verb("pulse pulses pulsing pulsate pulsates pulsating", "pulse", "light")
_verb("glow glows glowing", "glow", "light")
_verb("sweep sweeps sweeping", "sweep across", "light")
_verb("bloom blooms blooming open opens opening", "bloom", "flowers")
_verb("shake shakes shaking", "shake", "body")
_verb("shift shifts shifting", "shift", "light")
_verb("stream streams streaming", "stream", "clouds")
_verb("wiggle wiggles wiggling", "wiggle", "animal")
_verb("stretch stretches stretching", "stretch", "animal")
_verb("yawn yawns yawning", "yawn", "animal")
_verb("float floats floating", "float", "particles")
_verb("morph morphs morphing", "morph", "particles")
_verb("melt melts melting", "melt", "particles")
_verb("swim swims swimming", "swim", "animal")
_verb("hop hops hopping", "hop", "animal")
_verb("gallop gallops galloping", "gallop", "animal")
_verb("hover hovers hovering", "hover", "animal")
_verb("crawl crawls crawling slither slithers slithering", "crawl", "animal")
_verb("bob bobs bobbing", "bob", "water")
_verb("burst bursts bursting explode explodes exploding", "burst", "particles")
_verb("flash flashes flashing", "flash", "light")
_verb("bubbling boil boils boiling", "bubble", "water")
_verb("spread spreads spreading bleed bleeds bleeding", "spread", "water")
_verb("drip drips dripping", "drip", "water")

# A direction said after a verb becomes part of the action ("turn left", "look at the camera").
DIRECTIONS: tuple[str, ...] = (
    "to the left", "to the right", "left", "right", "up", "down", "around",
    "at the camera", "toward the camera", "towards the camera", "at the viewer", "away",
    "back and forth", "side to side", "in the wind", "in the breeze", "to look at the camera",
    "to face the camera", "toward the viewer", "towards the viewer", "into the distance",
)

# --- degrees and paces ------------------------------------------------------------------------------
MILD_WORDS = ("slightly", "a bit", "a little", "a little bit", "a touch", "somewhat", "a tad", "a little more",
              "a tiny bit", "tiny bit", "a teeny bit", "a wee bit",
              "bit", "little", "marginally")
STRONG_WORDS = ("much", "way", "a lot", "far", "really", "very", "super", "extremely", "lots", "loads",
                "significantly", "dramatically", "considerably")

# factor for "slower" / "faster" (and "less" / "more") by degree
SPEED_DOWN = {"mild": 0.8, "normal": 0.6, "strong": 0.35}
SPEED_UP = {"mild": 1.25, "normal": 1.6, "strong": 2.5}
INTENSITY_DOWN = {"mild": 0.8, "normal": 0.6, "strong": 0.4}
INTENSITY_UP = {"mild": 1.2, "normal": 1.5, "strong": 2.0}
# absolute pace for a newly described motion or camera move ("slow zoom in", "hair flows quickly")
SLOW_PACE = {"mild": 0.75, "normal": 0.5, "strong": 0.3}
FAST_PACE = {"mild": 1.3, "normal": 1.6, "strong": 2.2}
GENTLE_INTENSITY = {"mild": 0.4, "normal": 0.3, "strong": 0.15}
STRONG_INTENSITY = {"mild": 0.65, "normal": 0.8, "strong": 0.95}
# "a tiny bit of blinking", "a hint of wind in the hair": barely there, whatever the degree words
TINY_INTENSITY = {"mild": 0.15, "normal": 0.15, "strong": 0.15}
TINY_WORDS = ("a tiny bit of", "tiny bit of", "a little bit of", "a teeny bit of", "a wee bit of", "a touch of",
              "a hint of", "a smidge of", "a whisper of", "a trace of", "barely any", "the slightest", "just a hint of")

SLOWER_WORDS = ("slower", "more slowly", "slow down", "slow it down", "slow them down", "less fast",
                "lazier", "more leisurely", "decelerate")
FASTER_WORDS = ("faster", "quicker", "speed up", "speed it up", "more quickly", "hurry", "snappier",
                "more rapid", "more rapidly", "accelerate", "livelier pace")
SLOW_WORDS = ("slow", "slowly", "leisurely", "unhurried", "lazily", "lazy", "in slow motion", "slow motion",
              "slow-motion", "gradual", "gradually")
FAST_WORDS = ("fast", "quickly", "quick", "rapid", "rapidly", "swift", "swiftly", "briskly", "brisk")
MORE_WORDS = ("more", "stronger", "bigger", "more pronounced", "more intense", "intenser", "wilder", "larger",
              "more dramatic", "more visible", "more noticeable", "amplify", "exaggerate", "exaggerated",
              "more dynamic", "livelier", "more lively", "more energetic", "stronger motion", "more movement",
              "more motion", "more action", "bolder", "heavier")
LESS_WORDS = ("less", "subtler", "more subtle", "softer", "gentler", "smaller", "weaker", "lighter", "calmer",
              "tone down", "tone it down", "toned down", "reduce", "fewer", "less movement", "less motion",
              "more gentle", "more delicate", "quieter", "milder", "more natural", "dial back", "dial it back")
GENTLE_WORDS = ("gently", "gentle", "slightly", "softly", "soft", "subtle", "subtly", "barely", "faintly", "faint",
                "slight", "delicately", "delicate", "calm", "calmly", "light", "lightly", "natural", "naturally")
STRONG_MOTION_WORDS = ("strongly", "strong", "dramatically", "dramatic", "wildly", "wild", "intensely",
                       "intense", "vigorously", "vigorous", "energetically", "energetic", "powerfully",
                       "big", "dynamic", "boldly")

# "twice as fast", "3x slower", "half as fast", "half speed"
TIMES_WORDS: dict[str, float] = {
    "twice": 2.0, "double": 2.0, "two times": 2.0, "2x": 2.0, "2 x": 2.0, "three times": 3.0, "3x": 3.0,
    "thrice": 3.0, "triple": 3.0, "four times": 4.0, "4x": 4.0, "1.5x": 1.5, "half": 0.5,
}

# --- numbers -------------------------------------------------------------------------------------
NUMBER_WORDS: dict[str, float] = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "sixty": 60, "a": 1, "an": 1, "a couple of": 2, "a couple": 2, "couple of": 2,
}
# The single words that say a number ("four", "twice", "half"), the articles left out.
SPOKEN_NUMBERS: tuple[str, ...] = tuple(w for w in (*NUMBER_WORDS, *TIMES_WORDS)
                                       if w.isalpha() and w not in ("a", "an"))
ORDINALS: dict[str, int] = {
    "first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4,
    "fifth": 5, "5th": 5, "sixth": 6, "6th": 6, "seventh": 7, "7th": 7, "eighth": 8, "8th": 8,
    "ninth": 9, "9th": 9, "tenth": 10, "10th": 10,
    "last": -1, "latest": -1, "previous": -1, "most recent": -1, "newest": -1, "second to last": -2,
    "second-to-last": -2, "penultimate": -2, "one before last": -2,
}
GENERATION_NOUNS = ("one", "video", "clip", "take", "render", "generation", "result", "version", "animation",
                    "attempt", "try", "run", "gif", "movie")

# --- durations and steps -------------------------------------------------------------------------
LONGER_WORDS = ("longer", "extend", "extended", "lengthen", "more time", "stretch it")
SHORTER_WORDS = ("shorter", "shorten", "trim", "cut it down", "less time", "quicker clip", "briefer")
LONGEST_WORDS = ("as long as possible", "longest", "maximum length", "max length", "full length",
                 "max duration", "maximum duration")
SHORTEST_WORDS = ("as short as possible", "shortest", "minimum length", "min length", "min duration")
DURATION_STEP_S = {"mild": 0.5, "normal": 1.0, "strong": 2.0}

QUALITY_UP = ("higher quality", "better quality", "high quality", "more steps", "more detail", "more detailed",
              "best quality", "max quality", "maximum quality", "highest quality", "top quality", "hq",
              "final render", "final quality", "improve quality", "improve the quality", "sharper", "crisper",
              "production quality", "more inference steps", "finer")
QUALITY_MAX = ("best quality", "max quality", "maximum quality", "highest quality", "top quality",
               "production quality", "final render", "final quality")
QUALITY_DOWN = ("faster render", "render faster", "quicker render", "fast render", "draft", "quick preview",
                "lower quality", "low quality", "fewer steps", "less steps", "quick draft", "rough cut",
                "quick test", "quick render", "speed up rendering", "speed up the render", "faster generation",
                "generate faster", "cheaper")
QUALITY_MIN = ("draft", "quick preview", "quick draft", "rough cut", "quick test", "lowest quality")
STEPS_DELTA = {"mild": 2, "normal": 4, "strong": 8}

# "even faster", "still slower": a comparative alone that continues the previous message's subject
CONTINUATION_WORDS = ("even", "still", "further", "again", "some more", "a bit more", "a little more", "more so")

# --- seeds ---------------------------------------------------------------------------------------
SEED_SAME = ("same seed", "keep the seed", "keep seed", "keep the same seed", "seed the same",
             "same variation", "same noise", "don't change the seed", "do not change the seed",
             "keep the variation", "same random seed", "seed unchanged", "same one but", "lock the seed",
             "fix the seed", "fixed seed")
SEED_NEW = ("new seed", "different seed", "another seed", "random seed", "fresh seed", "other seed",
            "another variation", "different variation", "new variation", "a variation", "try again",
            "try another", "another take", "reroll", "re-roll", "roll again", "shuffle", "give me another",
            "one more time", "surprise me", "randomize", "randomise", "change the seed", "another version",
            "different version", "something different", "again_but_different", "same_but_different",
            "another one like this", "one more like this", "different take")

# --- session ------------------------------------------------------------------------------------
UNDO_PHRASES = ("undo", "undo that", "revert", "revert that", "go back", "take that back", "scratch that",
                "cancel that", "change it back", "put it back", "as it was",
                "as before", "previous plan", "previous settings", "back to the previous", "roll back",
                "rollback", "step back", "undo the last change", "i liked it before", "like it was before")
RESET_PHRASES = ("start over", "reset", "start again", "from scratch", "start fresh", "begin again",
                 "default settings", "back to default", "back to defaults", "back to the default",
                 "restart", "clean slate", "fresh start", "reset everything", "the defaults")

# --- negations ------------------------------------------------------------------------------------
# Patterns that take one thing out: {x} is filled with a subject/atmosphere alternation.
NEGATION_PATTERNS: tuple[str, ...] = (
    r"\bno(?:\s+more)?\s+(?:\w+\s+)?{x}\b",
    r"\bwithout(?:\s+(?:the|any|her|his|their|its))?\s+(?:\w+\s+)?{x}\b",
    r"\b(?:do not|don't|dont|never|not)\s+(?:move|animate|touch|use|show)\s+(?:the\s+|her\s+|his\s+|their\s+|its\s+|any\s+)?{x}\b",
    r"\bkeep\s+(?:the\s+|her\s+|his\s+|their\s+|its\s+)?{x}\s+(?:still|static|steady|frozen|fixed|motionless|in place|unmoving)\b",
    r"\b(?:stop|freeze|remove|drop|lose|kill|cut)\s+(?:the\s+|her\s+|his\s+|their\s+|its\s+|all\s+)?{x}\b",
    r"\b{x}\s+(?:should\s+)?(?:stay|stays|remain|remains|be|is|are|kept)\s+(?:still|static|frozen|motionless|unmoving)\b",
    r"\b{x}\s+(?:should not|shouldn't|must not|mustn't|do not|don't|does not|doesn't)\s+move\b",
    r"\bnot\s+(?:the\s+)?{x}\b",
    r"\b{x}\s+(?:still|frozen|off)\b",
)
NEGATABLE_ARTIFACTS: tuple[str, ...] = (
    "text", "watermark", "watermarks", "logo", "logos", "subtitles", "captions", "blur", "blurriness",
    "blurry", "flicker", "flickering", "jitter", "distortion", "distortions", "warping", "morphing",
    "artifacts", "artefacts", "noise", "grain", "extra fingers", "extra limbs", "people", "faces",
    "camera shake", "shaking", "color shift", "colour shift", "glitches", "glitch", "deformation",
    "melting", "cuts", "scene cuts", "zooming artifacts", "extra people", "cartoon look", "oversaturation",
    "overexposure", "low quality", "banding", "ghosting", "motion blur", "teeth", "talking", "extra hands",
    "body movement", "face distortion", "bad anatomy", "borders", "frames", "letterbox",
)

# --- prompt override --------------------------------------------------------------------------------
PROMPT_OVERRIDE = re.compile(
    r"^\s*(?:(?:use|set)\s+(?:this|my|the)\s+(?:own\s+)?prompt|my\s+prompt(?:\s+is)?|prompt)\s*[:=]\s*(?P<text>.+)$",
    re.IGNORECASE | re.DOTALL,
)
PROMPT_CLEAR = re.compile(
    r"\b(?:clear|remove|drop|forget|reset)\s+(?:my\s+|the\s+)?(?:own\s+|custom\s+)?prompt\b"
    r"|\b(?:automatic|auto|compiled|generated)\s+prompt\b"
)

# "keep everything else the same": understood, and changes nothing by itself
KEEP_REST = re.compile(
    r"\bkeep\s+(?:everything|the\s+rest|all(?:\s+the\s+rest)?)(?:\s+else)?(?:\s+(?:the\s+same|as\s+is|unchanged))?\b"
    r"|\b(?:everything|all)\s+else\s+(?:the\s+same|unchanged|as\s+is)\b"
    r"|\b(?:do\s+not|don't)\s+change\s+anything(?:\s+else)?\b|\bleave\s+(?:the\s+rest|everything\s+else)(?:\s+as\s+is)?\b"
    r"|\bnothing\s+else\s+(?:should\s+)?(?:move|moves|change|changes)\b"
)

# Words that carry no instruction of their own: a clause made only of these is neither parsed nor
# reported as misunderstood ("please", "ok, and ...").
FILLER = frozenset("""
a an the and or but then also too please pls thanks thank you ok okay so now just really maybe can could would
should will i i'd i'm id we us me my mine her his their its it it's this that these those she he they them there
here make let lets let's have has had be is are was were been being do does did to of in on at for with by from
into onto up as some any all every bit more less much very little lot lots quite rather yes yeah yep hey hi hello
like want wanted love prefer need get give keep go set put little image picture photo video clip shot scene frame
look looks nice good great cool perfect better best same again than what which who how please! one ones thing
things one's while when where whole entire overall whole kind sort of ahead proceed sure alright wait hmm no
""".split())

CONTRACTIONS: dict[str, str] = {
    "don't": "do not", "doesn't": "does not", "didn't": "did not", "can't": "cannot", "won't": "will not",
    "shouldn't": "should not", "isn't": "is not", "aren't": "are not", "mustn't": "must not",
    "wouldn't": "would not", "couldn't": "could not", "let's": "let us", "i'd": "i would", "i'm": "i am",
    "it's": "it is", "that's": "that is", "she's": "she is", "he's": "he is", "they're": "they are",
}
_CONTRACTION_RE = re.compile(r"\b(" + "|".join(re.escape(k) for k in CONTRACTIONS) + r")\b")
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Lower case, straight quotes, contractions expanded, whitespace collapsed."""
    t = text.lower().replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    t = t.replace("\u2013", "-").replace("\u2014", " - ").replace("\u00d7", "x")
    t = _CONTRACTION_RE.sub(lambda m: CONTRACTIONS[m.group(1)], t)
    return _SPACES.sub(" ", t).strip()


def alternation(phrases: object) -> str:
    """A regex alternation of whole phrases, longest first so "palm trees" wins over "trees".

    The phrases are grouped by their first letter ("(?:h(?:air|ands)|w(?:ater|ind))"): two phrases with different
    first letters never match at the same place, so the order that matters (longest first) is kept within each
    group and the match is the same, while the regex engine tries one group per position instead of every phrase
    (the planner's big word lists made each search cost hundreds of comparisons per word)."""
    items = sorted({str(p) for p in phrases}, key=len, reverse=True)  # type: ignore[attr-defined]
    groups: dict[str, list[str]] = {}
    for p in items:
        groups.setdefault(p[:1], []).append(p)
    parts = []
    for first, group in groups.items():
        if not first or len(group) == 1:
            parts += [re.escape(p) for p in group]
        else:
            parts.append(re.escape(first) + "(?:" + "|".join(re.escape(p[1:]) for p in group) + ")")
    return "(?:" + "|".join(parts) + ")"
